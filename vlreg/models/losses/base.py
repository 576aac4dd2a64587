"""What every loss shares: what it declares it needs, its weight, and a clear error when a need is
not met (at build time where the model decides it, at run time for what the batch decides)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from vlreg.structures.batch_keys import IMAGE_VIEWS, TEXT_VIEWS

from .context import LossContext


class BaseVLLoss(nn.Module):
    """A single objective. Subclasses declare their needs and implement :meth:`compute`.

    A loss owns no trainable parameters (buffers such as queues are fine), reads the step's
    :class:`~.contract.VLFeatures` and the model through a :class:`~.context.LossContext`, writes nothing
    into them, returns ``{'loss_<name>': weighted tensor}`` and logs diagnostics under keys without the
    word "loss" (docs/architecture.md, "Losses").

    Declarations (class or instance attributes), checked by the pretrainer when it is built
    (:func:`~.requirements.check_loss`), naming ``losses.<name>``:

    - ``requires``: the :class:`~.contract.VLFeatures` fields read; the optional ones (MLM ids, word
      annotations, image ids) are checked again when a batch arrives.
    - ``needs_heads``: model heads that must exist (e.g. ``('itm_head',)``).
    - ``needs_momentum``: the loss cannot work without the momentum encoders.
    - ``views``: ``(image view, text view)`` pairs to encode (multi-modal augmentation).
    - ``cross_attn_layer``: the fusion layer whose cross-attention probabilities the loss explains
      (None: none); ``reuses_itm_pass``: whether it reads them from the shared positive pass.

    Args:
        loss_weight: multiplies the returned loss.
    """

    requires: tuple[str, ...] = ()
    needs_heads: tuple[str, ...] = ()
    needs_momentum: bool = False
    views: tuple[tuple[str, str], ...] = ()
    cross_attn_layer: int | None = None
    reuses_itm_pass: bool = True

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, ctx: LossContext) -> dict[str, Tensor]:
        missing = ctx.features.missing(self.requires)
        if missing:
            raise KeyError(
                f'{type(self).__name__} needs features {missing}, which this batch lacks '
                '(is a pipeline transform, a head or the momentum encoder missing?)'
            )
        if any(p.requires_grad for p in self.parameters(recurse=True)):
            raise RuntimeError(f'{type(self).__name__} must not own trainable parameters')
        return self.compute(ctx)

    def compute(self, ctx: LossContext) -> dict[str, Tensor]:
        raise NotImplementedError


def check_views(views: Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """Validate (image view, text view) pairs; the pretrainer encodes the views that losses ask for."""
    out = tuple((str(a), str(b)) for a, b in views)
    for image_view, text_view in out:
        if image_view not in IMAGE_VIEWS or text_view not in TEXT_VIEWS:
            raise ValueError(
                f'unknown view pair ({image_view!r}, {text_view!r}); image views: '
                f'{IMAGE_VIEWS}, text views: {TEXT_VIEWS}'
            )
    if not out:
        raise ValueError('a loss needs at least one (image view, text view) pair')
    return out


def check_view_weights(
    weights: Sequence[float] | None, views: tuple[tuple[str, str], ...], owner: str
) -> tuple[float, ...] | None:
    """Validate one non-negative weight per view (None: the loss's default weighting)."""
    if weights is None:
        return None
    out = tuple(float(w) for w in weights)
    if len(out) != len(views):
        raise ValueError(f'{owner}: {len(out)} view_weights for {len(views)} views {list(views)}')
    if any(w < 0 for w in out) or sum(out) <= 0:
        raise ValueError(f'{owner}: view_weights must be >= 0 and not all 0, got {list(out)}')
    return out
