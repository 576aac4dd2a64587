"""What every vlreg model adds to MMEngine's ``BaseModel``: the mode dispatch and the loss sum."""

from __future__ import annotations

from typing import Any

from mmengine.model import BaseModel
from torch import Tensor


class VLBaseModel(BaseModel):
    """``forward`` dispatches ``mode`` to ``loss`` / ``predict`` / ``tensor``; ``parse_losses`` sums
    exactly the ``loss_*`` entries (diagnostics such as accuracies are logged, never added).

    A subclass defines ``loss(inputs, data_samples)``, ``predict(inputs, data_samples)`` and
    ``tensor(inputs, data_samples)`` (the raw output of ``mode='tensor'``).
    """

    def forward(
        self, inputs: dict[str, Tensor], data_samples: list | None = None, mode: str = 'loss'
    ) -> Any:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.tensor(inputs, data_samples)
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')

    def tensor(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> Any:
        raise NotImplementedError(f'{type(self).__name__} has no mode="tensor" output')

    def parse_losses(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum exactly the ``loss_*`` entries (diagnostics are logged, never added)."""
        log_vars = {k: v.detach().float().mean() for k, v in losses.items()}
        terms = [v.mean() for k, v in losses.items() if k.startswith('loss_')]
        if not terms:
            raise ValueError(f'no loss_* entry among {sorted(losses)}')
        loss = sum(terms)
        return loss, {'loss': loss.detach(), **log_vars}
