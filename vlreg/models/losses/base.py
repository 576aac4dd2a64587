"""What every loss shares: the features it reads, its weight, and a clear error when one is missing."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn


class BaseVLLoss(nn.Module):
    """A single objective. Subclasses set ``requires`` and implement :meth:`compute`.

    A loss owns no trainable parameters (buffers such as queues are fine), reads named features built by
    the pretrainer (see docs/architecture.md), returns ``{'loss_<name>': weighted tensor}`` and logs
    diagnostics under keys without the word "loss".

    Args:
        loss_weight: multiplies the returned loss.
    """

    requires: tuple[str, ...] = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, features: dict[str, Any], model: Any) -> dict[str, Tensor]:
        missing = [k for k in self.requires if k not in features]
        if missing:
            raise KeyError(f'{type(self).__name__} needs features {missing}; the model provided '
                           f'{sorted(features)} (is a head, the momentum encoder or an input missing?)')
        if any(p.requires_grad for p in self.parameters(recurse=True)):
            raise RuntimeError(f'{type(self).__name__} must not own trainable parameters')
        return self.compute(features, model)

    def compute(self, features: dict[str, Any], model: Any) -> dict[str, Tensor]:
        raise NotImplementedError


IMAGE_VIEWS = ('image', 'image_aug')
TEXT_VIEWS = ('text', 'text_masked')


def view_key(base: str, view: str) -> str:
    """Feature key of a view: ``view_key('image_embed', 'image_aug') == 'image_embed_aug'``."""
    kind, _, suffix = view.partition('_')
    return f'{base}_{suffix}' if suffix else base


def check_views(views: Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """Validate (image view, text view) pairs; the pretrainer encodes the views that losses ask for."""
    out = tuple((str(a), str(b)) for a, b in views)
    for image_view, text_view in out:
        if image_view not in IMAGE_VIEWS or text_view not in TEXT_VIEWS:
            raise ValueError(f'unknown view pair ({image_view!r}, {text_view!r}); image views: '
                             f'{IMAGE_VIEWS}, text views: {TEXT_VIEWS}')
    if not out:
        raise ValueError('a loss needs at least one (image view, text view) pair')
    return out


def check_view_weights(weights: Sequence[float] | None,
                       views: tuple[tuple[str, str], ...], owner: str) -> tuple[float, ...] | None:
    """Validate one non-negative weight per view (None: the loss's default weighting)."""
    if weights is None:
        return None
    out = tuple(float(w) for w in weights)
    if len(out) != len(views):
        raise ValueError(f'{owner}: {len(out)} view_weights for {len(views)} views {list(views)}')
    if any(w < 0 for w in out) or sum(out) <= 0:
        raise ValueError(f'{owner}: view_weights must be >= 0 and not all 0, got {list(out)}')
    return out
