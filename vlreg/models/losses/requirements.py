"""Build-time checks that the model can give every loss what it declares it needs (see
:class:`~.base.BaseVLLoss`): each error names the loss's config key ``losses.<name>``."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .contract import FEATURE_FIELDS


def check_loss(
    name: str, loss: nn.Module, heads: Mapping[str, nn.Module | None], has_momentum: bool
) -> None:
    """Raise a ValueError naming ``losses.<name>`` when the model cannot meet ``loss``'s declarations.

    Args:
        name: the loss's key in the ``losses`` config.
        loss: the built loss.
        heads: the model's heads by attribute name (None: not built).
        has_momentum: whether the model has momentum encoders.
    """
    owner = f'losses.{name} ({type(loss).__name__})'
    unknown = [k for k in getattr(loss, 'requires', ()) if k not in FEATURE_FIELDS]
    if unknown:
        raise ValueError(
            f'{owner} requires features {unknown} that the pretrainer does not provide; '
            f'provided: {sorted(FEATURE_FIELDS)}'
        )
    for head in getattr(loss, 'needs_heads', ()):
        if heads.get(head) is None:
            raise ValueError(
                f"{owner} needs the model's {head}, but it is None: set "
                f'model.{head} (e.g. dict(type=...)) or drop the loss'
            )
    if getattr(loss, 'needs_momentum', False) and not has_momentum:
        raise ValueError(f'{owner} needs the momentum encoders, but model.momentum is None')


def declared_attn_layer(losses: Mapping[str, nn.Module], n_fusion: int) -> int | None:
    """The one fusion layer whose cross-attention the losses explain (their ``cross_attn_layer``), or
    None; checked against the fusion depth ``n_fusion`` (0: unknown, not checked)."""
    askers = {
        n: loss.cross_attn_layer
        for n, loss in losses.items()
        if getattr(loss, 'cross_attn_layer', None) is not None
    }
    layers = set(askers.values())
    if len(layers) > 1:
        asked = ', '.join(f'losses.{n}: layer={layer}' for n, layer in askers.items())
        raise ValueError(
            f'losses ask for Grad-CAM on different fusion layers {sorted(layers)} ({asked}); '
            "the shared positive pass keeps one layer's probabilities"
        )
    layer = layers.pop() if layers else None
    if layer is None or not n_fusion:
        return layer
    if not -n_fusion <= layer < n_fusion:
        names = ', '.join(f'losses.{n}' for n in askers)
        raise ValueError(
            f'Grad-CAM layer {layer} ({names}: layer) does not exist: the fusion encoder '
            f'has {n_fusion} layers; allowed: 0 to {n_fusion - 2} (or {-n_fusion} to -2; '
            'not the last layer)'
        )
    if layer % n_fusion == n_fusion - 1:
        raise ValueError(
            f"Grad-CAM layer {layer} is the last fusion layer: there the words' "
            'cross-attention cannot reach the fused [CLS] (their gradient is exactly 0); '
            'use an earlier layer (ALBEF: the 3rd of 6)'
        )
    return layer
