"""Catching a non-finite loss or gradient at the step it happens, before it reaches the weights.

:class:`NonFiniteGuard` wraps the optimizer wrapper for one training step (the model's ``train_step`` is
unchanged): the summed loss and, before the optimizer step, the gradients are checked. A bad step is never
applied (``zero_grad`` instead of ``step``), so weights, optimizer moments and the checkpoints written
afterwards stay finite. After the step the guard names the loss terms that went non-finite (or the
parameters whose gradient did) and either counts a skip (``action='skip'``; training stops once
``max_skips`` steps were skipped) or stops at once (``action='stop'``), raising
:class:`NonFiniteLossError`. What the forward pass already did is kept on a skip: the momentum encoders'
EMA update (of finite weights) and the queues' enqueue of momentum features; if a buffer went non-finite
the guard stops whatever the action.

With ``AmpOptimWrapper`` only the loss is checked: the loss scaler owns inf / NaN gradients (it skips those
steps and lowers its scale). In distributed runs the decision is all-reduced, so every rank skips together.
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.dist import all_reduce
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

from .hooks import unwrap

ACTIONS = ('skip', 'stop')


class NonFiniteLossError(RuntimeError):
    """Training stopped on a non-finite loss or gradient; the message names the terms."""


class _GuardedOptimWrapper:
    """Delegates to an ``OptimWrapper``; ``update_params`` refuses a step with non-finite loss / grads."""

    def __init__(self, inner: OptimWrapper) -> None:
        self._inner = inner
        self.loss_finite = True
        self.grads_finite = True
        self.bad_params: list[Tensor] = []
        self.skipped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check_grads(self) -> bool:
        grads = [
            p.grad
            for group in self._inner.optimizer.param_groups
            for p in group['params']
            if p.grad is not None
        ]
        if not grads or isinstance(self._inner, AmpOptimWrapper):
            return True
        if bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return True
        self.bad_params = [
            p
            for group in self._inner.optimizer.param_groups
            for p in group['params']
            if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        return False

    def update_params(
        self, loss: Tensor, step_kwargs: dict | None = None, zero_kwargs: dict | None = None
    ) -> None:
        self.loss_finite &= bool(torch.isfinite(loss.detach()).all())
        self._inner.backward(
            self._inner.scale_loss(loss)
        )  # always: DDP's all-reduce needs every rank
        if not self._inner.should_update():
            return
        self.grads_finite = self._check_grads()
        bad = torch.tensor(float(not (self.loss_finite and self.grads_finite)))
        all_reduce(bad)
        if float(bad) > 0:
            self.skipped = True
            self._inner.zero_grad(**(zero_kwargs or {}))
            return
        self._inner.step(**(step_kwargs or {}))
        self._inner.zero_grad(**(zero_kwargs or {}))


class NonFiniteGuard:
    """The policy for non-finite steps (``train_cfg.nonfinite`` of ``ResumableEpochBasedTrainLoop``).

    Args:
        action: ``'skip'`` (default) drops the step and counts it; ``'stop'`` stops training.
        max_skips: with ``'skip'``, how many steps may be skipped in the run
            (counted across resumes: the count is in the checkpoint's message hub): the skip
            after the max_skips-th stops training. Default 10.
    """

    def __init__(self, action: str = 'skip', max_skips: int = 10) -> None:
        if action not in ACTIONS:
            raise ValueError(f'train_cfg.nonfinite.action: {action!r} is not one of {ACTIONS}')
        if max_skips < 0:
            raise ValueError(f'train_cfg.nonfinite.max_skips must be >= 0, got {max_skips}')
        self.action, self.max_skips = action, max_skips
        self._wrapper: _GuardedOptimWrapper | None = None

    def wrap(self, optim_wrapper: OptimWrapper) -> _GuardedOptimWrapper:
        self._wrapper = _GuardedOptimWrapper(optim_wrapper)
        return self._wrapper

    @staticmethod
    def _describe(runner, outputs: dict, wrapper: _GuardedOptimWrapper) -> str:
        terms = {
            k: float(v)
            for k, v in (outputs or {}).items()
            if isinstance(v, Tensor) and k.startswith('loss_') and not torch.isfinite(v).all()
        }
        parts = []
        if terms:
            parts.append(
                'non-finite loss terms: ' + ', '.join(f'{k}={v}' for k, v in terms.items())
            )
        elif not wrapper.loss_finite:
            parts.append('non-finite summed loss')
        if not wrapper.grads_finite:
            bad = {id(p) for p in wrapper.bad_params}
            names = [n for n, p in unwrap(runner.model).named_parameters() if id(p) in bad]
            parts.append(f'non-finite gradient in {len(names)} parameters {names[:5]}')
        if not parts:
            parts.append('non-finite loss or gradient on another rank')
        return f'iteration {runner.iter + 1}: ' + '; '.join(parts)

    def after_step(self, runner, outputs: dict) -> None:
        """Log and apply the policy if the step just taken was refused."""
        wrapper, self._wrapper = self._wrapper, None
        if wrapper is None or not wrapper.skipped:
            return
        what = self._describe(runner, outputs, wrapper)
        bad_buffers = [
            n
            for n, b in unwrap(runner.model).named_buffers()
            if b.is_floating_point() and not torch.isfinite(b).all()
        ]
        if bad_buffers:
            raise NonFiniteLossError(
                f'{what}; buffers went non-finite too ({bad_buffers[:5]}): '
                'stopping; resume from the last checkpoint'
            )
        if self.action == 'stop':
            raise NonFiniteLossError(
                f"{what}; the step was not applied; stopping (train_cfg.nonfinite.action='stop')"
            )
        hub = runner.message_hub
        skips = int(hub.get_info('nonfinite_skips', 0)) + 1
        hub.update_info('nonfinite_skips', skips)
        runner.logger.warning(f'{what}; step skipped ({skips} of at most {self.max_skips})')
        if skips > self.max_skips:
            raise NonFiniteLossError(
                f'{what}; {skips} steps skipped, more than '
                f'train_cfg.nonfinite.max_skips={self.max_skips}: stopping'
            )
