"""The dataset base of vlreg, the bad-entry collector and the image-path policy.

* :class:`VLBaseDataset`: MMEngine's ``BaseDataset`` with vlreg's pipeline registry, bad-sample
  handling at run time (``skip_bad_samples``) and the image-path policy below.
* :class:`EntryCollector`: parses annotation entries one by one; a bad entry raises naming the file
  and the entry, or is dropped and counted (``num_bad_entries``, ``bad_entries``) with
  ``skip_bad_samples``.
* :class:`RecordDataset`: one sample per record of a JSON list / JSON-lines file (NLVR2, SNLI-VE).

Task datasets (:mod:`~vlreg.datasets.vqa`, :mod:`~vlreg.datasets.nlvr2`,
:mod:`~vlreg.datasets.snli_ve`, :mod:`~vlreg.datasets.grounding`): every sample carries the text
the model reads under ``caption`` (so ``CleanCaption`` / ``Tokenize`` / ``AnnotateWords`` work
unchanged) and the task's labels and ids as metainfo; pass the dataset's ``META_KEYS`` to
``PackInputs`` (``meta_keys``). Images are not opened at load time.

Image-path policy: an entry's image path is joined to the image root (``data_root/image_root``).
Absolute paths are used as they are (ALBEF's own json files hold absolute paths). A relative path
that climbs out of the image root (``../../etc/passwd``, ``images/../../x``: checked on the text of
the path, symbolic links are not followed) is a bad entry unless the dataset is built with
``allow_paths_outside_root=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from vlreg.registry import TRANSFORMS

from .reader import read_records
from .transforms.loading import BadSampleError

__all__ = [
    'EntryCollector',
    'RecordDataset',
    'VLBaseDataset',
    'build_pipeline',
    'join_image_path',
    'join_root',
]

_SHOWN_ERRORS = 3  # errors quoted when every sample turns out bad


def build_pipeline(pipeline: Sequence[dict | Callable]) -> list[Callable]:
    """Build transform configs through vlreg's ``TRANSFORMS`` (it also finds ``AUGMENTATIONS``)."""
    return [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]


def join_root(root: str, path: str | None) -> str | None:
    """A configured file (``ann_file``, ``proposal_file``, ...) relative to ``data_root``."""
    if not path or os.path.isabs(path) or not root:
        return path
    return os.path.join(root, path)


def join_image_path(root: str, image: str, where: str, allow_outside_root: bool = False) -> str:
    """``image`` joined to ``root`` under the image-path policy (module docstring).

    Raises:
        ValueError: a relative path that leaves ``root``, naming ``where`` (file and entry).
    """
    if not os.path.isabs(image) and not allow_outside_root:
        norm = os.path.normpath(image)
        if norm == os.pardir or norm.startswith(os.pardir + os.sep):
            raise ValueError(
                f'{where}: image path {image!r} leaves the image root {root!r}; '
                'use a path below the root or an absolute path, or build the '
                'dataset with allow_paths_outside_root=True'
            )
    return os.path.join(root, image)


class VLBaseDataset(BaseDataset):
    """MMEngine ``BaseDataset`` with vlreg's pipeline registry and bad-sample handling.

    A :class:`BadSampleError` raised while preparing a sample (unreadable image, empty caption)
    propagates, naming the sample, unless ``skip_bad_samples``: then another sample is tried and
    ``num_skipped`` counts (and logs) every skip. Samples known to be bad in this process are not
    tried again as replacements; when every sample of the set has failed, a ``RuntimeError`` says
    so at once, quoting the first errors (rather than cycling through ``max_refetch`` retries).

    Retrieval samples (``retrieval = True``: one sample per image, ``caption`` a list) also get
    ``text_index`` and the set-level ``img2txt``, ``txt2img`` and ``captions``. A bad sample is
    never replaced in retrieval mode: that would silently corrupt the ranking.

    Args:
        pipeline: transform configs (built from vlreg's ``TRANSFORMS``) or callables.
        skip_bad_samples: drop bad annotation entries at load and skip bad samples at run time,
            logging counts, instead of raising.
        allow_paths_outside_root: accept relative image paths that climb out of the image root
            (default False: such an entry is bad; absolute paths are always accepted).
        **kwargs: forwarded to ``mmengine.dataset.BaseDataset`` (``indices``, ``serialize_data``,
            ``lazy_init``, ``test_mode``, ``max_refetch``, ``metainfo``, ...).
    """

    retrieval: bool = False

    def __init__(
        self,
        pipeline: Sequence[dict | Callable] = (),
        skip_bad_samples: bool = False,
        allow_paths_outside_root: bool = False,
        **kwargs: Any,
    ) -> None:
        self.skip_bad_samples = skip_bad_samples
        self.allow_paths_outside_root = allow_paths_outside_root
        self.num_skipped = 0
        self._bad_indices: set[int] = set()
        self._first_errors: list[str] = []
        self._layout: tuple[list[list[int]], list[int], list[str]] | None = None
        super().__init__(pipeline=build_pipeline(pipeline), **kwargs)

    def image_path(self, image: str, where: str) -> str:
        """An entry's image path below ``data_root/image_root`` (see the module's path policy)."""
        return join_image_path(
            self.data_prefix.get('img_path', ''), image, where, self.allow_paths_outside_root
        )

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info.setdefault('ann_file', self.ann_file)
        if self.retrieval:
            info['text_index'] = list(self.img2txt[info['sample_idx']])
        return info

    # --- retrieval samples: the text layout of the whole set (recomputed for subsets) ------------
    def _text_layout(self) -> tuple[list[list[int]], list[int], list[str]]:
        if not self.retrieval:
            raise AttributeError(
                f'{type(self).__name__} holds one caption per sample; img2txt, '
                'txt2img and captions exist in retrieval mode only'
            )
        if self._layout is None:
            img2txt: list[list[int]] = []
            txt2img: list[int] = []
            captions: list[str] = []
            for i in range(len(self)):
                caps = BaseDataset.get_data_info(self, i)['caption']
                img2txt.append(list(range(len(captions), len(captions) + len(caps))))
                txt2img.extend([i] * len(caps))
                captions.extend(caps)
            self._layout = (img2txt, txt2img, captions)
        return self._layout

    @property
    def img2txt(self) -> list[list[int]]:
        """For each image (sample), the global indices of its captions (retrieval mode)."""
        return self._text_layout()[0]

    @property
    def txt2img(self) -> list[int]:
        """For each caption (global index), the index of its image (retrieval mode)."""
        return self._text_layout()[1]

    @property
    def captions(self) -> list[str]:
        """Every caption, in global text-index order (retrieval mode)."""
        return self._text_layout()[2]

    def get_subset(self, indices: int | Sequence[int]) -> VLBaseDataset:
        subset = super().get_subset(indices)
        subset._layout = None
        subset._bad_indices = set()
        return subset

    def get_subset_(self, indices: int | Sequence[int]) -> None:
        super().get_subset_(indices)
        self._layout = None
        self._bad_indices = set()

    # --- bad samples at run time -----------------------------------------------------------------
    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            print_log(
                'Please call `full_init()` first to speed up data loading',
                logger='current',
                level=logging.DEBUG,
            )
            self.full_init()
        for _ in range(self.max_refetch + 1):
            try:
                data = self.prepare_data(idx)
                if data is None:
                    raise BadSampleError(
                        f'{type(self).__name__}: the pipeline dropped sample {idx}'
                    )
                return data
            except BadSampleError as err:
                if not self.skip_bad_samples:
                    raise
                self._on_bad_sample(idx, err)
                idx = self._next_candidate(idx)
        raise RuntimeError(
            f'{type(self).__name__}: {self.max_refetch + 1} bad samples in a row in '
            f'{self._source()}; {self.num_skipped} skipped in all; first errors:'
            f'\n  ' + '\n  '.join(self._first_errors)
        )

    def _source(self) -> str:
        return repr(self.ann_file) if self.ann_file else type(self).__name__

    def _next_candidate(self, idx: int) -> int:
        """The next index after ``idx`` (wrapping) not yet known to be bad."""
        n = len(self)
        for step in range(1, n + 1):
            candidate = (idx + step) % n
            if candidate not in self._bad_indices:
                return candidate
        return (idx + 1) % n

    def _on_bad_sample(self, idx: int, err: BadSampleError) -> None:
        if self.retrieval:
            raise BadSampleError(
                f'{err} -- {type(self).__name__} cannot replace a bad sample at '
                'run time without corrupting the retrieval ranking; fix or remove '
                'the entry'
            ) from err
        self.num_skipped += 1
        self._bad_indices.add(idx)
        if len(self._first_errors) < _SHOWN_ERRORS:
            self._first_errors.append(str(err))
        print_log(
            f'{type(self).__name__}: skipped bad sample {idx} ({self.num_skipped} skipped so '
            f'far in this process): {err}',
            logger='current',
            level=logging.WARNING,
        )
        if len(self._bad_indices) >= len(self):
            raise RuntimeError(
                f'every sample of {self._source()} is unreadable ({len(self)} '
                f'samples, all skipped); first errors:\n  ' + '\n  '.join(self._first_errors)
            )


class EntryCollector:
    """Parses annotation entries one by one: a bad entry raises, or is dropped and counted.

    ``parse(index, entry)`` returns the entry's samples or raises ``ValueError`` naming the file and
    the entry; any other exception a malformed entry provokes (``TypeError``, ``KeyError``, ...) is
    turned into such an error. With the dataset's ``skip_bad_samples`` the entry is dropped and
    its message kept in ``problems``; :meth:`finish` sets ``num_bad_entries`` / ``bad_entries`` on
    the dataset and logs the first few.
    """

    def __init__(self, dataset: VLBaseDataset, problems: list[str] | None = None) -> None:
        self.dataset = dataset
        self.problems = list(problems or [])

    def run(
        self,
        entries: Sequence[Any],
        parse: Callable[[int, Any], list[dict]],
        source: str | None = None,
    ) -> list[dict]:
        out: list[dict] = []
        source = source or self.dataset.ann_file
        for index, entry in enumerate(entries):
            try:
                try:
                    out.extend(parse(index, entry))
                except (TypeError, KeyError, AttributeError, IndexError) as err:
                    raise ValueError(
                        f'{source!r}: entry {index}: unexpected content '
                        f'({type(err).__name__}: {err})'
                    ) from err
            except ValueError as err:
                if not self.dataset.skip_bad_samples:
                    raise
                self.problems.append(str(err))
        return out

    def finish(self, data_list: list[dict], source: str) -> list[dict]:
        ds = self.dataset
        ds.num_bad_entries = len(self.problems)
        ds.bad_entries = list(self.problems)  # the reasons, for tools/prepare_data.py's report
        if self.problems:
            shown = '\n  '.join(self.problems[:5])
            more = f'\n  ... and {len(self.problems) - 5} more' if len(self.problems) > 5 else ''
            print_log(
                f'{type(ds).__name__}: dropped {len(self.problems)} bad annotation entries '
                f'of {source!r}:\n  {shown}{more}',
                logger='current',
                level=logging.WARNING,
            )
        if not data_list:
            raise ValueError(f'{source!r}: no usable annotation entry')
        return data_list


class RecordDataset(VLBaseDataset):
    """A dataset of one sample per record of a JSON list / JSON-lines file, parsed by ``_parse``
    (index, entry) -> sample dicts; images under ``image_root``. Bad records raise, or are dropped
    and counted with ``skip_bad_samples``."""

    def __init__(
        self,
        ann_file: str,
        image_root: str = '',
        data_root: str = '',
        pipeline: Sequence[dict | Callable] = (),
        skip_bad_samples: bool = False,
        **kwargs: Any,
    ) -> None:
        self.num_bad_entries = 0
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=dict(img_path=image_root),
            pipeline=pipeline,
            skip_bad_samples=skip_bad_samples,
            **kwargs,
        )

    def load_data_list(self) -> list[dict]:
        entries, problems = read_records(self.ann_file, self.skip_bad_samples)
        collector = EntryCollector(self, problems)
        self._ids: dict[Any, int] = {}
        return collector.finish(collector.run(entries, self._parse), self.ann_file)

    def _parse(self, index: int, entry: Any) -> list[dict]:
        raise NotImplementedError
