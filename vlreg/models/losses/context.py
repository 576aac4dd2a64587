"""The per-step context a loss receives: the batch's features, the model, and the work several losses
share, computed once on first request and cached for the rest of the step."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..fusion.bert_fusion import FusionOutput
from .contract import LossModel, VLFeatures


@torch.no_grad()
def in_batch_similarities(features: VLFeatures) -> tuple[Tensor, Tensor]:
    """``(sim_i2t, sim_t2i)`` ``[B, B]``, detached: this process's rows against this process's batch
    columns, as ITC scores them: online image x momentum text / temp and online text x momentum image /
    temp (online x online without momentum encoders). ITM mines its hard negatives from them (ALBEF).

    ALBEF cuts these columns out of ITC's ``[B, B + Q]`` matrix with the queue; only the batch
    columns are computed here (same dot products: equal up to float summation order, and with a
    65,536 queue two ``[B, E] x [E, Q]`` products and two queue copies less per step).
    """
    if features.momentum is not None:
        col_t, col_v = features.momentum.text_embed, features.momentum.image_embed
    else:
        col_t, col_v = features.text_embed, features.image_embed
    cols_t, cols_v = col_t.detach(), col_v.detach()  # this process's own batch: no gather needed
    sim_i2t = features.image_embed @ cols_t.t() / features.temp
    sim_t2i = features.text_embed @ cols_v.t() / features.temp
    return sim_i2t.detach(), sim_t2i.detach()


class LossContext:
    """One training step's shared state, owned by the pretrainer (created in its ``loss``).

    Losses read :attr:`features` and call :attr:`model` through :class:`~.contract.LossModel`; what more
    than one loss needs is asked of the context, which computes it on the first call and returns the
    same object afterwards, so no loss depends on another having run first:

    - :meth:`similarities`: the in-batch similarities ITM mines its hard negatives from;
    - :meth:`hard_negatives`: the drawn negatives (drawn once per step and setting);
    - :meth:`positive_fusion` / :meth:`positive_itm_logits`: the positive pairs' fusion pass, with the
      cross-attention probabilities of :attr:`attn_layer` (the Grad-CAM layer losses declared), and
      its ITM logits;
    - :meth:`image_kv` / :meth:`fusion_images`: each image view's cross-attention keys / values,
      projected once per image and gathered for every fusion row that reads it (the positive pass,
      the hard negatives, the MLM pass).

    Args:
        features: the batch's features.
        model: the pretrainer (or any :class:`~.contract.LossModel`).
        attn_layer: fusion layer whose cross-attention probabilities the positive pass keeps (None:
            none, the fused kernel everywhere).
        share_image_kv: fusion calls read each image's keys / values projected once (see
            :meth:`fusion_images`); False projects them in every call, as ALBEF's code does (the
            same arithmetic, more work).
    """

    def __init__(
        self,
        features: VLFeatures,
        model: LossModel | None,
        attn_layer: int | None = None,
        share_image_kv: bool = True,
    ) -> None:
        self.features = features
        self.model = model
        self.attn_layer = attn_layer
        self.share_image_kv = share_image_kv
        self._image_kv: dict[str, list[tuple[Tensor, Tensor]]] = {}
        self._similarities: tuple[Tensor, Tensor] | None = None
        self._negatives: dict[bool, tuple[Tensor, Tensor]] = {}
        self._positive: FusionOutput | None = None
        self._positive_logits: Tensor | None = None

    def similarities(self) -> tuple[Tensor, Tensor]:
        """See :func:`in_batch_similarities`; cached."""
        if self._similarities is None:
            self._similarities = in_batch_similarities(self.features)
        return self._similarities

    def hard_negatives(self, use_image_ids: bool = False) -> tuple[Tensor, Tensor]:
        """``(image_neg_idx, text_neg_idx)`` drawn from :meth:`similarities` (see
        :func:`~.itm.sample_hard_negatives`); same-image-id pairs excluded when ``use_image_ids`` and
        the batch has image ids. Drawn once per step for each setting."""
        from .itm import sample_hard_negatives  # the sampler belongs to the ITM loss

        if use_image_ids not in self._negatives:
            ids = self.features.image_ids if use_image_ids else None
            self._negatives[use_image_ids] = sample_hard_negatives(*self.similarities(), ids)
        return self._negatives[use_image_ids]

    def positive_fusion(self) -> FusionOutput:
        """The fusion pass of the B original pairs (in the autograd graph), keeping the
        cross-attention probabilities of :attr:`attn_layer`; cached. Only its [CLS] row is
        computed in the last layer (``cls_only``): readers take ``.cls`` and ``.cross_attn``."""
        if self._positive is None:
            f = self.features
            self._positive = self.need_model().fuse(
                f.text_tokens,
                f.text_mask,
                attn_layer=self.attn_layer,
                cls_only=True,
                **self.fusion_images([('image', None)]),
            )
        return self._positive

    def image_kv(self, view: str = 'image') -> list[tuple[Tensor, Tensor]]:
        """Every fusion layer's cross-attention ``(keys, values)`` ``[B, h, N, d]`` of the image
        ``view``'s tokens, in the autograd graph; projected on the first call, cached."""
        if view not in self._image_kv:
            tokens = self.features.image_view(view).tokens
            self._image_kv[view] = self.need_model().itm_image_cache(tokens)
        return self._image_kv[view]

    def fusion_images(self, rows: Sequence[tuple[str, Tensor | None]]) -> dict[str, object]:
        """The image side of one fusion call whose rows are, in order, the images of each
        ``(view, index)`` (``index`` None: every image of the view in batch order): keyword
        arguments for :meth:`~.contract.LossModel.fuse`. With :attr:`share_image_kv` they are the
        rows of :meth:`image_kv` (``image_kv=``), else the concatenated tokens (``image_tokens=``).
        A linear projection of gathered rows equals the gathered projections, so both give the
        same numbers up to float summation order."""

        def pick(x: Tensor, index: Tensor | None) -> Tensor:
            return x if index is None else x[index]

        if not self.share_image_kv:
            parts = [pick(self.features.image_view(v).tokens, i) for v, i in rows]
            return {'image_tokens': parts[0] if len(parts) == 1 else torch.cat(parts)}
        per_view = [(self.image_kv(v), i) for v, i in rows]
        layers = []
        for layer in range(len(per_view[0][0])):
            keys = [pick(kv[layer][0], i) for kv, i in per_view]
            values = [pick(kv[layer][1], i) for kv, i in per_view]
            if len(keys) == 1:
                layers.append((keys[0], values[0]))
            else:
                layers.append((torch.cat(keys), torch.cat(values)))
        return {'image_tokens': None, 'image_kv': layers}

    def positive_itm_logits(self) -> Tensor:
        """ITM logits ``[B, 2]`` of :meth:`positive_fusion`; cached."""
        if self._positive_logits is None:
            head = self.need_model().itm_head
            if head is None:
                raise RuntimeError("the positive-pair ITM logits need the model's itm_head")
            self._positive_logits = head(self.positive_fusion().cls)
        return self._positive_logits

    def need_model(self) -> LossModel:
        """The model, or a clear error when the context was made without one (a model-free test)."""
        if self.model is None:
            raise RuntimeError('this loss needs the model, but its LossContext has none')
        return self.model
