"""Streaming image-caption pre-training data from tar shards in the webdataset layout
(:mod:`vlreg.datasets.shard_format`).

Order: each pass (epoch) shuffles the shard list with ``(seed, epoch)`` (the same permutation on
every rank); rank ``r`` of ``w`` takes shards ``r::w`` of it and DataLoader worker ``i`` of ``n``
every ``n``-th of those; an optional shuffle buffer mixes samples with a generator seeded from
``(seed, epoch, rank, worker)``. Each sample's pipeline runs with Python's, NumPy's and torch's
generators seeded from ``(seed, epoch, rank, worker, position)`` (``seed_pipeline``), so the
samples, their order and their augmentations depend on nothing else.

Resume: a consumer (rank, worker) can start a pass after its first ``n`` samples, which are read
from the tar but neither decoded nor run through the pipeline (:meth:`ShardedCaptionDataset.skip`,
:meth:`~ShardedCaptionDataset.load_state_dict`). A sample's ``sample_idx`` is
``position * num_workers + worker``, so the main process knows from the batches it consumed where
each worker stands: :class:`~vlreg.engine.shard_stream.ShardStreamHook` keeps that in the
checkpoints and resumes from it.
"""

from __future__ import annotations

import logging
import os
import random
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch.utils.data import IterableDataset, get_worker_info

from vlreg.registry import DATASETS
from vlreg.utils.rng import seeded_rng

from .base import build_pipeline, join_root
from .reader import parse_document
from .shard_format import (
    IMAGE_EXTS,
    INDEX_NAME,
    ShardError,
    member_key,
    read_shard_index,
    resolve_shards,
    stable_image_id,
)
from .transforms.loading import BadSampleError
from .transforms.text import clean_caption

__all__ = ['ShardedCaptionDataset']


def _sample_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


class _Bad(Exception):
    """A raw sample that cannot be used: ``reason`` (one of :data:`BAD_REASONS`) and why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# --- the dataset ---------------------------------------------------------------------------------
@DATASETS.register_module()
class ShardedCaptionDataset(IterableDataset):
    """Image-caption pairs streamed from tar shards (webdataset layout; module docstring).

    Samples (before the pipeline) hold what :class:`~vlreg.datasets.CaptionDataset`'s do:
    ``caption`` (cleaned as CaptionDataset cleans it, ``max_words``), ``image_id`` (an int: the
    json's ``image_id``, else the key; text ids are hashed, :func:`stable_image_id`),
    ``ori_image_id`` (the json's ``ori_image_id``, else its ``image_id``, else the key),
    ``img_path`` (``<shard>/<member>``, naming the image in messages), ``ann_file`` (the shard),
    ``ann_index`` (the sample's position in the shard) and ``sample_idx``
    (``position * num_workers + worker`` in this consumer's pass), plus ``img_bytes``, the image
    file's bytes, which ``LoadImage`` decodes: the pre-training pipelines work unchanged.

    Bad samples are skipped, counted per reason in ``bad_counts`` (:data:`BAD_REASONS`; per
    process: each DataLoader worker counts its own) and logged with the shard and the member (the
    first ``log_first``, then one line every ``log_every``). With ``max_bad_fraction``, a shard
    whose bad share exceeds it raises :class:`ShardError` naming the shard.

    ``len()`` (only when the shard index gives every shard's count): the samples this rank reads
    in the next pass, as the index counts them.

    Args:
        shards: shard files: a list, a glob (``'shards/*.tar'``) or a brace range
            (``'shard-{000000..000099}.tar'``), relative to ``data_root``.
        data_root: root of ``shards`` and ``index_file``.
        pipeline: transforms (the first ``LoadImage``), the last ``PackInputs``.
        max_words: :func:`~vlreg.datasets.transforms.text.clean_caption`'s word limit; None keeps
            the text as it is (stripped).
        seed: seeds the shard order, the shuffle buffer and the pipeline (non-negative).
        shuffle_shards: shuffle the shard list every pass (False: the given order).
        shuffle_buffer: samples held in a shuffle buffer (0: none; memory: that many encoded
            images per worker).
        max_bad_fraction: raise when a shard's bad samples exceed this share (None: never).
        index_file: the shard index; ``'auto'``: ``index.json`` next to the first shard if it
            exists; None: none (no ``len``).
        seed_pipeline: run each sample's pipeline under its own seed (exact resumption of the
            augmentations); False leaves the global generators alone.
        log_first: bad samples logged one by one, per process.
        log_every: after those, one line per this many bad samples.

    Example:
        >>> dict(type='ShardedCaptionDataset', data_root='data/cc3m_shards',
        ...      shards='shard-{000000..000331}.tar', shuffle_buffer=1000,
        ...      pipeline=[dict(type='LoadImage'), ..., dict(type='PackInputs')])
    """

    def __init__(
        self,
        shards: str | Sequence[str],
        data_root: str = '',
        pipeline: Sequence[dict | Callable] = (),
        max_words: int | None = 30,
        seed: int = 0,
        shuffle_shards: bool = True,
        shuffle_buffer: int = 0,
        max_bad_fraction: float | None = None,
        index_file: str | None = 'auto',
        seed_pipeline: bool = True,
        log_first: int = 5,
        log_every: int = 1000,
    ) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f'ShardedCaptionDataset: seed must be an int >= 0, got {seed!r}')
        if shuffle_buffer < 0:
            raise ValueError(
                f'ShardedCaptionDataset: shuffle_buffer must be >= 0, got {shuffle_buffer}'
            )
        if max_bad_fraction is not None and not 0 <= max_bad_fraction < 1:
            raise ValueError(
                f'ShardedCaptionDataset: max_bad_fraction must be in [0, 1), got {max_bad_fraction}'
            )
        self.data_root = data_root
        self.shards = resolve_shards(shards, data_root)
        self.pipeline = build_pipeline(pipeline)
        self.max_words = max_words
        self.seed = seed
        self.shuffle_shards = shuffle_shards
        self.shuffle_buffer = int(shuffle_buffer)
        self.max_bad_fraction = max_bad_fraction
        self.seed_pipeline = seed_pipeline
        self.log_first = log_first
        self.log_every = max(1, log_every)
        self.index_file, self.counts = self._load_index(index_file)
        self.epoch = 0
        self.bad_counts: Counter[str] = Counter()
        self._skip: dict[int, int] = {}
        self._skip_all = 0
        self._rotation = 0  # worker ids shifted by this in the next pass (a resumed DataLoader)
        self._position = 0  # raw samples taken in the current pass (num_workers=0)
        self._pass_epoch = 0
        self._tally: dict[str, dict[str, Any]] = {}

    # --- configuration ----------------------------------------------------------------------------
    def _load_index(self, index_file: str | None) -> tuple[str | None, dict[str, int]]:
        if index_file is None:
            return None, {}
        if index_file == 'auto':
            path = os.path.join(os.path.dirname(self.shards[0]), INDEX_NAME)
            if not os.path.isfile(path):
                return None, {}
        else:
            path = join_root(self.data_root, index_file) or index_file
        by_name = read_shard_index(path)
        return path, {
            s: by_name[os.path.basename(s)] for s in self.shards if os.path.basename(s) in by_name
        }

    @property
    def metainfo(self) -> dict:
        """Dataset meta (none; MMEngine's loops look for it)."""
        return {}

    def __len__(self) -> int:
        missing = [s for s in self.shards if s not in self.counts]
        if missing:
            where = f'index {self.index_file!r}' if self.index_file else 'no shard index'
            raise TypeError(
                f'ShardedCaptionDataset has no length: {where} gives no sample count for '
                f'{len(missing)} shards (e.g. {missing[0]!r}); write shards with '
                'tools/prepare_data.py shards, which writes index.json'
            )
        rank, world = get_dist_info()
        return sum(self.counts[s] for s in self.shard_order(self.epoch)[rank::world])

    @property
    def num_samples(self) -> int | None:
        """Samples in all shards, from the index (None without a complete index)."""
        if any(s not in self.counts for s in self.shards):
            return None
        return sum(self.counts.values())

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (each pass then advances it by one by itself)."""
        self.epoch = int(epoch)

    def skip(self, num_samples: int, worker: int | None = None) -> None:
        """Start the next pass after the first ``num_samples`` samples of a consumer (``worker``'s
        of this rank; None: every worker's, e.g. ``num_workers=0``). Skipped samples are read from
        the tar but neither decoded nor run through the pipeline; positions count every sample
        taken from the stream, the bad ones included, as :meth:`state_dict` does."""
        if num_samples < 0:
            raise ValueError(f'skip: num_samples must be >= 0, got {num_samples}')
        if worker is None:
            self._skip_all = int(num_samples)
        else:
            self._skip[int(worker)] = int(num_samples)

    def state_dict(self) -> dict:
        """Where this process's stream stands: ``{'epoch', 'skip': {worker: position}}``.

        Exact for ``num_workers=0`` (the DataLoader takes samples from this object); with workers
        the main process cannot see them: :class:`ShardStream` tracks the batches instead.
        """
        return dict(epoch=self._pass_epoch, skip={0: self._position}, rotation=0)

    def load_state_dict(self, state: dict) -> None:
        """Resume a pass: epoch ``state['epoch']``, each worker after ``state['skip'][worker]``;
        ``state['rotation']`` (default 0): DataLoader worker ``i`` plays worker
        ``(i + rotation) % num_workers`` in that pass, so that a resumed DataLoader, which starts
        its round-robin at worker 0, returns the batches in the order the interrupted one would."""
        self.set_epoch(state['epoch'])
        self._skip = {int(k): int(v) for k, v in dict(state.get('skip') or {}).items()}
        self._skip_all = 0
        self._rotation = int(state.get('rotation', 0))

    # --- order --------------------------------------------------------------------------------------
    def shard_order(self, epoch: int) -> list[str]:
        """Every shard, in the order of ``epoch`` (the same on every rank)."""
        order = list(self.shards)
        if self.shuffle_shards:
            random.Random(f'shards:{self.seed}:{epoch}').shuffle(order)
        return order

    def assigned_shards(
        self, epoch: int, rank: int, world: int, worker: int, workers: int
    ) -> list[str]:
        """The shards worker ``worker`` of ``workers`` on rank ``rank`` of ``world`` reads in ``epoch``.

        Raises:
            ValueError: fewer shards than ``world * workers`` consumers.
        """
        consumers = world * workers
        if len(self.shards) < consumers:
            raise ValueError(
                f'ShardedCaptionDataset: {len(self.shards)} shards for {world} ranks x '
                f'{workers} dataloader workers = {consumers} consumers; every consumer needs at '
                'least one shard: write more, smaller shards (--samples-per-shard) or use fewer '
                f'workers (first shard: {self.shards[0]!r})'
            )
        return self.shard_order(epoch)[rank::world][worker::workers]

    # --- iteration ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        rank, world = get_dist_info()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        worker = (worker + self._rotation) % workers
        epoch, self.epoch = self.epoch, self.epoch + 1
        skip = self._skip.get(worker, self._skip_all)
        self._skip, self._skip_all, self._rotation = {}, 0, 0  # the next pass starts afresh
        shards = self.assigned_shards(epoch, rank, world, worker, workers)
        self._pass_epoch, self._position = epoch, 0
        return self._generate(shards, skip, (epoch, rank, worker, workers))

    def _generate(
        self, shards: list[str], skip: int, ctx: tuple[int, int, int, int]
    ) -> Iterator[Any]:
        epoch, rank, worker, workers = ctx
        stream: Iterable[dict] = self._raw_stream(shards)
        if self.shuffle_buffer > 0:
            rng = random.Random(f'buffer:{self.seed}:{epoch}:{rank}:{worker}')
            stream = _buffered(stream, self.shuffle_buffer, rng)
        for position, raw in enumerate(stream):
            self._position = position + 1
            if position < skip:
                continue
            out = self._prepare(raw, position, ctx)
            if out is not None:
                yield out

    def _prepare(self, raw: dict, position: int, ctx: tuple[int, int, int, int]) -> Any:
        """The pipeline's output for one raw sample, or None (counted) when it refuses it."""
        epoch, rank, worker, workers = ctx
        results = dict(
            img_bytes=raw['image'],
            img_path=f'{raw["shard"]}/{raw["member"]}',
            caption=raw['caption'],
            image_id=raw['image_id'],
            ori_image_id=raw['ori_image_id'],
            ann_file=raw['shard'],
            ann_index=raw['index'],
            sample_idx=position * workers + worker,
        )
        try:
            if self.seed_pipeline:
                with seeded_rng(_sample_seed(self.seed, epoch, rank, worker, position)):
                    out = self._run_pipeline(results)
            else:
                out = self._run_pipeline(results)
        except BadSampleError as err:
            self._bad('undecodable', raw['shard'], raw['member'], str(err))
            return None
        if out is None:
            self._bad('undecodable', raw['shard'], raw['member'], 'the pipeline dropped it')
        return out

    def _run_pipeline(self, results: dict) -> Any:
        for transform in self.pipeline:
            results = transform(results)
            if results is None:
                return None
        return results

    # --- reading shards -----------------------------------------------------------------------------
    def _raw_stream(self, shards: list[str]) -> Iterator[dict]:
        for shard in shards:
            yield from self._read_shard(shard)

    def _read_shard(self, shard: str) -> Iterator[dict]:
        """The usable raw samples of one shard, in tar order; bad ones are counted."""
        tally = self._tally[shard] = dict(items=0, bad=0, done=False)
        key, group, member_name = None, {}, None
        try:
            with tarfile.open(shard, mode='r|*') as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    member_name = member.name
                    name_key, ext = member_key(member.name)
                    if name_key != key and group:  # a new key: the previous one is complete
                        raw = self._complete(shard, key, group, tally)
                        group = {}
                        if raw is not None:
                            yield raw
                    key = name_key
                    handle = archive.extractfile(member)
                    data = handle.read() if handle is not None else b''
                    if len(data) != member.size:  # stream mode does not notice a cut member
                        raise tarfile.ReadError(
                            f'cut short: {len(data)} of its {member.size} bytes'
                        )
                    group[ext] = data
            member_name = None
            if group:
                raw = self._complete(shard, key, group, tally)
                if raw is not None:
                    yield raw
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            where = f'at member {member_name!r}' if member_name else 'at its start or end'
            tally['items'] += 1
            self._bad('corrupt_tar', shard, member_name, f'unreadable {where}: {err}; rest skipped')
        expected = self.counts.get(shard)
        if expected is not None and tally['items'] < expected:
            lost = expected - tally['items']
            tally['items'] += lost
            self._bad(
                'missing_samples',
                shard,
                None,
                f'{lost} of the {expected} samples its index lists are missing',
                count=lost,
            )
        tally['done'] = True
        self._check_fraction(shard)

    def _complete(
        self, shard: str, key: str | None, group: dict[str, bytes], tally: dict
    ) -> dict | None:
        """A raw sample of one key's members, or None (counted, logged) when it is unusable."""
        index = tally['items']
        tally['items'] += 1
        ext = next((e for e in IMAGE_EXTS if e in group), None)
        try:
            if ext is None:
                raise _Bad('no_image', f'no image member (has {sorted(group)})')
            caption, image_id, ori_image_id = self._caption(shard, str(key), group)
        except _Bad as bad:
            self._bad(bad.reason, shard, f'{key}.*', str(bad))
            return None
        return dict(
            shard=shard,
            member=f'{key}.{ext}',
            index=index,
            image=group[ext],
            caption=caption,
            image_id=image_id,
            ori_image_id=ori_image_id,
        )

    def _caption(self, shard: str, key: str, group: dict[str, bytes]) -> tuple[str, int, Any]:
        """``(cleaned caption, image_id, ori_image_id)`` of a key; raises :class:`_Bad`."""
        meta: dict = {}
        if 'json' in group:
            where = f'{shard}/{key}.json'
            try:
                doc = parse_document(where, group['json'].decode('utf-8'), json_lines=False)[0]
            except UnicodeDecodeError as err:
                raise _Bad('bad_caption', f'{where} is not UTF-8 ({err})') from err
            except ValueError as err:  # the reader's message names the member and where
                raise _Bad('bad_caption', str(err)) from err
            if not isinstance(doc, dict):
                raise _Bad('bad_caption', f'{where}: expected an object, got {type(doc).__name__}')
            meta = doc
        caption = meta.get('caption')
        if caption is None and 'txt' in group:
            try:
                caption = group['txt'].decode('utf-8')
            except UnicodeDecodeError as err:
                raise _Bad('bad_caption', f'{key}.txt is not UTF-8 ({err})') from err
        if caption is None:
            raise _Bad(
                'no_caption',
                f'no caption (no .txt member, no "caption" in .json; has {sorted(group)})',
            )
        if not isinstance(caption, str):
            raise _Bad('bad_caption', f'caption must be one string, got {caption!r}')
        text = caption.strip() if self.max_words is None else clean_caption(caption, self.max_words)
        if not text:
            raise _Bad('empty_caption', f'caption {caption!r} is empty after cleaning')
        raw_id = meta.get('image_id', key)
        if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)):
            raise _Bad('bad_caption', f'"image_id" must be a string or an integer, got {raw_id!r}')
        return text, stable_image_id(raw_id), meta.get('ori_image_id', raw_id)

    # --- bad samples --------------------------------------------------------------------------------
    @property
    def num_bad(self) -> int:
        """Bad samples skipped by this process so far (all reasons)."""
        return sum(self.bad_counts.values())

    def _bad(
        self, reason: str, shard: str, member: str | None, detail: str, count: int = 1
    ) -> None:
        self.bad_counts[reason] += count
        tally = self._tally.get(shard)
        if tally is not None:
            tally['bad'] += count
        total = self.num_bad
        if (
            total - count < self.log_first
            or total // self.log_every > (total - count) // self.log_every
        ):
            what = f'member {member!r} of ' if member else ''
            print_log(
                f'ShardedCaptionDataset: skipped {what}shard {shard!r} [{reason}]: {detail} '
                f'({total} bad so far in this process: {dict(self.bad_counts)})',
                logger='current',
                level=logging.WARNING,
            )
        if reason == 'undecodable':
            self._check_fraction(shard)

    def _check_fraction(self, shard: str) -> None:
        tally = self._tally.get(shard)
        if (
            self.max_bad_fraction is None
            or tally is None
            or not tally['done']
            or not tally['items']
        ):
            return
        share = tally['bad'] / tally['items']
        if share > self.max_bad_fraction:
            raise ShardError(
                f'shard {shard!r}: {tally["bad"]} of its {tally["items"]} samples are bad '
                f'({share:.1%} > max_bad_fraction={self.max_bad_fraction}); counts so far: '
                f'{dict(self.bad_counts)}. Re-write the shard or raise max_bad_fraction'
            )


def _buffered(items: Iterable[dict], size: int, rng: random.Random) -> Iterator[dict]:
    """``items`` through a shuffle buffer of ``size``: once full, each new item replaces a randomly
    chosen one, which is yielded; the rest come out shuffled at the end."""
    buffer: list[dict] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer
