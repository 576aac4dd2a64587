"""Hooks of training: the distillation and soft-mask warm-ups, exact resumption of random state,
checkpoints."""

from __future__ import annotations

import glob
import os
import os.path as osp
import random
import re
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper

from vlreg.registry import HOOKS
from vlreg.utils.checkpoint_io import atomic_write_text

from .model_defaults import alpha_of


def unwrap(model: Any) -> Any:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class AlphaWarmupHook(Hook):
    """Ramp the distillation weight ``alpha`` linearly from 0 to ``alpha`` (ALBEF: over the first epoch).

    ``alpha_t = alpha * min(1, iter / warmup_iters)``; ``warmup_iters=None`` means one epoch of the train
    dataloader. The value is set on the model before every training iteration and logged as ``alpha``.
    ``alpha=None`` (the default) ramps to the model's own ``alpha`` (``model.alpha`` in the config, the one
    place it is set), read once before the first iteration, before this hook changes it.

    Example:
        ``custom_hooks = [dict(type='AlphaWarmupHook')]`` (``alpha=0.3`` overrides the model's value)
    """

    priority = 'NORMAL'

    def __init__(self, alpha: float | None = None, warmup_iters: int | None = None) -> None:
        self.alpha = alpha
        self.warmup_iters = warmup_iters
        self._target: float | None = None if alpha is None else float(alpha)

    def target(self, model: Any) -> float:
        """The final weight: ``alpha`` when given, else the model's ``alpha`` as first read."""
        if self._target is None:
            self._target = alpha_of(model, self.alpha)
        return self._target

    def value(self, it: int, iters_per_epoch: int) -> float:
        if self._target is None:
            raise RuntimeError(
                'AlphaWarmupHook(alpha=None) has not read the model yet: call target(model)'
            )
        warmup = self.warmup_iters if self.warmup_iters is not None else iters_per_epoch
        return self._target if warmup <= 0 else self._target * min(1.0, it / warmup)

    def before_train(self, runner) -> None:
        self.target(runner.model)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        self.target(runner.model)
        alpha = self.value(runner.iter, len(runner.train_dataloader))
        unwrap(runner.model).alpha = alpha
        runner.message_hub.update_scalar('train/alpha', alpha)


@HOOKS.register_module()
class SoftMaskWarmupHook(Hook):
    """Warm up the soft-masked ITM: start it after ``start_iter`` iterations and/or ramp its probability.

    The factor at iteration ``t`` (0-based, ``runner.iter``) is ``0`` for ``t < start_iter``, then
    ``min(1, (t - start_iter) / ramp_iters)`` (``1`` when ``ramp_iters`` is 0); every
    ``SoftMaskITMLoss`` of the model applies itself with probability ``prob * factor``. Set before
    every training iteration from ``runner.iter`` (so a resumed run continues the schedule) and logged as
    ``softmask_warmup``. Without this hook the factor is 1 (the soft mask from the first step).

    Args:
        start_iter: iterations without the soft mask (0: from the start).
        ramp_iters: iterations over which the factor rises linearly from 0 to 1 after ``start_iter``
            (0: a step).

    Example:
        ``custom_hooks = [dict(type='SoftMaskWarmupHook', start_iter=1000, ramp_iters=2000)]``
    """

    priority = 'NORMAL'

    def __init__(self, start_iter: int = 0, ramp_iters: int = 0) -> None:
        if start_iter < 0 or ramp_iters < 0:
            raise ValueError(
                f'SoftMaskWarmupHook: start_iter ({start_iter}) and ramp_iters '
                f'({ramp_iters}) must be >= 0'
            )
        self.start_iter = int(start_iter)
        self.ramp_iters = int(ramp_iters)

    def value(self, it: int) -> float:
        if it < self.start_iter:
            return 0.0
        if self.ramp_iters == 0:
            return 1.0
        return min(1.0, (it - self.start_iter) / self.ramp_iters)

    @staticmethod
    def targets(model: Any) -> list:
        from vlreg.models.losses.softmask_itm import SoftMaskITMLoss

        return [m for m in unwrap(model).modules() if isinstance(m, SoftMaskITMLoss)]

    def before_train(self, runner) -> None:
        if not self.targets(runner.model):
            raise ValueError(
                'SoftMaskWarmupHook is configured but the model has no SoftMaskITMLoss '
                '(custom_hooks of the config)'
            )

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        factor = self.value(runner.iter)
        for loss in self.targets(runner.model):
            loss.warmup_factor = factor
        runner.message_hub.update_scalar('train/softmask_warmup', factor)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the Python / NumPy / torch (CPU and CUDA) random states in every checkpoint and restore them
    when training resumes, so a resumed run draws the same augmentations, masks, dropout and negatives as
    the run it continues.

    States are restored in ``before_train``, after which nothing in the main process draws from them
    before the first step when training runs under ``ResumableEpochBasedTrainLoop`` (its data
    augmentations are seeded per sample, its worker seeds come from a generator of their own): resuming is
    exact from epoch and from mid-epoch (``VLCheckpointHook(iter_interval=...)``) checkpoints alike. NumPy's
    state is stored as plain lists so the checkpoint loads with ``weights_only=True``.

    With several ranks every rank's states are kept (``checkpoint['rng_states']``, one per rank; the ranks'
    generators differ: their dropout and negatives are their own): after each iteration the ranks
    all-gather them (one small object), at a priority above the checkpoint hook's so that a checkpoint
    saved in that iteration holds them; on resume each rank restores its own. A checkpoint of another
    number of ranks restores rank 0's states everywhere, with a warning (the run is then not exact).
    """

    priority = 'LOW'  # after_train_iter before CheckpointHook's (VERY_LOW) saves

    def __init__(self) -> None:
        self._pending: dict | None = None
        self._ranks: list | None = None

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

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if get_dist_info()[1] > 1:
            self._ranks = all_gather_object(self.capture())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = self.capture()
        if self._ranks is not None:
            checkpoint['rng_states'] = list(self._ranks)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        rank, world = get_dist_info()
        ranks = checkpoint.get('rng_states')
        self._pending = checkpoint.get('rng_state')
        if ranks is not None and len(ranks) == world:
            self._pending = ranks[rank]
        elif world > 1 and self._pending is not None:
            saved = len(ranks) if ranks is not None else 1
            runner.logger.warning(
                f'RNGStateHook: the checkpoint holds the random states of {saved} rank(s), this run '
                f"has {world}: every rank restores rank 0's, so the resumed run is not exact"
            )

    def before_train(self, runner) -> None:
        if self._pending is not None:
            self.restore(self._pending)
            runner.logger.info('restored the random states saved in the checkpoint')
            self._pending = None


@HOOKS.register_module()
class VLCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` (every option kept), plus checkpoints inside long epochs and an
    atomic ``last_checkpoint``.

    ``iter_interval=N`` also saves ``iter_<n>.pth`` every N training iterations inside an epoch (``n`` =
    iterations done; not at an epoch's last iteration, where the epoch checkpoint follows), keeping the
    newest ``max_keep_iter_ckpts``. A run resumed from one continues the epoch exactly where it stopped
    (with ``ResumableEpochBasedTrainLoop``). Files are written by :class:`~vlreg.engine.runner.VLRunner`
    (temporary file + rename), and ``last_checkpoint`` is replaced atomically after the file is complete,
    so a process killed while saving leaves the previous checkpoint and the pointer to it intact.

    Example:
        ``default_hooks = dict(checkpoint=dict(type='VLCheckpointHook', interval=1, iter_interval=2000))``
    """

    def __init__(
        self, *args, iter_interval: int | None = None, max_keep_iter_ckpts: int = 2, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        if iter_interval is not None and iter_interval <= 0:
            raise ValueError(
                f'VLCheckpointHook: iter_interval must be positive, got {iter_interval}'
            )
        self.iter_interval = iter_interval
        self.max_keep_iter_ckpts = max_keep_iter_ckpts

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if not self.by_epoch or self.iter_interval is None:
            return
        if (runner.iter + 1) % self.iter_interval or batch_idx + 1 == len(runner.train_dataloader):
            return
        step = runner.iter + 1
        runner.logger.info(
            f'Saving checkpoint at {step} iterations (inside epoch {runner.epoch + 1})'
        )
        self._write(runner, f'iter_{step}.pth', dict(epoch=runner.epoch, iter=step), by_epoch=False)
        if is_main_process():
            self._prune_iter_ckpts()

    def _prune_iter_ckpts(self) -> None:
        found = glob.glob(osp.join(self.out_dir, 'iter_*.pth'))
        numbered = sorted(
            (int(m.group(1)), p)
            for p in found
            if (m := re.fullmatch(r'iter_(\d+)\.pth', osp.basename(p)))
        )
        for _, path in numbered[: max(0, len(numbered) - self.max_keep_iter_ckpts)]:
            os.remove(path)

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                old = osp.join(
                    self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft())
                )
                if is_main_process() and osp.isfile(old):
                    os.remove(old)
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        self._write(runner, self.filename_tmpl.format(step), meta, by_epoch=self.by_epoch)

    def _write(self, runner, filename: str, meta: dict, by_epoch: bool) -> None:
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if is_main_process():
            atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
