"""Karpathy's retrieval splits -> ALBEF's retrieval json (``tools/prepare_data.py retrieval``).

Reads ``dataset_coco.json`` / ``dataset_flickr30k.json`` (Karpathy's split files, see
:mod:`vlreg.datasets.karpathy`) and writes, in ``--out-dir``, the files ALBEF's Retrieval.py reads
and :class:`~vlreg.datasets.CaptionDataset` / :class:`~vlreg.datasets.RetrievalDataset` read:

- ``<name>_train.json``: one entry per caption, ``{"image", "caption": str, "image_id"}`` (COCO:
  ``train`` + ``restval``, 113,287 images, unless ``--no-restval``);
- ``<name>_val.json`` / ``<name>_test.json``: one entry per image,
  ``{"image", "caption": [str, ...], "image_id"}``.

Image paths are ``<filepath>/<filename>`` (COCO: ``val2014/COCO_val2014_...jpg``), behind an
optional ``--image-prefix``; captions are Karpathy's ``raw`` text, stripped (the datasets clean
them when they load, as ALBEF's ``pre_caption``). Every entry is validated; bad images and captions
(malformed, unknown split, duplicate id, no text, empty after cleaning, image file missing under
``--image-root``) are skipped and reported, or stop the run with ``--strict``.

Example:
    python tools/prepare_data.py retrieval --karpathy data/coco/dataset_coco.json \\
        --out-dir data/coco --image-root data/coco/images
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from vlreg.datasets.karpathy import KARPATHY_SPLITS, karpathy_entries, load_karpathy
from vlreg.datasets.transforms.text import clean_caption

from . import progress

HELP = (
    "Karpathy's dataset_coco.json / dataset_flickr30k.json -> ALBEF-style retrieval json "
    '(<name>_train.json per caption, <name>_val/test.json per image)'
)

OUTPUT_SPLITS = ('train', 'val', 'test')
SHOWN = 10  # problems printed in full; the rest are counted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--karpathy', required=True, help="Karpathy's split file, e.g. data/coco/dataset_coco.json"
    )
    parser.add_argument('--out-dir', required=True, help='where the json files are written')
    parser.add_argument(
        '--name',
        default=None,
        help='output file prefix (default: the file\'s "dataset" field, e.g. '
        'coco / flickr30k, else the file name)',
    )
    parser.add_argument(
        '--splits',
        default=','.join(OUTPUT_SPLITS),
        help='comma-separated splits to write (default: train,val,test)',
    )
    parser.add_argument(
        '--no-restval',
        action='store_true',
        help='train = Karpathy "train" only (default: train + restval, as ALBEF)',
    )
    parser.add_argument(
        '--image-prefix', default='', help='prepended to every image path (e.g. flickr30k-images)'
    )
    parser.add_argument(
        '--image-root',
        default=None,
        help='check that every image exists below this folder (after the '
        'prefix); entries whose image is missing are skipped',
    )
    parser.add_argument(
        '--max-words',
        type=int,
        default=30,
        help='word limit of the caption cleaning the datasets apply (ALBEF: 30); '
        'captions empty after cleaning are skipped',
    )
    parser.add_argument(
        '--strict',
        action='store_true',
        help='stop at the first bad entry (exit 1, nothing written) instead of skipping it',
    )


def _dataset_name(data: dict[str, Any], path: str) -> str:
    name = data.get('dataset')
    if isinstance(name, str) and name.strip():
        return name.strip()
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem.removeprefix('dataset_')


class _Report:
    """Skipped entries and captions, with their reasons."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.images: list[str] = []
        self.captions: list[str] = []

    def skip(self, kind: str, message: str) -> None:
        if self.strict:
            raise ValueError(message)
        (self.images if kind == 'image' else self.captions).append(message)

    def print(self) -> None:
        for what, messages in (('images', self.images), ('captions', self.captions)):
            if not messages:
                continue
            print(f'skipped {len(messages)} {what}:')
            for message in messages[:SHOWN]:
                print(f'  {message}')
            if len(messages) > SHOWN:
                print(f'  ... and {len(messages) - SHOWN} more')


def _clean_entry(
    entry: dict[str, Any], index: int, args: argparse.Namespace, report: _Report
) -> dict[str, Any] | None:
    """The entry with its image prefixed and its captions checked, or None when it is skipped."""
    image = (
        f'{args.image_prefix.strip("/")}/{entry["image"]}'
        if args.image_prefix.strip('/')
        else entry['image']
    )
    where = f'{args.karpathy!r}: images[{index}] ({image})'
    if args.image_root is not None and not os.path.isfile(os.path.join(args.image_root, image)):
        report.skip('image', f'{where}: image file not found under {args.image_root!r}')
        return None
    captions = []
    for j, caption in enumerate(entry['caption']):
        if clean_caption(caption, args.max_words):
            captions.append(caption)
        else:
            report.skip('caption', f'{where}: sentence {j} is empty after cleaning: {caption!r}')
    if not captions:
        report.skip('image', f'{where}: no caption left after cleaning')
        return None
    return dict(image=image, caption=captions, image_id=entry['image_id'])


def _convert(
    args: argparse.Namespace, report: _Report
) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The output file prefix and the entries of each output split."""
    data = load_karpathy(args.karpathy)
    splits = [s.strip() for s in args.splits.split(',') if s.strip()]
    bad = [s for s in splits if s not in OUTPUT_SPLITS]
    if bad or not splits:
        raise ValueError(f'--splits: unknown split(s) {bad}; choose from {OUTPUT_SPLITS}')
    wanted = [*splits, 'restval'] if 'train' in splits and not args.no_restval else splits
    found = karpathy_entries(
        data,
        args.karpathy,
        wanted,
        merge_restval=False,
        skip_bad=not args.strict,
        progress=lambda it, total: progress(it, total, desc='reading'),
    )
    report.images.extend(found.bad_entries)
    report.captions.extend(found.bad_captions)
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in splits}
    for index, entry in progress(found.entries, desc='checking'):
        split = 'train' if entry['split'] == 'restval' else entry['split']
        kept = _clean_entry(entry, index, args, report)
        if kept is None:
            continue
        if split == 'train':  # ALBEF's training files: one entry per caption
            out[split].extend(dict(kept, caption=c) for c in kept['caption'])
        else:
            out[split].append(kept)
    return args.name or _dataset_name(data, args.karpathy), out


def run(args: argparse.Namespace) -> int:
    """Convert, validate, write and summarise; returns the exit code (0: written, 1: failed)."""
    report = _Report(args.strict)
    try:
        name, out = _convert(args, report)
    except (OSError, ValueError) as err:
        print(f'error: {err}')
        return 1
    empty = [split for split, entries in out.items() if not entries]
    if empty:
        print(
            f'error: no usable entry for split(s) {empty} in {args.karpathy!r} '
            f'(splits in a Karpathy file: {KARPATHY_SPLITS})'
        )
        report.print()
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    for split, entries in out.items():
        path = os.path.join(args.out_dir, f'{name}_{split}.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(entries, f, ensure_ascii=False)
        images = len({e['image_id'] for e in entries})
        captions = len(entries) if split == 'train' else sum(len(e['caption']) for e in entries)
        extra = ' (train + restval)' if split == 'train' and not args.no_restval else ''
        print(f'wrote {path}: {images} images{extra}, {captions} captions')
    report.print()
    if not report.images and not report.captions:
        print('skipped nothing: every entry of the requested splits is valid')
    return 0
