"""An epoch-based training loop that resumes exactly, also from inside an epoch, and guards each step.

Exact resumption needs every random draw after the checkpoint to be the one the uninterrupted run made:

* **data order**: :class:`ResumableSampler` is MMEngine's ``DefaultSampler`` (same order: seed + epoch),
  told to skip the batches of the resumed epoch already trained on (nothing is loaded for them);
* **augmentations and text masks**: :class:`SeededDataset` runs each sample's pipeline with Python's,
  NumPy's and torch's global generators seeded from ``(seed, epoch, position in the epoch)`` (and puts the
  caller's states back), so a sample's random crop, flip or MLM mask depends on neither the worker that
  loads it, nor ``num_workers``, nor what was loaded before;
* **the model's draws** (dropout, hard negatives, the soft mask's word choice) come from the main process's
  generators, saved in every checkpoint by ``RNGStateHook`` and restored before the first resumed step.
  Nothing else draws from them between steps: the train dataloader's worker base seed comes from its own
  generator, and the validation loop runs between saved and restored states.

Queues, momentum encoders, optimizer, schedulers and the iteration (so the alpha warm-up) are in the
checkpoint itself. Each step runs under :class:`~vlreg.engine.nonfinite.NonFiniteGuard`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.runner import EpochBasedTrainLoop

from vlreg.registry import DATA_SAMPLERS, DATASETS, LOOPS
from vlreg.utils.rng import seeded_rng

from .hooks import RNGStateHook
from .nonfinite import NonFiniteGuard


class SampleKey(int):
    """A dataset index that carries the seed its sample's random augmentations are drawn from."""

    seed: int

    def __new__(cls, index: int, seed: int) -> SampleKey:
        key = super().__new__(cls, index)
        key.seed = int(seed)
        return key

    def __reduce__(self) -> tuple:
        return SampleKey, (int(self), self.seed)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The 32-bit seed of the sample at ``position`` of ``epoch`` (independent streams per triple)."""
    return int(np.random.SeedSequence([seed, epoch, position, 0x5EED]).generate_state(1)[0])


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """``DefaultSampler`` (same arguments, same order) yielding :class:`SampleKey` s, able to start an
    epoch after its first ``n`` samples (:meth:`skip_next`). ``len()`` stays the full epoch's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip = 0

    def skip_next(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` samples of this rank in the next epoch only."""
        self._skip = int(num_samples)

    def __iter__(self) -> Iterator[int]:
        start, self._skip = self._skip, 0
        indices = list(super().__iter__())
        seed, epoch, rank, world = int(self.seed), int(self.epoch), self.rank, self.world_size
        for k in range(start, len(indices)):
            yield SampleKey(indices[k], sample_seed(seed, epoch, rank + k * world))


@DATASETS.register_module()
class SeededDataset:
    """A view of ``dataset`` whose ``__getitem__`` seeds the global generators per sample.

    A plain ``int`` index is passed through unseeded; a :class:`SampleKey` runs the sample's pipeline
    under its seed and restores the caller's random states afterwards. Other attributes (``metainfo``,
    ``__len__``...) are the wrapped dataset's.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: int) -> Any:
        seed = getattr(key, 'seed', None)
        if seed is None:
            return self.dataset[key]
        with seeded_rng(seed):
            return self.dataset[int(key)]


def seeded_dataloader_cfg(cfg: dict) -> dict:
    """``cfg`` with its ``DefaultSampler`` made a :class:`ResumableSampler` and its dataset wrapped in
    :class:`SeededDataset` (configs keep naming ``DefaultSampler``: the order is the same)."""
    cfg = copy.deepcopy(dict(cfg))
    sampler = dict(cfg.get('sampler') or dict(type='DefaultSampler'))
    if sampler.get('type') in ('DefaultSampler', 'ResumableSampler'):
        sampler['type'] = 'ResumableSampler'
        cfg['sampler'] = sampler
    dataset = cfg['dataset']
    if not (isinstance(dataset, dict) and dataset.get('type') == 'SeededDataset'):
        cfg['dataset'] = dict(type='SeededDataset', dataset=dataset)
    return cfg


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """MMEngine's ``EpochBasedTrainLoop`` with exact mid-epoch resumption and a non-finite step guard.

    Args:
        runner: the Runner.
        dataloader: the train dataloader config (its ``DefaultSampler`` and dataset are made
            resumable, see :func:`seeded_dataloader_cfg`) or a built ``DataLoader`` (used as is).
        max_epochs, val_begin, val_interval, dynamic_intervals: as in MMEngine.
        nonfinite: :class:`~vlreg.engine.nonfinite.NonFiniteGuard` arguments; default
            ``dict(action='skip', max_skips=10)``.

    A hook that sets ``stop_training`` stops the run after the current iteration.

    Example:
        ``train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=30,
        nonfinite=dict(action='stop'))``
    """

    def __init__(
        self,
        runner,
        dataloader: Any,
        max_epochs: int,
        val_begin: int = 1,
        val_interval: int = 1,
        dynamic_intervals: list | None = None,
        nonfinite: dict | None = None,
    ) -> None:
        if isinstance(dataloader, dict):
            dataloader = seeded_dataloader_cfg(dataloader)
        super().__init__(runner, dataloader, max_epochs, val_begin, val_interval, dynamic_intervals)
        # Worker base seeds from a generator of their own, not from the model's global stream.
        self.dataloader.generator = torch.Generator().manual_seed(int(runner.seed or 0))
        self.guard = NonFiniteGuard(**(nonfinite or {}))

    def run(self) -> Any:
        self.runner.call_hook('before_train')
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval()
            if (
                self.runner.val_loop is not None
                and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0 or self._epoch == self._max_epochs)
            ):
                states = RNGStateHook.capture()
                self.runner.val_loop.run()
                RNGStateHook.restore(states)
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        start = self._iter - self._epoch * len(self.dataloader)
        sampler = self.dataloader.sampler
        if start > 0:
            if not isinstance(sampler, ResumableSampler):
                raise RuntimeError(
                    f'resuming inside epoch {self._epoch + 1} needs a '
                    f'ResumableSampler, the dataloader has {type(sampler).__name__}'
                )
            sampler.skip_next(start * self.dataloader.batch_size)
            self.runner.logger.info(
                f'resuming inside epoch {self._epoch + 1}: skipping its first '
                f'{start} of {len(self.dataloader)} batches'
            )
        for idx, data_batch in enumerate(self.dataloader, start=max(start, 0)):
            self.run_iter(idx, data_batch)
            if self.stop_training:  # a hook asked to stop inside the epoch
                break
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx: int, data_batch: Any) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=idx, data_batch=data_batch)
        guarded = self.guard.wrap(self.runner.optim_wrapper)
        outputs = self.runner.model.train_step(data_batch, optim_wrapper=guarded)
        self.guard.after_step(self.runner, outputs)
        self.runner.call_hook(
            'after_train_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs
        )
        self._iter += 1
