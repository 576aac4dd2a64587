"""Build the features and context a loss reads, for tests that call a loss without a pretrainer."""

from __future__ import annotations

from typing import Any

import torch

from vlreg.models.losses import LossContext, MomentumFeatures, VLFeatures

_CORE = (
    'image',
    'input_ids',
    'text_mask',
    'image_tokens',
    'image_embed',
    'text_tokens',
    'text_embed',
    'temp',
)


def stub_features(
    image_embed_m: torch.Tensor | None = None,
    text_embed_m: torch.Tensor | None = None,
    image_tokens_m: torch.Tensor | None = None,
    alpha: float = 0.0,
    **fields: Any,
) -> VLFeatures:
    """VLFeatures with the given fields; the core tensors not given are empty (a loss that reads one
    fails loudly); momentum features when both momentum embeddings are given."""
    for name in _CORE:
        fields.setdefault(name, torch.empty(0))
    momentum = None
    if image_embed_m is not None and text_embed_m is not None:
        momentum = MomentumFeatures(
            image_tokens_m if image_tokens_m is not None else torch.empty(0),
            image_embed_m,
            text_embed_m,
        )
    return VLFeatures(alpha=alpha, momentum=momentum, **fields)


def stub_context(model: Any = None, attn_layer: int | None = None, **fields: Any) -> LossContext:
    """A LossContext over :func:`stub_features`."""
    return LossContext(stub_features(**fields), model, attn_layer)


def model_context(model: Any, features: VLFeatures) -> LossContext:
    """The context the pretrainer's ``loss`` makes for ``features``."""
    return LossContext(features, model, model.itm_attn_layer)
