"""Resumable training on a :class:`~vlreg.datasets.ShardedCaptionDataset` under MMEngine's
``IterBasedTrainLoop``.

:class:`ShardStream` iterates a DataLoader of shards endlessly, one epoch per pass, and knows from
the batches' ``sample_idx`` where every worker of this rank stands; :class:`ShardStreamHook` saves
that in the checkpoints and, on resume, replaces the loop's "advance the dataloader ``iter``
steps" by cheap placeholders and restarts the workers past what was trained (the skipped samples
are read from the tar, not decoded).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log

from vlreg.datasets.shards import ShardedCaptionDataset
from vlreg.registry import HOOKS

__all__ = ['META_KEY', 'ShardStream', 'ShardStreamHook']

META_KEY = 'shard_stream'  #: where :class:`ShardStreamHook` keeps its state in a checkpoint's meta


def _release_workers(*holders: Any) -> None:
    """Shut down the worker processes of DataLoader iterators (held directly or as ``_iterator``)."""
    for holder in holders:
        for it in (holder, getattr(holder, '_iterator', None)):
            shutdown = getattr(it, '_shutdown_workers', None)
            if callable(shutdown):
                shutdown()
        if hasattr(holder, '_iterator') and hasattr(holder, 'persistent_workers'):
            holder._iterator = None  # a DataLoader: persistent workers would keep old copies


class ShardStream:
    """An endless batch iterator over a DataLoader of a :class:`ShardedCaptionDataset` that knows,
    from the batches it returned, where every worker of this rank stands.

    Each pass is one epoch; at its end the next epoch starts (``set_epoch``). ``state_dict()``:
    ``{'epoch', 'next': {worker: position}, 'rotation', 'batches', 'num_workers', 'world_size',
    'exact'}``; ``rotation`` is the worker after the last batch's (the DataLoader's round-robin
    goes on there; see :meth:`ShardedCaptionDataset.load_state_dict`);
    a stream built with that state starts each worker after its ``next`` position. Positions come
    from the samples' ``sample_idx`` (``position * num_workers + worker``); when the batches do
    not carry it (``PackInputs`` without ``sample_idx`` in ``meta_keys``), they are estimated from
    the batch count, assuming the DataLoader's round-robin over the workers (``exact`` False).

    Args:
        dataloader: a ``DataLoader`` whose ``dataset`` is a :class:`ShardedCaptionDataset`.
        state: a ``state_dict()`` to resume from (None: the dataset's current epoch, from the
            start).
        placeholders: return None this many times first, without reading (the batches
            ``IterBasedTrainLoop`` skips on resume).
    """

    def __init__(self, dataloader: Any, state: dict | None = None, placeholders: int = 0) -> None:
        self.dataloader = dataloader
        self.dataset = dataloader.dataset
        if not isinstance(self.dataset, ShardedCaptionDataset):
            raise TypeError(
                f'ShardStream needs a ShardedCaptionDataset, got {type(self.dataset).__name__}'
            )
        self.num_workers = max(1, int(dataloader.num_workers or 0))
        self.world_size = get_dist_info()[1]
        self.placeholders = int(placeholders)
        self.epoch = self.dataset.epoch
        self.next: dict[int, int] = {}
        self.rotation = 0
        self.batches = 0
        self.exact = True
        self._iterator: Iterator | None = None
        if state is not None:
            self._restore(state)

    def _restore(self, state: dict) -> None:
        self.epoch = int(state['epoch'])
        same = (
            state.get('num_workers') == self.num_workers
            and state.get('world_size') == self.world_size
        )
        if not same:
            print_log(
                f"ShardStream: the checkpoint's stream ran {state.get('world_size')} ranks x "
                f'{state.get("num_workers")} workers, this run {self.world_size} x '
                f'{self.num_workers}: the shard assignment differs, so epoch {self.epoch} '
                'restarts from its beginning',
                logger='current',
                level=logging.WARNING,
            )
            return
        self.next = {int(k): int(v) for k, v in dict(state.get('next') or {}).items()}
        self.rotation = int(state.get('rotation', 0))
        self.batches = int(state.get('batches', 0))

    def state_dict(self) -> dict:
        """Where this rank's stream stands (see the class docstring)."""
        positions, rotation = dict(self.next), self.rotation
        if not self.exact:
            rotation = self.batches % self.num_workers
            size = int(self.dataloader.batch_size or 1)
            positions = {
                w: size * len(range(w, self.batches, self.num_workers))
                for w in range(self.num_workers)
            }
        return dict(
            epoch=self.epoch,
            next=positions,
            rotation=rotation,
            batches=self.batches,
            num_workers=self.num_workers,
            world_size=self.world_size,
            exact=self.exact,
        )

    def __iter__(self) -> ShardStream:
        return self

    def __next__(self) -> Any:
        if self.placeholders > 0:
            self.placeholders -= 1
            return None
        if self._iterator is None:
            self._start(fresh=True)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epoch, self.next, self.rotation, self.batches = self.epoch + 1, {}, 0, 0
            self._start(fresh=False)
            try:
                batch = next(self._iterator)
            except StopIteration:
                raise RuntimeError(
                    f'ShardedCaptionDataset: epoch {self.epoch} yielded no batch (every sample '
                    f'bad? counts: {dict(self.dataset.bad_counts)})'
                ) from None
        self._track(batch)
        return batch

    def _start(self, fresh: bool) -> None:
        """Start a pass. ``fresh``: (re)start the workers from the dataset's state; otherwise
        persistent workers go on (their copies advance their epoch by themselves)."""
        if fresh:
            _release_workers(self.dataloader)
        self.dataset.load_state_dict(dict(epoch=self.epoch, skip=self.next, rotation=self.rotation))
        self._iterator = iter(self.dataloader)
        self.dataset.load_state_dict(dict(epoch=self.epoch + 1, skip={}))  # the workers have theirs

    def _track(self, batch: Any) -> None:
        self.batches += 1
        samples = batch.get('data_samples') if isinstance(batch, dict) else None
        found = False
        for sample in samples or ():
            idx = getattr(sample, 'metainfo', {}).get('sample_idx')
            if isinstance(idx, int):
                found = True
                worker, position = idx % self.num_workers, idx // self.num_workers
                self.next[worker] = max(self.next.get(worker, 0), position + 1)
                self.rotation = (worker + 1) % self.num_workers
        if not found and self.exact:
            self.exact = False
            print_log(
                'ShardStream: the batches carry no sample_idx (PackInputs meta_keys); resume '
                'positions are estimated from the batch count (exact without bad samples)',
                logger='current',
                level=logging.WARNING,
            )

    def close(self) -> None:
        """Shut the workers down."""
        _release_workers(self._iterator, self.dataloader)
        self._iterator = None


@HOOKS.register_module()
class ShardStreamHook(Hook):
    """Drives a :class:`ShardedCaptionDataset` under MMEngine's ``IterBasedTrainLoop``: epochs,
    checkpointed positions, and a resume that does not decode what it skips.

    * before training, the loop's batch iterator is replaced by a :class:`ShardStream` (one epoch
      per pass, ``set_epoch`` on the dataset, positions tracked from the batches);
    * every ``gather_interval`` iterations (and at the last) the ranks' stream states are
      gathered (one small object all-gather; nothing in a single process) and every checkpoint
      saves the latest under ``meta['shard_stream']`` (one entry per rank);
    * on resume at iteration ``n``, ``IterBasedTrainLoop`` calls ``next()`` ``n`` times to skip
      what was trained: the stream answers those with None without reading, and its workers start
      each after its saved position (skipped samples are read from the tar, not decoded).

    Set ``gather_interval`` to the checkpoint interval in multi-rank runs to gather less often;
    a checkpoint saved between gathers holds a state of an earlier iteration, and a resume from
    it warns and restarts that state's epoch from its beginning.

    Example:
        ``custom_hooks = [dict(type='ShardStreamHook')]`` with
        ``train_cfg = dict(type='IterBasedTrainLoop', max_iters=...)`` and
        ``custom_imports = dict(imports=['vlreg.engine.shard_stream'])``.
    """

    priority = 'NORMAL'

    def __init__(self, gather_interval: int = 1) -> None:
        if gather_interval < 1:
            raise ValueError(
                f'ShardStreamHook: gather_interval must be >= 1, got {gather_interval}'
            )
        self.gather_interval = gather_interval
        self.stream: ShardStream | None = None
        self._loaded: dict | None = None
        self._states: list | None = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = (checkpoint.get('meta') or {}).get(META_KEY)
        rank, world = get_dist_info()
        if not states:
            return
        if len(states) != world:
            print_log(
                f'ShardStreamHook: the checkpoint holds the stream of {len(states)} ranks, this '
                f'run has {world}: the stream restarts its saved epoch',
                logger='current',
                level=logging.WARNING,
            )
            self._loaded = dict(states[0], num_workers=None)
            return
        self._loaded = states[rank]

    def before_train(self, runner) -> None:
        from mmengine.runner import IterBasedTrainLoop

        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop):
            raise TypeError(
                f'ShardStreamHook drives IterBasedTrainLoop, the run has {type(loop).__name__}: '
                "set train_cfg = dict(type='IterBasedTrainLoop', max_iters=...)"
            )
        state = self._loaded
        if state is not None and state.get('iter') not in (None, loop.iter):
            print_log(
                f'ShardStreamHook: the saved stream state is from iteration {state["iter"]}, the '
                f'checkpoint from {loop.iter} (gather_interval={self.gather_interval}): epoch '
                f'{state["epoch"]} restarts from its beginning',
                logger='current',
                level=logging.WARNING,
            )
            state = dict(state, num_workers=None)
        elif state is None and loop.iter > 0:
            print_log(
                'ShardStreamHook: the checkpoint holds no shard stream state: the stream starts '
                'again at epoch 0',
                logger='current',
                level=logging.WARNING,
            )
        _release_workers(loop.dataloader_iterator, loop.dataloader)
        self.stream = ShardStream(loop.dataloader, state=state, placeholders=loop.iter)
        loop.dataloader_iterator = self.stream

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.stream is None:
            return
        due = self.every_n_train_iters(runner, self.gather_interval) or self.is_last_train_iter(
            runner
        )
        if get_dist_info()[1] == 1 or due:
            state = dict(self.stream.state_dict(), iter=runner.iter + 1)
            self._states = all_gather_object(state) if get_dist_info()[1] > 1 else [state]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._states is not None:
            checkpoint.setdefault('meta', {})[META_KEY] = list(self._states)

    def after_train(self, runner) -> None:
        if self.stream is not None:
            self.stream.close()
