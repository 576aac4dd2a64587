"""ITM scoring of many (image, text) pairs, each image's cross-attention keys / values computed once.

The retrieval loop hands :func:`score_pairs` the distinct pairs of both re-rank directions sorted
by image (:func:`vlreg.evaluation.sparse_retrieval.union_pairs`). Pairs go to the model in
batches of ``batch_size``, several queries' candidates in one fusion call, texts cut to the
batch's longest. When the model offers ``itm_image_cache`` (the ALBEF pretrainer does) each
image's per-layer keys / values are computed the first time one of its pairs is met and reused
for all its other pairs (an image's pairs are contiguous, so only the image straddling two
batches is carried over); otherwise the image tokens go to ``itm_logits`` as they are.

When the model also offers ``itm_text_cache`` and ``itm_pair_logits`` (the ALBEF pretrainer
does), the part of the fusion that sees the text alone (the first layer's self-attention) runs
once per distinct text before the batches, and each batch goes through ``itm_pair_logits``: the
pairs of one image attend to its keys / values in one call (no per-pair copy of them) and the
last fusion layer computes the [CLS] row only. Same scores as ``itm_logits`` (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

Take = Callable[[Tensor], Tensor]


@dataclass
class PairWork:
    """What a scoring run computed: pairs, fusion calls and image key/value projections."""

    pairs: int = 0
    calls: int = 0
    image_kv_rows: int = 0
    text_cache_rows: int = 0


class IndexedKV(Sequence):
    """Per-layer ``(keys, values)`` of distinct images, expanded to one row per pair only when a
    layer reads them (so one layer's copy lives at a time)."""

    def __init__(self, compact: Sequence[tuple[Tensor, Tensor]], index: Tensor) -> None:
        self.compact, self.index = compact, index

    def __len__(self) -> int:
        return len(self.compact)

    def __getitem__(self, layer: int) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        keys, values = self.compact[layer]
        return keys[self.index], values[self.index]


class _KVCache:
    """The keys / values of the images of the previous batch, extended batch by batch."""

    def __init__(self, model: nn.Module, image_tokens: Take, work: PairWork) -> None:
        self.model, self.image_tokens, self.work = model, image_tokens, work
        self.ids: Tensor | None = None
        self.kv: list[tuple[Tensor, Tensor]] = []

    def rows(self, images: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Keys / values of the sorted distinct ``images``, computing only the new ones.

        The batches come in ascending image order, so only an image of the previous batch, the
        first of this one, can be reused.
        """
        reuse = 0
        if self.ids is not None and images.numel() and bool(images[0] == self.ids[-1]):
            reuse = 1
        new = images[reuse:]
        self.work.image_kv_rows += new.numel()
        fresh = self.model.itm_image_cache(self.image_tokens(new)) if new.numel() else None
        if fresh is None:
            kv = [(k[-1:], v[-1:]) for k, v in self.kv]
        elif reuse:
            kv = [
                (torch.cat([k0[-1:], k1]), torch.cat([v0[-1:], v1]))
                for (k0, v0), (k1, v1) in zip(self.kv, fresh)
            ]
        else:
            kv = list(fresh)
        self.ids, self.kv = images, kv
        return kv


def score_pairs(
    model: nn.Module,
    img_pos: Tensor,
    txt_pos: Tensor,
    batch_size: int,
    image_tokens: Take,
    text_tokens: Take,
    text_mask: Take,
    autocast_ctx: Callable[[], Any],
    work: PairWork,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """ITM match logits of the pairs ``(img_pos[p], txt_pos[p])``, sorted by image.

    Args:
        model: offers ``itm_logits(text_tokens, text_mask, image_tokens, image_cache=None)`` and
            optionally ``itm_image_cache(image_tokens)``, ``itm_text_cache(text_tokens,
            text_mask)`` and ``itm_pair_logits(text_cache, text_mask, image_cache, image_index)``.
        img_pos, txt_pos: ``[P]`` image / text positions (``img_pos`` ascending).
        batch_size: pairs per fusion call.
        image_tokens, text_tokens, text_mask: positions -> rows on the model's device.
        autocast_ctx: returns the context manager the fusion runs in.
        work: counters, updated in place.
        progress: called as ``progress(done, total)`` after each batch.

    Returns:
        ``[P]`` float32 scores on the device of ``img_pos``.
    """
    total = img_pos.numel()
    if total > 1 and bool((img_pos[1:] < img_pos[:-1]).any()):
        raise ValueError('score_pairs needs the pairs sorted by image')
    out = torch.empty(total, dtype=torch.float32, device=img_pos.device)
    cache = _KVCache(model, image_tokens, work) if hasattr(model, 'itm_image_cache') else None
    pair_path = cache is not None and all(
        hasattr(model, name) for name in ('itm_text_cache', 'itm_pair_logits')
    )
    if pair_path:  # the text-only part of the fusion, once per distinct text
        texts, text_row = torch.unique(txt_pos, return_inverse=True)
        with autocast_ctx():
            parts = [
                model.itm_text_cache(text_tokens(chunk), text_mask(chunk))
                for chunk in texts.split(batch_size)
            ]
        text_cache = torch.cat(parts) if parts else None
        work.text_cache_rows += texts.numel()
    for start in range(0, total, batch_size):
        img, txt = img_pos[start : start + batch_size], txt_pos[start : start + batch_size]
        mask = text_mask(txt)
        length = int(mask.any(0).nonzero().max()) + 1  # the batch's longest text
        mask = mask[:, :length]
        with autocast_ctx():
            if cache is None:
                logits = model.itm_logits(text_tokens(txt)[:, :length], mask, image_tokens(img))
            else:
                images, inverse = torch.unique(img, sorted=True, return_inverse=True)
                kv, inverse = cache.rows(images), inverse.to(mask.device)
                if pair_path:
                    rows = text_row[start : start + batch_size].to(text_cache.device)
                    logits = model.itm_pair_logits(text_cache[rows, :length], mask, kv, inverse)
                else:
                    tokens = text_tokens(txt)[:, :length]
                    logits = model.itm_logits(
                        tokens, mask, None, image_cache=IndexedKV(kv, inverse)
                    )
        out[start : start + img.numel()] = logits[:, 1].float().to(out.device)
        work.pairs += img.numel()
        work.calls += 1
        if progress is not None:
            progress(start + img.numel(), total)
    return out
