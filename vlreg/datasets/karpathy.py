"""Karpathy's split files for COCO / Flickr30K / Flickr8k retrieval (``dataset_coco.json``, ...).

One JSON object ``{"images": [...], "dataset": "coco"}``; each image::

    {"filepath": "val2014",            # COCO only: the folder below the image root
     "filename": "COCO_val2014_000000391895.jpg",
     "split": "train" | "restval" | "val" | "test",
     "sentences": [{"raw": "A man with a red helmet ...", "tokens": [...]}, ...],
     "cocoid": 391895,                  # COCO only
     "imgid": 0}

The reader turns the images of the requested splits into ALBEF-format entries
(``{"image": "<filepath>/<filename>", "caption": [raw, ...], "image_id": cocoid | imgid}``) that
:class:`~vlreg.datasets.CaptionDataset` / :class:`~vlreg.datasets.RetrievalDataset` read like an
ALBEF json file, keeping each image's position in ``images`` as its entry index (so error messages
name ``images[i]``). ``restval`` (30,504 COCO images outside the 5K val / 5K test) joins ``train``
by default, as in ALBEF's and Karpathy's COCO training set (113,287 images).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .reader import read_json

__all__ = [
    'KARPATHY_SPLITS',
    'KarpathyEntries',
    'is_karpathy_file',
    'karpathy_entries',
    'load_karpathy',
    'read_karpathy',
    'resolve_splits',
    'validate_karpathy',
]

KARPATHY_SPLITS = ('train', 'restval', 'val', 'test')


@dataclass
class KarpathyEntries:
    """What :func:`karpathy_entries` found.

    Attributes:
        entries: ``(position in "images", ALBEF-format entry)`` per usable image of the requested
            splits; each entry also carries its ``split``.
        bad_entries: one message per image dropped (malformed, unknown split, duplicate id, no
            usable text); ``skip_bad`` only.
        bad_captions: one message per sentence dropped from an otherwise usable image.
        num_images: images of the requested splits in the file, usable or not.
    """

    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    bad_entries: list[str] = field(default_factory=list)
    bad_captions: list[str] = field(default_factory=list)
    num_images: int = 0

    @property
    def problems(self) -> list[str]:
        return self.bad_entries + self.bad_captions

    @property
    def num_bad_entries(self) -> int:
        return len(self.bad_entries)

    @property
    def num_bad_captions(self) -> int:
        return len(self.bad_captions)


def is_karpathy_file(path: str) -> bool:
    """True when ``path`` holds one JSON object (Karpathy) rather than a list / JSON lines (ALBEF).

    Only the first non-blank character is read, so a large file is not parsed twice (bytes that
    are not UTF-8 do not matter here: the full read reports them).
    """
    if path.endswith('.jsonl') or not os.path.isfile(path):
        return False
    with open(path, encoding='utf-8', errors='replace') as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                return False
            stripped = chunk.lstrip('\ufeff \t\r\n')
            if stripped:
                return stripped[0] == '{'


def resolve_splits(split: str | Sequence[str], merge_restval: bool = True) -> tuple[str, ...]:
    """The Karpathy splits to read: ``'train'`` also reads ``'restval'`` when ``merge_restval``.

    Raises:
        ValueError: an unknown split name or an empty selection.
    """
    names = (split,) if isinstance(split, str) else tuple(split)
    if not names:
        raise ValueError('split selects no Karpathy split; use e.g. "train", "val" or "test"')
    unknown = [s for s in names if s not in KARPATHY_SPLITS]
    if unknown:
        raise ValueError(f'unknown Karpathy split(s) {unknown}; expected some of {KARPATHY_SPLITS}')
    if merge_restval and 'train' in names and 'restval' not in names:
        names = (*names, 'restval')
    return names


def validate_karpathy(data: Any, path: str) -> dict[str, Any]:
    """``data`` when it is a parsed Karpathy file (an object with an ``"images"`` list)."""
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f'{path!r}: not a Karpathy split file: expected an object with an '
            f'"images" list, got {got}'
        )
    return data


def load_karpathy(path: str) -> dict[str, Any]:
    """Parse a Karpathy file; raises naming the file when it is missing, malformed or not one."""
    return validate_karpathy(read_json(path, what='Karpathy split file'), path)


def _image_id(image: dict[str, Any], path: str) -> Any:
    # COCO carries the official image id; Flickr30K / Flickr8k only Karpathy's running index
    for key in ('cocoid', 'imgid'):
        if key in image:
            return image[key]
    return path


def _sentences(
    image: dict[str, Any], where: str, skip_bad: bool, result: KarpathyEntries
) -> list[str]:
    sentences = image.get('sentences')
    if not isinstance(sentences, list) or not sentences:
        raise ValueError(f'{where}: "sentences" must be a non-empty list, got {sentences!r}')
    captions, bad = [], []
    for j, sentence in enumerate(sentences):
        raw = sentence.get('raw') if isinstance(sentence, dict) else None
        if isinstance(raw, str) and raw.strip():
            captions.append(raw.strip())
            continue
        msg = f'{where}: sentence {j} has no usable "raw" text: {sentence!r}'
        if not skip_bad:
            raise ValueError(msg)
        bad.append(msg)
    if not captions:
        raise ValueError(f'{where}: no usable sentence')
    result.bad_captions.extend(bad)  # counted only for images that are kept
    return captions


def _entry(
    i: int, image: Any, path: str, wanted: tuple[str, ...], skip_bad: bool, result: KarpathyEntries
) -> dict[str, Any] | None:
    """The ALBEF-format entry of ``images[i]``, or None when its split is not wanted."""
    where = f'{path!r}: images[{i}]'
    if not isinstance(image, dict):
        raise ValueError(f'{where}: expected an object, got {type(image).__name__}')
    split = image.get('split')
    if split not in KARPATHY_SPLITS:
        raise ValueError(f'{where}: "split" must be one of {KARPATHY_SPLITS}, got {split!r}')
    if split not in wanted:
        return None
    result.num_images += 1
    filename, filepath = image.get('filename'), image.get('filepath', '')
    if not isinstance(filename, str) or not filename.strip():
        raise ValueError(f'{where}: "filename" must be a non-empty string, got {filename!r}')
    if not isinstance(filepath, str):
        raise ValueError(f'{where}: "filepath" must be a string, got {filepath!r}')
    where = f'{where} ({filename})'
    image_path = f'{filepath.strip("/")}/{filename}' if filepath.strip('/') else filename
    image_id = _image_id(image, image_path)
    if not isinstance(image_id, (str, int)) or isinstance(image_id, bool):
        raise ValueError(f'{where}: the image id must be a string or an integer, got {image_id!r}')
    captions = _sentences(image, where, skip_bad, result)
    return dict(image=image_path, caption=captions, image_id=image_id, split=split)


def karpathy_entries(
    data: dict[str, Any],
    path: str,
    split: str | Sequence[str],
    merge_restval: bool = True,
    skip_bad: bool = False,
    progress: Callable[[Iterable[Any], int], Iterator[Any]] | None = None,
) -> KarpathyEntries:
    """ALBEF-format entries of the images of ``split`` in a parsed Karpathy file.

    Every image of the file must name a known split; the images of the requested splits are
    validated in full (file name, id, sentences), and two images with the same id are an error.

    Args:
        data: the parsed file (:func:`load_karpathy`).
        path: the file, for messages.
        split: split name(s), see :func:`resolve_splits`.
        merge_restval: ``'train'`` also reads ``'restval'`` (ALBEF / Karpathy COCO training set).
        skip_bad: drop bad images / sentences and report them (``bad_entries``,
            ``bad_captions``) instead of raising.
        progress: wraps the loop over images, called as ``progress(images, total)``.

    Raises:
        ValueError: the first bad image or sentence (naming the file, ``images[i]`` and the
            image's file name), unless ``skip_bad``.
    """
    wanted = resolve_splits(split, merge_restval)
    images = data['images']
    result = KarpathyEntries()
    first_seen: dict[Any, int] = {}
    iterator: Iterable[Any] = enumerate(images)
    if progress is not None:
        iterator = progress(iterator, len(images))
    for i, image in iterator:
        try:
            entry = _entry(i, image, path, wanted, skip_bad, result)
            if entry is None:
                continue
            seen = first_seen.setdefault(entry['image_id'], i)
            if seen != i:
                raise ValueError(
                    f'{path!r}: images[{i}] ({entry["image"]}): image id '
                    f'{entry["image_id"]!r} already used by images[{seen}]'
                )
        except ValueError as err:
            if not skip_bad:
                raise
            result.bad_entries.append(str(err))
            continue
        result.entries.append((i, entry))
    return result


def read_karpathy(
    path: str, split: str | Sequence[str], merge_restval: bool = True, skip_bad: bool = False
) -> KarpathyEntries:
    """:func:`load_karpathy` then :func:`karpathy_entries`."""
    return karpathy_entries(load_karpathy(path), path, split, merge_restval, skip_bad)
