"""NLVR2 statements about image pairs (PAPER.md, "Downstream protocols").

Samples, bad-entry handling and image paths follow :mod:`vlreg.datasets.base`.
Converter (official files -> checked ALBEF json): :mod:`vlreg.datasets.prepare.nlvr2`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from vlreg.registry import DATASETS

from .base import RecordDataset
from .fields import require_keys, text_field
from .transforms import pair as _pair  # noqa: F401 - registers LoadImagePair, ApplyToImagePair
from .transforms.formatting import DEFAULT_META_KEYS

__all__ = ['NLVR2Dataset', 'NLVR2_META_KEYS']

NLVR2_META_KEYS = DEFAULT_META_KEYS + (
    'img_path2',
    'ori_shape2',
    'img_shape2',
    'label',
    'identifier',
)


# --- NLVR2 ----------------------------------------------------------------------------------------
_NLVR2_IDENTIFIER = re.compile(r'^(?P<pair>.+-\d+-\d+)-\d+$')


def _binary_label(where: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return int(value.strip().lower() == 'true')
    if isinstance(value, (bool, int)) and int(value) in (0, 1):
        return int(value)
    raise ValueError(f'{where}: "label" must be "True" or "False", got {value!r}')


@DATASETS.register_module()
class NLVR2Dataset(RecordDataset):
    """NLVR2 statements about an image pair, one sample per statement; label 1 = True.

    Formats (detected per entry):

    * **official** json lines (``train.json``, ``dev.json``, ``test1.json``): ``{"identifier":
      "dev-850-0-0", "sentence", "label": "True" | "False", "directory"?: ...}``. The images are
      the identifier without its last field plus ``-img0.png`` / ``-img1.png``
      (``dev-850-0-img0.png``), under ``image_root`` (in ``<directory>/`` when the entry has one
      and ``use_directory``, as the official train images are). ``left_url`` / ``right_url`` are
      the web origins of the images and are not used.
    * **ALBEF** json list: ``{"images": [left, right], "sentence", "label"}``, paths under
      ``image_root``.

    Each sample holds ``img_path`` (left) and ``img_path2`` (right), ``caption`` (the statement),
    ``label`` (int: 1 True, 0 False; ``metainfo['classes']`` names them), ``identifier`` (official
    files), ``image_id`` (contiguous id of the pair), ``ori_image_id`` (pair name) and
    ``ann_index``. Load both images with ``LoadImagePair`` and augment both with
    ``ApplyToImagePair`` (:mod:`vlreg.datasets.transforms.pair`).

    Args:
        ann_file: official json lines or ALBEF json, relative to ``data_root``.
        image_root: image folder (relative to ``data_root``).
        data_root: root of the relative paths.
        use_directory: put official entries' images under their ``directory`` sub-folder.
        pipeline: transforms, the last one ``PackInputs`` (with ``meta_keys=NLVR2_META_KEYS``).
        skip_bad_samples: drop bad entries (logged) instead of raising.
        **kwargs: forwarded to :class:`VLBaseDataset`.

    Example:
        >>> dict(type='NLVR2Dataset', data_root='data/nlvr2', ann_file='dev.json',
        ...      image_root='dev', pipeline=[dict(type='LoadImagePair'),
        ...      dict(type='ApplyToImagePair', transforms=[dict(type='Resize', size=384)]), ...,
        ...      dict(type='PackInputs', meta_keys=NLVR2_META_KEYS)])
    """

    METAINFO = dict(classes=('False', 'True'))
    META_KEYS = NLVR2_META_KEYS

    def __init__(
        self,
        ann_file: str,
        image_root: str = '',
        data_root: str = '',
        use_directory: bool = True,
        pipeline: Sequence[dict | Callable] = (),
        skip_bad_samples: bool = False,
        **kwargs: Any,
    ) -> None:
        self.use_directory = use_directory
        super().__init__(
            ann_file=ann_file,
            image_root=image_root,
            data_root=data_root,
            pipeline=pipeline,
            skip_bad_samples=skip_bad_samples,
            **kwargs,
        )

    def _parse(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        root = self.data_prefix.get('img_path', '')
        if isinstance(entry, dict) and 'images' in entry:
            require_keys(where, entry, ('sentence', 'label'))
            images = entry['images']
            if not (
                isinstance(images, list)
                and len(images) == 2
                and all(isinstance(p, str) and p for p in images)
            ):
                raise ValueError(f'{where}: "images" must list two paths, got {images!r}')
            left, right = (self.image_path(p, where) for p in images)
            pair, identifier = tuple(images), entry.get('identifier')
        else:
            require_keys(where, entry, ('identifier', 'sentence', 'label'))
            identifier = text_field(where, entry['identifier'], 'identifier')
            match = _NLVR2_IDENTIFIER.match(identifier)
            if match is None:
                raise ValueError(
                    f'{where}: identifier {identifier!r} is not "<split>-<set>-<pair>-<sentence>"'
                )
            pair = match.group('pair')
            folder = root
            if self.use_directory and entry.get('directory') is not None:
                folder = self.image_path(str(entry['directory']), where)
            left, right = (os.path.join(folder, f'{pair}-img{i}.png') for i in (0, 1))
        sentence = text_field(where, entry['sentence'], 'sentence')
        label = _binary_label(where, entry['label'])
        return [
            dict(
                img_path=left,
                img_path2=right,
                caption=sentence,
                label=label,
                identifier=identifier,
                image_id=self._ids.setdefault(pair, len(self._ids)),
                ori_image_id=pair if isinstance(pair, str) else '|'.join(pair),
                ann_index=index,
            )
        ]
