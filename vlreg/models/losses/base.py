"""What every loss shares: the features it reads, its weight, and a clear error when one is missing."""
from __future__ import annotations

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
