"""Hooks of pre-training: the distillation warm-up and exact resumption of random state."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from vlreg.registry import HOOKS


def unwrap(model: Any) -> Any:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class AlphaWarmupHook(Hook):
    """Ramp the distillation weight ``alpha`` linearly from 0 to ``alpha`` (ALBEF: over the first epoch).

    ``alpha_t = alpha * min(1, iter / warmup_iters)``; ``warmup_iters=None`` means one epoch of the train
    dataloader. The value is set on the model before every training iteration and logged as ``alpha``.

    Example:
        ``custom_hooks = [dict(type='AlphaWarmupHook', alpha=0.4)]``
    """

    priority = 'NORMAL'

    def __init__(self, alpha: float = 0.4, warmup_iters: int | None = None) -> None:
        self.alpha = alpha
        self.warmup_iters = warmup_iters

    def value(self, it: int, iters_per_epoch: int) -> float:
        warmup = self.warmup_iters if self.warmup_iters is not None else iters_per_epoch
        return self.alpha if warmup <= 0 else self.alpha * min(1.0, it / warmup)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        alpha = self.value(runner.iter, len(runner.train_dataloader))
        unwrap(runner.model).alpha = alpha
        runner.message_hub.update_scalar('train/alpha', alpha)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the Python / NumPy / torch (CPU and CUDA) random states in every checkpoint and restore them
    when training resumes, so a resumed run draws the same augmentations, masks, dropout and negatives as
    the run it continues.

    States are restored in ``before_train``: exact for epoch-based loops (checkpoints at epoch ends) and for
    iteration-based loops whose data pipeline runs in worker processes (MMEngine re-seeds workers
    deterministically). An iteration-based loop with ``num_workers=0`` replays the skipped batches in the
    main process after the restore, so its data randomness is not exact. NumPy's state is stored as plain
    lists so the checkpoint loads with ``weights_only=True``.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: dict | None = None

    @staticmethod
    def capture() -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {
            'python': random.getstate(),
            'numpy': [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            'torch': torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def restore(state: dict) -> None:
        version, internal, gauss = state['python']
        random.setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, gauss = state['numpy']
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state['torch'].cpu())
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = self.capture()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        if self._pending is not None:
            self.restore(self._pending)
            runner.logger.info('restored the random states saved in the checkpoint')
            self._pending = None
