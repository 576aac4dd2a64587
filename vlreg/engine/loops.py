"""Retrieval evaluation loops: encode once, ITC for every pair, ITM re-rank of each query's top-k.

The loop drives a model through four methods only (see docs/architecture.md, "The model"):
``data_preprocessor``, ``encode_image``, ``encode_text`` and ``itm_logits``. The ranking itself
uses the chunked functions of :mod:`vlreg.evaluation.sparse_retrieval` (each query's ITC top-k,
the distinct pairs both directions want, scored once by :func:`vlreg.engine.pair_scoring.score_pairs`
with each image's cross-attention keys / values computed once); the metric gets one dict with
the full score matrices or, with ``dense_scores=False``, the top-k lists and ITC ranks.

Distribution (``mmengine.dist``; one process is the world-size-1 case of the same code):

1. each rank encodes the images of its sampler shard (and their captions);
2. every feature is gathered to every rank in bounded chunks (row counts may differ between
   ranks), then images are ordered by ``sample_idx`` and texts by their global ``text_index``;
   the copies a padding sampler adds are dropped by keeping the first occurrence;
3. every rank selects the same top-k candidates; each rank scores a contiguous share of the
   distinct (image, text) pairs (sorted by image) and the pair scores are gathered, so every
   rank ends with the same results (the metric keeps one copy).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from mmengine.dist import all_gather, all_gather_object, get_dist_info, is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from torch import Tensor, nn

from vlreg.evaluation.metrics import describe_protocol
from vlreg.evaluation.retrieval import TIES
from vlreg.evaluation.sparse_retrieval import (
    chunked_itc_ranks,
    chunked_topk,
    lookup_pairs,
    union_pairs,
)
from vlreg.registry import LOOPS

from .pair_scoring import PairWork, score_pairs

SCORES = ('itm', 'itm+itc')
FILL = -100.0  # the score of a candidate outside the top-k (ALBEF)


def all_gather_rows(
    local: Tensor | None, device: torch.device | str = 'cpu', max_chunk_bytes: int = 1 << 28
) -> Tensor:
    """Every rank's rows, concatenated in rank order, on every rank.

    Unlike :func:`mmengine.dist.all_gather` the row counts may differ between ranks, and the
    transfer goes in chunks of at most ``max_chunk_bytes`` per rank so that large CPU tensors
    (image tokens) never have to fit on the communication device at once.

    Args:
        local: this rank's ``[n, ...]`` rows, or None when it has none (shape and dtype are then
            taken from the other ranks).
        device: where the result lives when ``local`` is None.
        max_chunk_bytes: size bound of one collective call.

    Returns:
        ``[sum of n, ...]`` on the device of ``local`` (or ``device``).
    """
    _, world = get_dist_info()
    if world == 1:
        if local is None:
            raise ValueError('nothing to gather: no rows on the only rank')
        return local
    info = (0, None, None)
    if local is not None:
        info = (local.shape[0], tuple(local.shape[1:]), local.dtype)
    infos = all_gather_object(info)
    tail, dtype = next(((s, d) for _, s, d in infos if s is not None), (None, None))
    if tail is None:
        raise ValueError('nothing to gather: no rank has rows')
    if local is None:
        local = torch.empty((0, *tail), dtype=dtype, device=device)
    counts = [n for n, _, _ in infos]
    chunk = max(1, max_chunk_bytes // max(1, math.prod(tail) * local.element_size()))
    parts: list[list[Tensor]] = [[] for _ in counts]
    for start in range(0, max(counts), chunk):
        size = min(chunk, max(counts) - start)
        piece = local.new_zeros((size, *tail))
        mine = local[start : start + size]
        piece[: mine.shape[0]] = mine
        for rank, got in enumerate(all_gather(piece)):
            valid = min(size, max(0, counts[rank] - start))
            if valid:
                parts[rank].append(got[:valid])
    return torch.cat([p for rank_parts in parts for p in rank_parts])


def _meta(sample: Any, key: str) -> Any:
    """A metainfo field of a data sample (a ``BaseDataElement`` or a dict)."""
    if isinstance(sample, dict):
        value = sample.get(key, sample.get('metainfo', {}).get(key))
    else:
        value = getattr(sample, key, None)
    if value is None:
        raise KeyError(f'retrieval data samples need the metainfo {key!r}; got {sample!r}')
    return value


def _first_rows(keys: list[int]) -> tuple[list[int], list[int]]:
    """Sorted distinct keys and the row of each one's first occurrence (later ones are padding)."""
    first: dict[int, int] = {}
    for row, key in enumerate(keys):
        first.setdefault(int(key), row)
    ordered = sorted(first)
    return ordered, [first[k] for k in ordered]


def _take(src: Tensor, idx: Tensor, device: torch.device) -> Tensor:
    """``src[idx]`` on ``device``; from another device only the distinct rows travel."""
    if src.device == device:
        return src[idx.to(device)]
    uniq, inverse = torch.unique(idx.cpu(), return_inverse=True)
    return src[uniq.to(src.device)].to(device)[inverse.to(device)]


@dataclass
class _Local:
    """What one rank encoded, batch by batch."""

    image_tokens: list[Tensor] = field(default_factory=list)
    image_embed: list[Tensor] = field(default_factory=list)
    text_tokens: list[Tensor] = field(default_factory=list)
    text_mask: list[Tensor] = field(default_factory=list)
    text_embed: list[Tensor] = field(default_factory=list)
    sample_idx: list[int] = field(default_factory=list)
    text_index: list[int] = field(default_factory=list)
    text_owner: list[int] = field(default_factory=list)  # sample_idx of each caption's image


@dataclass
class _Features:
    """All ranks' features; ``*_rows`` map an image / text position to its row in the tokens."""

    image_tokens: Tensor
    text_tokens: Tensor
    text_mask: Tensor
    image_embed: Tensor
    text_embed: Tensor
    img_rows: Tensor
    txt_rows: Tensor
    img2txt: list[list[int]]
    txt2img: list[int]


class _Progress:
    """Logs a long re-rank on the main process about every ``step`` of the work."""

    def __init__(self, what: str, step: float = 0.1) -> None:
        self.what, self.step, self.next = what, step, step
        self.enabled = is_main_process()
        self.start = time.time()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or (done < total and done / total < self.next):
            return
        elapsed = time.time() - self.start
        eta = elapsed * (total - done) / max(done, 1)
        print_log(
            f'retrieval re-rank {self.what}: {done}/{total} pairs '
            f'({100 * done / total:.0f}%), {elapsed:.0f}s elapsed, eta {eta:.0f}s',
            logger='current',
        )
        self.next = (math.floor(done / total / self.step) + 1) * self.step


class _RetrievalLoopMixin:
    """The retrieval run shared by the val and test loops (``mode`` picks the hook names)."""

    runner: Any
    dataloader: Any
    evaluator: Any
    fp16: bool

    def _init_protocol(
        self,
        k: int | None,
        score: str,
        itm_batch_size: int,
        offload_features: bool,
        dense_scores: bool = True,
        chunk_size: int = 1024,
    ) -> None:
        if score not in SCORES:
            raise ValueError(f'score must be one of {SCORES}, got {score!r}')
        if k is not None and k < 0:
            raise ValueError(f'k must be >= 0 (0 = ITC only) or None (all), got {k}')
        if itm_batch_size < 1:
            raise ValueError(f'itm_batch_size must be >= 1, got {itm_batch_size}')
        self.k, self.score, self.itm_batch_size = k, score, itm_batch_size
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        self.offload_features = offload_features
        self.dense_scores, self.chunk_size = dense_scores, chunk_size
        self.work = PairWork()

    def _run(self, mode: str) -> dict:
        runner = self.runner
        runner.call_hook(f'before_{mode}')
        runner.call_hook(f'before_{mode}_epoch')
        runner.model.eval()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        store = torch.device('cpu') if self.offload_features else device
        with torch.no_grad():
            local = self._encode(model, mode, store)
            feats = self._gather(local, store, device)
            result = self._score(model, feats, device)
        self.evaluator.process(data_samples=[result], data_batch=None)
        # every rank processed the same full matrices: keep one copy
        metrics = self.evaluator.evaluate(1)
        runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        runner.call_hook(f'after_{mode}')
        return metrics

    def _encode(self, model: nn.Module, mode: str, store: torch.device) -> _Local:
        loc = _Local()
        for idx, data_batch in enumerate(self.dataloader):
            self.runner.call_hook(f'before_{mode}_iter', batch_idx=idx, data_batch=data_batch)
            with autocast(enabled=self.fp16):
                data = model.data_preprocessor(data_batch, False)
                inputs, samples = data['inputs'], data['data_samples']
                image_tokens, image_embed = model.encode_image(inputs['image'])
                ids, mask = inputs['caption_ids'], inputs['caption_attention_mask']
                if ids.shape[0]:
                    text_tokens, text_embed = model.encode_text(ids, mask)
            token_dtype = torch.half if self.fp16 else image_tokens.dtype
            loc.image_tokens.append(image_tokens.to(store, token_dtype))
            loc.image_embed.append(image_embed.float().to(store))
            if ids.shape[0]:
                loc.text_tokens.append(text_tokens.to(store, token_dtype))
                loc.text_mask.append(mask.to(store))
                loc.text_embed.append(text_embed.float().to(store))
            self._record_indices(loc, samples, inputs['caption_image_index'].tolist())
            self.runner.call_hook(
                f'after_{mode}_iter', batch_idx=idx, data_batch=data_batch, outputs=[]
            )
        return loc

    @staticmethod
    def _record_indices(loc: _Local, samples: list, owner: list[int]) -> None:
        """Store each image's ``sample_idx`` and each caption's global index and image."""
        sample_idx = [int(_meta(sample, 'sample_idx')) for sample in samples]
        text_index = [list(_meta(sample, 'text_index')) for sample in samples]
        for b, indices in enumerate(text_index):
            if owner.count(b) != len(indices):
                raise ValueError(
                    f'sample {sample_idx[b]} has {len(indices)} text_index entries '
                    f'but {owner.count(b)} captions in the batch'
                )
        loc.sample_idx.extend(sample_idx)
        # captions are flattened sample by sample: the j-th caption of sample b is text_index[b][j]
        seen = [0] * len(samples)
        for b in owner:
            loc.text_index.append(int(text_index[b][seen[b]]))
            loc.text_owner.append(sample_idx[b])
            seen[b] += 1

    def _gather(self, loc: _Local, store: torch.device, device: torch.device) -> _Features:
        length = max((t.shape[1] for t in loc.text_tokens), default=0)
        metas = all_gather_object((loc.sample_idx, loc.text_index, loc.text_owner, length))
        length = max(m[3] for m in metas)

        def cat(parts: list[Tensor], pad_to: int | None = None) -> Tensor | None:
            if pad_to is not None:  # text tokens / masks: right-pad to the longest of all ranks
                parts = [
                    nn.functional.pad(p, (0, 0) * (p.dim() - 2) + (0, pad_to - p.shape[1]))
                    for p in parts
                ]
            return torch.cat(parts) if parts else None

        image_tokens = all_gather_rows(cat(loc.image_tokens), store)
        image_embed = all_gather_rows(cat(loc.image_embed), store)
        text_tokens = all_gather_rows(cat(loc.text_tokens, length), store)
        text_mask = all_gather_rows(cat(loc.text_mask, length), store)
        text_embed = all_gather_rows(cat(loc.text_embed), store)

        sample_idx = [s for m in metas for s in m[0]]
        text_index = [t for m in metas for t in m[1]]
        text_owner = [o for m in metas for o in m[2]]
        img_keys, img_rows = _first_rows(sample_idx)
        _, txt_rows = _first_rows(text_index)
        position = {key: pos for pos, key in enumerate(img_keys)}
        txt2img = [position[text_owner[row]] for row in txt_rows]
        img2txt: list[list[int]] = [[] for _ in img_keys]
        for txt, img in enumerate(txt2img):
            img2txt[img].append(txt)
        img_rows_t = torch.tensor(img_rows, dtype=torch.long, device=store)
        txt_rows_t = torch.tensor(txt_rows, dtype=torch.long, device=store)
        return _Features(
            image_tokens,
            text_tokens,
            text_mask,
            image_embed[img_rows_t].to(device),
            text_embed[txt_rows_t].to(device),
            img_rows_t,
            txt_rows_t,
            img2txt,
            txt2img,
        )

    def _score(self, model: nn.Module, feats: _Features, device: torch.device) -> dict:
        img_embed, txt_embed = feats.image_embed, feats.text_embed
        n_img, n_txt = img_embed.shape[0], txt_embed.shape[0]
        _, world = get_dist_info()
        print_log(
            f'retrieval: {n_img} images x {n_txt} texts, '
            f'{describe_protocol(self.k, self.score)}, {world} rank(s)',
            logger='current',
        )
        result = dict(
            img2txt=feats.img2txt, txt2img=feats.txt2img, protocol=dict(k=self.k, score=self.score)
        )
        self.work = PairWork()
        if self.k == 0:
            if self.dense_scores:
                sim = img_embed @ txt_embed.t()
                return dict(result, scores_i2t=sim.cpu(), scores_t2i=sim.t().cpu())
            return dict(result, itc_ranks=self._itc_ranks(feats))
        k_i = n_txt if self.k is None else min(self.k, n_txt)
        k_t = n_img if self.k is None else min(self.k, n_img)
        cand_i2t, sim_i2t = chunked_topk(img_embed, txt_embed, k_i, self.chunk_size)
        cand_t2i, sim_t2i = chunked_topk(txt_embed, img_embed, k_t, self.chunk_size)
        keys = union_pairs(cand_i2t, cand_t2i, n_txt)
        pair_scores = self._score_share(model, feats, keys, n_txt, device)
        s_i2t = lookup_pairs(keys, pair_scores, cand_i2t, n_txt, image_query=True)
        s_t2i = lookup_pairs(keys, pair_scores, cand_t2i, n_txt, image_query=False)
        if self.score == 'itm+itc':
            s_i2t, s_t2i = s_i2t + sim_i2t, s_t2i + sim_t2i
        print_log(
            f'retrieval re-rank: {self.work.pairs} distinct pairs scored on this rank '
            f'({keys.numel()} in all, {n_img * k_i + n_txt * k_t} wanted by the two '
            f'directions), {self.work.calls} fusion calls, '
            f'{self.work.image_kv_rows} image key/value projections',
            logger='current',
        )
        if not self.dense_scores:
            return dict(
                result,
                topk_i2t=(cand_i2t.cpu(), s_i2t.cpu()),
                topk_t2i=(cand_t2i.cpu(), s_t2i.cpu()),
                fill=FILL,
                itc_ranks=self._itc_ranks(feats),
            )
        scores_i2t = torch.full((n_img, n_txt), FILL, device=device)
        scores_i2t.scatter_(1, cand_i2t, s_i2t)
        scores_t2i = torch.full((n_txt, n_img), FILL, device=device)
        scores_t2i.scatter_(1, cand_t2i, s_t2i)
        return dict(
            result,
            scores_i2t=scores_i2t.cpu(),
            scores_t2i=scores_t2i.cpu(),
            itc_i2t=(img_embed @ txt_embed.t()).cpu(),
        )

    def _itc_ranks(self, feats: _Features) -> dict[str, tuple[Tensor, Tensor]]:
        """ITC ranks of both directions under both tie rules, chunk by chunk (sparse mode)."""
        out = {}
        for ties in TIES:
            txt = chunked_itc_ranks(
                feats.image_embed, feats.text_embed, feats.img2txt, ties, self.chunk_size
            )
            img = chunked_itc_ranks(
                feats.text_embed,
                feats.image_embed,
                [[i] for i in feats.txt2img],
                ties,
                self.chunk_size,
            )
            out[ties] = (txt.cpu(), img.cpu())
        return out

    def _score_share(
        self, model: nn.Module, feats: _Features, keys: Tensor, n_txt: int, device: torch.device
    ) -> Tensor:
        """This rank's contiguous share of the sorted pairs, scored, then every rank's scores."""
        rank, world = get_dist_info()
        per_rank = math.ceil(keys.numel() / world)
        mine = keys[rank * per_rank : (rank + 1) * per_rank]
        store = feats.img_rows.device

        def rows(src: Tensor, index: Tensor, pos: Tensor) -> Tensor:
            return _take(src, index[pos.to(store)], device)

        local = score_pairs(
            model,
            mine // n_txt,
            mine % n_txt,
            self.itm_batch_size,
            image_tokens=lambda p: rows(feats.image_tokens, feats.img_rows, p),
            text_tokens=lambda p: rows(feats.text_tokens, feats.txt_rows, p),
            text_mask=lambda p: rows(feats.text_mask, feats.txt_rows, p),
            autocast_ctx=lambda: autocast(enabled=self.fp16),
            work=self.work,
            progress=_Progress('pairs'),
        )
        return all_gather_rows(local if local.numel() else None, keys.device)


@LOOPS.register_module()
class RetrievalValLoop(_RetrievalLoopMixin, ValLoop):
    """Image-text retrieval validation: ITC for every pair, then an ITM re-rank of each top-k.

    The dataloader yields one sample per image carrying all its captions (metainfo ``sample_idx``,
    ``text_index``). The evaluator (e.g. ``RetrievalMetric``) gets one dict with ``scores_i2t``,
    ``scores_t2i``, ``img2txt``, ``txt2img``, ``protocol`` and, when re-ranked, ``itc_i2t``. The
    val hooks run as usual (``*_iter`` once per encoded batch, so the logger shows progress); the
    re-rank logs its own progress on rank 0.

    Args:
        runner: the runner.
        dataloader: the retrieval dataloader (or its config).
        evaluator: the evaluator (or its config).
        k: candidates re-ranked per query (ALBEF: 256 for COCO, 128 for Flickr30K); ``0`` = ITC
            similarities only, ``None`` = every candidate.
        score: ``'itm'`` (ALBEF: the ITM match logit) or ``'itm+itc'`` (BLIP / LAVIS: logit + ITC
            cosine similarity); candidates outside the top-k score -100.
        itm_batch_size: (query, candidate) pairs per ``itm_logits`` call.
        fp16: autocast the encoders and the ITM head, and keep the tokens in half precision.
        offload_features: keep the gathered tokens in CPU memory instead of on the model's device
            (slower: every ITM batch is copied over).
        dense_scores: hand the metric full ``[N_img, N_txt]`` score matrices (``scores_i2t``,
            ``scores_t2i``, ``itc_i2t``; what metrics reading matrices need). ``False`` hands it
            each query's top-k (``topk_i2t`` / ``topk_t2i`` = (indices, scores)) and the ITC ranks
            (``itc_ranks``) instead, so that nothing of size ``N_img * N_txt`` is ever held
            (COCO 5K: 125 M entries per matrix); ``RetrievalMetric`` reads either form.
        chunk_size: queries whose full similarity row is held at once.

    Example:
        >>> val_cfg = dict(type='RetrievalValLoop', k=256, score='itm', itm_batch_size=256)
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        k: int | None = 256,
        score: str = 'itm',
        itm_batch_size: int = 256,
        fp16: bool = False,
        offload_features: bool = False,
        dense_scores: bool = True,
        chunk_size: int = 1024,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_protocol(k, score, itm_batch_size, offload_features, dense_scores, chunk_size)

    def run(self) -> dict:
        """Encode, score, re-rank and evaluate; returns the metrics."""
        return self._run('val')


@LOOPS.register_module()
class RetrievalTestLoop(_RetrievalLoopMixin, TestLoop):
    """Image-text retrieval test: the same protocol as :class:`RetrievalValLoop`, with test hooks.

    Args:
        runner: the runner.
        dataloader: the retrieval dataloader (or its config).
        evaluator: the evaluator (or its config).
        k: candidates re-ranked per query; ``0`` = ITC only, ``None`` = all.
        score: ``'itm'`` or ``'itm+itc'``.
        itm_batch_size: pairs per ``itm_logits`` call.
        fp16: autocast and half-precision tokens.
        offload_features: keep the gathered tokens in CPU memory.
        dense_scores: full score matrices (True) or top-k lists and ITC ranks (False).
        chunk_size: queries whose similarity row is held at once.

    Example:
        >>> test_cfg = dict(type='RetrievalTestLoop', k=128, score='itm+itc')
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        k: int | None = 256,
        score: str = 'itm',
        itm_batch_size: int = 256,
        fp16: bool = False,
        offload_features: bool = False,
        dense_scores: bool = True,
        chunk_size: int = 1024,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_protocol(k, score, itm_batch_size, offload_features, dense_scores, chunk_size)

    def run(self) -> dict:
        """Encode, score, re-rank and evaluate; returns the metrics."""
        return self._run('test')
