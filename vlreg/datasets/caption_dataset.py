"""Image-caption datasets in ALBEF's annotation format, for pre-training and retrieval evaluation.

Annotation file: a JSON list (``.json``) or one JSON object per line (``.jsonl``) of
``{"image": "<path>", "caption": "<text>" | ["<text>", ...], "image_id": <str | int>?}``,
or one of Karpathy's split files (``dataset_coco.json`` / ``dataset_flickr30k.json``, read with a
``split``; see :mod:`vlreg.datasets.karpathy`).
Image paths are relative to ``image_root``, itself relative to ``data_root`` (absolute paths are
kept; relative paths may not climb out of the root: :mod:`vlreg.datasets.base`). Files are read by
:mod:`vlreg.datasets.reader` (errors name the file and where: line / column, or byte offset).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from mmengine.logging import print_log

from vlreg.registry import DATASETS

from .base import VLBaseDataset, build_pipeline
from .karpathy import karpathy_entries, validate_karpathy
from .reader import parse_document, read_annotation_file, read_document
from .transforms.text import clean_caption

__all__ = [
    'CaptionDataset',
    'RetrievalDataset',
    'VLBaseDataset',
    'build_pipeline',
    'parse_annotation_text',
    'parse_caption_entry',
    'read_annotation_file',
]

#: Kept for the callers of its old name (:func:`vlreg.datasets.reader.parse_document`).
parse_annotation_text = parse_document


#: How :class:`CaptionDataset` turns file entries into samples.
SAMPLE_PER = ('caption', 'entry')


@DATASETS.register_module()
class CaptionDataset(VLBaseDataset):
    """Image-caption pairs in ALBEF's format (pre-training).

    Each sample (before the pipeline) holds ``img_path``, ``caption`` (str), ``image_id`` (a
    contiguous int, the same for every caption of an image: the file's ``image_id``, else the image
    path), ``ori_image_id`` (as in the file), ``ann_index`` (entry index in the file), ``ann_file``
    and ``sample_idx``.

    Two ways to make samples of an entry with several captions (``sample_per``):

    * ``'caption'`` (default): one sample per caption, so an epoch sees every caption once and an
      image with 5 captions appears 5 times (as ALBEF's retrieval fine-tuning data, one json entry
      per caption). Captions of one image can then meet in a batch: give the losses the image ids
      (``use_image_ids=True`` on ITC / ITM, as the Flickr8k configs do) so that they are positives,
      not negatives.
    * ``'entry'``: ALBEF's pre-training ``pretrain_dataset``: one sample per file entry, its caption
      drawn with Python's ``random.choice`` each time the sample is read (an epoch sees each image
      once, with one of its captions). ``len`` is the number of entries.

    Args:
        ann_file: a ``.json`` list or a ``.jsonl`` file, relative to ``data_root`` unless absolute.
        data_root: root of ``ann_file`` and ``image_root``.
        image_root: folder the image paths are relative to (relative to ``data_root``).
        pipeline: transforms, the last one ``PackInputs``.
        max_words: ALBEF cleans captions in the dataset (:func:`clean_caption` with this word
            limit); None keeps the raw text (add ``CleanCaption`` to the pipeline instead).
            Cleaning twice is harmless.
        skip_bad_samples: drop bad entries / captions at load and skip unreadable samples at run
            time, with logged counts; by default bad input raises, naming the file and the entry.
        split: for a Karpathy split file (``dataset_coco.json``, ``dataset_flickr30k.json``): the
            split(s) to read, ``'train'``, ``'val'``, ``'test'`` (or ``'restval'``, or a list);
            required for such a file, refused for an ALBEF file (already one file per split).
            Entry ``i`` in messages is ``images[i]`` of the Karpathy file.
        merge_restval: ``split='train'`` also reads COCO's ``restval`` images (default, as ALBEF's
            and Karpathy's 113,287-image COCO training set); False reads ``train`` only.
        sample_per: ``'caption'`` (one sample per caption, the default) or ``'entry'`` (ALBEF's
            pre-training sampling: one sample per entry, a random caption each read); see above.
        **kwargs: forwarded to :class:`VLBaseDataset` / ``mmengine.dataset.BaseDataset``.

    Example:
        >>> dict(type='CaptionDataset', data_root='data/flickr8k_1k', ann_file='captions.json',
        ...      pipeline=[dict(type='LoadImage'), ..., dict(type='PackInputs')])
        >>> dict(type='CaptionDataset', data_root='data/coco', ann_file='dataset_coco.json',
        ...      image_root='images', split='train', pipeline=[...])
    """

    def __init__(
        self,
        ann_file: str,
        data_root: str = '',
        image_root: str = '',
        pipeline: Sequence[dict | Callable] = (),
        max_words: int | None = 30,
        skip_bad_samples: bool = False,
        split: str | Sequence[str] | None = None,
        merge_restval: bool = True,
        sample_per: str = 'caption',
        **kwargs: Any,
    ) -> None:
        if sample_per not in SAMPLE_PER:
            raise ValueError(f'sample_per must be one of {SAMPLE_PER}, got {sample_per!r}')
        if self.retrieval and sample_per != 'caption':
            raise ValueError(
                f'{type(self).__name__} holds one sample per image with all its '
                'captions: sample_per does not apply'
            )
        self.sample_per = sample_per
        self.max_words = max_words
        self.split = split
        self.merge_restval = merge_restval
        self.num_bad_entries = 0
        self.num_bad_captions = 0
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=dict(img_path=image_root),
            pipeline=pipeline,
            skip_bad_samples=skip_bad_samples,
            **kwargs,
        )

    # --- reading and validating ------------------------------------------------------------------
    def _parse_entry(self, index: int, entry: Any) -> tuple[str, list[str], Any]:
        """``(image, captions, id_key)`` of one entry; raises ValueError for a bad entry."""
        where = f'{self.ann_file!r}: entry {index}'
        max_words = self.max_words
        image, captions, id_key, problems = parse_caption_entry(
            where,
            entry,
            clean=(lambda c: c) if max_words is None else (lambda c: clean_caption(c, max_words)),
            strict=not self.skip_bad_samples,
            check_image=lambda image: self.image_path(image, where),  # vlreg.datasets.base
        )
        self._problems.extend(problems)
        self.num_bad_captions += len(problems)
        if not captions:
            raise ValueError(f'{where}: no usable caption')
        return image, captions, id_key

    def _load_entries(self) -> list[tuple[int, Any]]:
        """``(entry index, ALBEF-format entry)`` pairs of an ALBEF or a Karpathy file."""
        data, self._problems = read_document(self.ann_file, self.skip_bad_samples)
        if isinstance(data, dict) and (self.split is not None or 'images' in data):
            if self.split is None:
                raise ValueError(
                    f'{self.ann_file!r} is a Karpathy split file (all splits in one '
                    "file): set split='train', 'val' or 'test'"
                )
            found = karpathy_entries(
                validate_karpathy(data, self.ann_file),
                self.ann_file,
                self.split,
                self.merge_restval,
                self.skip_bad_samples,
            )
            self._problems.extend(found.problems)
            self.num_bad_entries += found.num_bad_entries
            self.num_bad_captions += found.num_bad_captions
            return found.entries
        if self.split is not None:
            raise ValueError(
                f'split={self.split!r} selects images of a Karpathy split file, but '
                f'{self.ann_file!r} is in ALBEF format (one file per split): drop '
                '`split` or point ann_file at dataset_coco.json / '
                'dataset_flickr30k.json'
            )
        if not isinstance(data, list):
            got = (
                f'an object with keys {sorted(data)[:8]}'
                if isinstance(data, dict)
                else type(data).__name__
            )
            raise ValueError(
                f'{self.ann_file!r}: expected a JSON list of ALBEF entries, one entry '
                f'per line, or a Karpathy split file, got {got}'
            )
        self.num_bad_entries = len(self._problems)
        return list(enumerate(data))

    def _read_entries(self) -> list[tuple[int, str, list[str], Any]]:
        self._problems: list[str] = []
        self.num_bad_entries = self.num_bad_captions = 0
        parsed = []
        for index, entry in self._load_entries():
            try:
                parsed.append((index, *self._parse_entry(index, entry)))
            except ValueError as err:
                if not self.skip_bad_samples:
                    raise
                self._problems.append(str(err))
                self.num_bad_entries += 1
        if self._problems:
            shown = '\n  '.join(self._problems[:5])
            more = f'\n  ... and {len(self._problems) - 5} more' if len(self._problems) > 5 else ''
            print_log(
                f'{type(self).__name__}: dropped {self.num_bad_entries} bad annotation '
                f'entries and {self.num_bad_captions} bad captions from {self.ann_file!r}:'
                f'\n  {shown}{more}',
                logger='current',
                level=logging.WARNING,
            )
        if not parsed:
            raise ValueError(f'{self.ann_file!r}: no usable annotation entry')
        return parsed

    def _image_path(self, image: str) -> str:
        return os.path.join(self.data_prefix.get('img_path', ''), image)

    def load_data_list(self) -> list[dict]:
        ids: dict[Any, int] = {}
        data_list = []
        for index, image, captions, id_key in self._read_entries():
            image_id = ids.setdefault(id_key, len(ids))
            info = dict(
                img_path=self._image_path(image),
                image_id=image_id,
                ori_image_id=id_key,
                ann_index=index,
            )
            if self.sample_per == 'entry':
                data_list.append(dict(info, captions=list(captions)))
                continue
            for caption in captions:
                data_list.append(dict(info, caption=caption))
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if 'captions' in info and not self.retrieval:  # sample_per='entry': ALBEF's random.choice
            info['caption'] = random.choice(info.pop('captions'))
        return info


@DATASETS.register_module()
class RetrievalDataset(CaptionDataset):
    """ALBEF-format captions grouped per image, for image-text retrieval evaluation.

    One sample per image (entries naming the same ``image_id`` / image path are merged) with
    ``caption`` = the list of its captions and ``text_index`` = their global indices. ``captions``,
    ``img2txt`` and ``txt2img`` describe the whole set in that order.

    With ``skip_bad_samples``, images that are missing or not identifiable as images are dropped at
    load time too (before the text indices are assigned); an image that still fails to decode later
    raises, because replacing it by another sample would silently corrupt the ranking.

    Args: as :class:`CaptionDataset`.

    Example:
        >>> dict(type='RetrievalDataset', data_root='data/flickr8k_1k', ann_file='captions.json',
        ...      pipeline=[dict(type='LoadImage'), ..., dict(type='PackInputs')])
    """

    retrieval = True

    def load_data_list(self) -> list[dict]:
        groups: dict[Any, dict] = {}
        for index, image, captions, id_key in self._read_entries():
            group = groups.get(id_key)
            if group is None:
                groups[id_key] = dict(
                    img_path=self._image_path(image),
                    caption=list(captions),
                    image_id=len(groups),
                    ori_image_id=id_key,
                    ann_index=index,
                )
            else:
                group['caption'].extend(captions)
        data_list = list(groups.values())
        if self.skip_bad_samples:
            data_list = self._drop_unreadable(data_list)
        self._layout = None
        return data_list

    def _drop_unreadable(self, data_list: list[dict]) -> list[dict]:
        from PIL import Image

        kept = []
        for info in data_list:
            try:
                with Image.open(info['img_path']) as image:
                    image.verify()
                kept.append(info)
            except Exception as err:  # noqa: BLE001 - any failure means the image is unusable
                self.num_bad_entries += 1
                print_log(
                    f'{type(self).__name__}: dropped entry {info["ann_index"]} of '
                    f'{self.ann_file!r}: image {info["img_path"]!r} is unreadable ({err})',
                    logger='current',
                    level=logging.WARNING,
                )
        return kept


def parse_caption_entry(
    where: str,
    entry: Any,
    clean: Callable[[str], str],
    strict: bool = False,
    check_image: Callable[[str], Any] | None = None,
) -> tuple[str, list[str], Any, list[str]]:
    """Check one entry of an ALBEF caption file (``{"image": str, "caption": str | [str, ...],
    "image_id"?: str | int}``): ``(image, captions, id_key, problems)``.

    ``captions`` are the usable captions after ``clean`` (a caption it makes empty is a problem);
    ``problems`` say, naming ``where``, which captions were dropped and why (``strict``: the first
    one raises instead). ``check_image(image)`` runs on the image path before the captions.

    Raises:
        ValueError: an entry that is not an object, lacks ``image`` or ``caption``, has an empty
            image path, a caption that is neither a string nor a non-empty list, or a bad
            ``image_id``; with ``strict``, also a bad caption.
    """
    if not isinstance(entry, dict):
        raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
    for key in ('image', 'caption'):
        if key not in entry:
            raise ValueError(f'{where}: missing key {key!r} (keys: {sorted(entry)})')
    image = entry['image']
    if not isinstance(image, str) or not image.strip():
        raise ValueError(f'{where}: "image" must be a non-empty string, got {image!r}')
    if check_image is not None:
        check_image(image)
    raw = entry['caption']
    raw_list = [raw] if isinstance(raw, str) else raw
    if not isinstance(raw_list, list) or not raw_list:
        raise ValueError(
            f'{where}: "caption" must be a string or a non-empty list of strings, got {raw!r}'
        )
    id_key = entry.get('image_id', image)
    if not isinstance(id_key, (str, int)) or isinstance(id_key, bool):
        raise ValueError(f'{where}: "image_id" must be a string or an integer, got {id_key!r}')
    captions, problems = [], []
    for j, caption in enumerate(raw_list):
        text, msg = '', None
        if not isinstance(caption, str):
            msg = f'{where}: caption {j} is not a string: {caption!r}'
        elif not caption.strip():
            msg = f'{where}: caption {j} is empty: {caption!r}'
        else:
            text = clean(caption)
            if not text:
                msg = f'{where}: caption {j} is empty after cleaning: {caption!r}'
        if msg is None:
            captions.append(text)
        elif strict:
            raise ValueError(msg)
        else:
            problems.append(msg)
    return image, captions, id_key, problems
