"""The typed contract between the pretrainer and its losses: the features of one batch and the narrow
model interface a loss may call. Losses read these; they never write into them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from ..fusion.bert_fusion import FusionOutput


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class EncodedView:
    """One encoded view of the batch: encoder tokens ``[B, N, D]`` and projected embeddings ``[B, E]``."""

    tokens: Tensor
    embed: Tensor


@dataclass(frozen=True)
class MomentumFeatures:
    """What the momentum (EMA) encoders give for the original pair, computed without gradient."""

    image_tokens: Tensor
    image_embed: Tensor
    text_embed: Tensor


@dataclass(frozen=True)
class VLFeatures:
    """The features of one pre-training batch, as every loss reads them (docs/architecture.md).

    Frozen: a loss cannot rebind a field (the in-batch similarities, the positive-pair fusion pass and
    its ITM logits that losses share live in the step's :class:`~.context.LossContext` instead).

    Attributes:
        image: the pixels ``[B, 3, H, W]``.
        input_ids: the caption's token ids ``[B, L]``.
        text_mask: its attention mask ``[B, L]`` (the batch's ``attention_mask``).
        image_tokens, image_embed: the online image encoder's tokens and unit-norm projection.
        text_tokens, text_embed: the online text encoder's tokens and unit-norm projection.
        temp: the learnable temperature (clamped, with gradient).
        alpha: the distillation weight of this step.
        momentum: the momentum encoders' features, None without momentum encoders.
        views: extra encoded views by name (``'image_aug'``, ``'text_masked'``): only those a loss
            declared in its ``views``.
        mlm_input_ids, mlm_labels: ``MaskText``'s masked ids and labels (-100: not masked), if any.
        word_ids, content_mask: ``AnnotateWords``' word index per token and content-word mask, if any.
        image_ids: the samples' image ids (from the data samples' ``image_id``), if every sample has one.
        inputs: the whole batch, read-only (for a loss reading an input not named above).
    """

    image: Tensor
    input_ids: Tensor
    text_mask: Tensor
    image_tokens: Tensor
    image_embed: Tensor
    text_tokens: Tensor
    text_embed: Tensor
    temp: Tensor
    alpha: float
    momentum: MomentumFeatures | None = None
    views: Mapping[str, EncodedView] = field(default_factory=dict)
    mlm_input_ids: Tensor | None = None
    mlm_labels: Tensor | None = None
    word_ids: Tensor | None = None
    content_mask: Tensor | None = None
    image_ids: Tensor | None = None
    inputs: Mapping[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # read-only mappings: a loss cannot add or replace an entry either
        object.__setattr__(self, 'views', _frozen(self.views))
        object.__setattr__(self, 'inputs', _frozen(self.inputs))

    def image_view(self, view: str) -> EncodedView:
        """The encoded image of ``view`` (``'image'``: the original)."""
        if view == 'image':
            return EncodedView(self.image_tokens, self.image_embed)
        return self._view(view)

    def text_view(self, view: str) -> EncodedView:
        """The encoded caption of ``view`` (``'text'``: the original)."""
        if view == 'text':
            return EncodedView(self.text_tokens, self.text_embed)
        return self._view(view)

    def _view(self, view: str) -> EncodedView:
        if view not in self.views:
            raise KeyError(
                f'the view {view!r} was not encoded (encoded: {sorted(self.views)}); a loss '
                'reading it must list it in its `views`'
            )
        return self.views[view]

    def missing(self, names: tuple[str, ...]) -> list[str]:
        """The names among ``names`` whose field is None (an input, a head or the momentum encoder
        missing)."""
        return [n for n in names if getattr(self, n, None) is None]


FEATURE_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(VLFeatures))


@runtime_checkable
class LossModel(Protocol):
    """The part of the pretrainer a loss may use (``ALBEFPretrainer`` provides it)."""

    training: bool
    fusion: nn.Module
    itm_head: nn.Module | None
    mlm_head: nn.Module | None
    image_backbone: nn.Module
    text_backbone: nn.Module

    @property
    def has_momentum(self) -> bool: ...

    def fuse(
        self,
        text_tokens: Tensor,
        text_mask: Tensor,
        image_tokens: Tensor | None = None,
        image_mask: Tensor | None = None,
        attn_layer: int | None = None,
        image_kv: list[tuple[Tensor, Tensor]] | None = None,
        cls_only: bool = False,
    ) -> FusionOutput: ...

    def itm_image_cache(self, image_tokens: Tensor) -> list[tuple[Tensor, Tensor]]: ...

    def encode_image(self, image: Tensor) -> tuple[Tensor, Tensor]: ...

    def momentum_mlm_logits(
        self, input_ids: Tensor, attention_mask: Tensor, image_tokens_m: Tensor, positions: Tensor
    ) -> Tensor: ...
