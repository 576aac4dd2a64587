r"""ALBEF-format image-caption annotations -> tar shards for streaming pre-training.

    python tools/prepare_data.py shards --ann-file data/cc3m/cc3m_train.json \
        --image-root data/cc3m --out data/cc3m_shards [--samples-per-shard 1000] \
        [--decode-images] [--overwrite]

Input: a JSON list or JSON-lines file of ``{"image": path, "caption": str | [str, ...],
"image_id"?: str | int}`` (the format :class:`~vlreg.datasets.CaptionDataset` reads), image paths
relative to ``--image-root`` (absolute ones are kept).

Output, in ``--out``: ``shard-000000.tar``, ``shard-000001.tar``, ... (the webdataset layout read
by :class:`~vlreg.datasets.ShardedCaptionDataset`), one sample per caption, key
``<9-digit sample number>``: ``<key>.<jpg|jpeg|png|webp|bmp>`` (the image file's bytes, copied
unchanged) and ``<key>.json`` ``{"caption" (the raw text; the dataset cleans it), "image_id"
(a contiguous int per image, as CaptionDataset numbers them), "ori_image_id" (the file's
``image_id``, else the image path), "image" (the path as written in the file)}``; and
``index.json`` ``{"format", "shards": [{"name", "samples"}], "total", "images", "ann_file",
"skipped"}``. Every file is written to a temporary name and renamed when complete.

Skipped and reported with the reason: malformed lines and entries, captions that are not strings
or are empty after cleaning, images that are missing, empty, of an unsupported type, unreadable,
or (``--decode-images``) that do not decode.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

from ..base import join_image_path
from ..caption_dataset import parse_caption_entry
from ..reader import read_annotation_file
from ..shard_format import IMAGE_EXTS, INDEX_NAME
from ..transforms.text import clean_caption
from . import image_problem, progress, report

HELP = 'ALBEF image-caption json/jsonl -> webdataset-style tar shards + index.json'

FORMAT = 'vlreg-shards/1'
SHARD_NAME = 'shard-{:06d}.tar'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--ann-file', required=True, help='ALBEF-format .json list or .jsonl')
    parser.add_argument('--image-root', default='', help='folder the image paths are relative to')
    parser.add_argument('--out', required=True, help='output folder for the shards and index.json')
    parser.add_argument(
        '--samples-per-shard', type=int, default=1000, help='samples (captions) per shard'
    )
    parser.add_argument(
        '--decode-images', action='store_true', help='decode every image to check it (slow)'
    )
    parser.add_argument('--overwrite', action='store_true', help='replace shards already in --out')
    parser.add_argument(
        '--limit', type=int, default=None, help='convert only the first N entries of the file'
    )


def _kept_caption(caption: str) -> str:
    """The caption a shard stores: stripped, not cleaned (the reader cleans it); '' when cleaning
    would leave nothing."""
    return caption.strip() if clean_caption(caption, None) else ''


def _image_bytes(path: str, decode: bool) -> tuple[bytes, str]:
    """The image file's bytes and its member extension; ValueError saying why it is unusable."""
    ext = os.path.splitext(path)[1].lower().lstrip('.')
    if ext not in IMAGE_EXTS:
        raise ValueError(f'image {path!r}: unsupported type {ext!r} (expected one of {IMAGE_EXTS})')
    problem = image_problem(path, decode)
    if problem:
        raise ValueError(problem)
    try:
        with open(path, 'rb') as f:
            return f.read(), ext
    except OSError as err:
        raise ValueError(f'image {path!r} cannot be read ({err})') from err


def _member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # the same bytes for the same input
    archive.addfile(info, io.BytesIO(data))


class _ShardWriter:
    """Writes samples into numbered shards of ``per_shard`` samples (temporary file + rename)."""

    def __init__(self, out: str, per_shard: int) -> None:
        self.out, self.per_shard = out, per_shard
        self.shards: list[dict] = []
        self._archive: tarfile.TarFile | None = None
        self._tmp = ''
        self._count = 0

    def add(self, key: str, ext: str, image: bytes, meta: dict) -> None:
        if self._archive is None:
            fd, self._tmp = tempfile.mkstemp(prefix='.shard-', suffix='.tmp', dir=self.out)
            self._archive = tarfile.open(fileobj=os.fdopen(fd, 'wb'), mode='w')
        _member(self._archive, f'{key}.{ext}', image)
        _member(self._archive, f'{key}.json', json.dumps(meta, ensure_ascii=False).encode('utf-8'))
        self._count += 1
        if self._count == self.per_shard:
            self.close()

    def close(self) -> None:
        """Finish the open shard, if any: close it and rename it into place."""
        if self._archive is None:
            return
        fileobj = self._archive.fileobj
        self._archive.close()
        fileobj.close()  # tarfile leaves a file object it was given open
        name = SHARD_NAME.format(len(self.shards))
        os.chmod(self._tmp, 0o644)  # mkstemp makes it private
        os.replace(self._tmp, os.path.join(self.out, name))
        self.shards.append(dict(name=name, samples=self._count))
        self._archive, self._count = None, 0

    def abort(self) -> None:
        if self._archive is not None:
            self._archive.fileobj.close()
            os.remove(self._tmp)
            self._archive = None


def _existing(out: str) -> list[str]:
    return sorted(
        n
        for n in os.listdir(out)
        if (n.startswith('shard-') and n.endswith('.tar')) or n == INDEX_NAME
    )


def _samples(args: argparse.Namespace, entries: list, skipped: list[str]) -> Iterator[tuple]:
    """``(ext, image bytes, meta)`` per usable caption, in file order; problems into ``skipped``."""
    root = args.image_root
    ids: dict[Any, int] = {}
    for index, entry in enumerate(progress(entries, desc='shards: entries')):
        where = f'{args.ann_file!r}: entry {index}'
        try:
            image, captions, ori_id, problems = parse_caption_entry(where, entry, _kept_caption)
            if not captions:
                raise ValueError(f'{where}: no usable caption')
            path = join_image_path(root, image, where) if root else image
            data, ext = _image_bytes(path, args.decode_images)
        except ValueError as err:
            text = str(err)
            skipped.append(text if text.startswith(repr(args.ann_file)) else f'{where}: {text}')
            continue
        skipped.extend(problems)
        image_id = ids.setdefault(ori_id, len(ids))
        for caption in captions:
            yield (
                ext,
                data,
                dict(caption=caption, image_id=image_id, ori_image_id=ori_id, image=image),
            )


def run(args: argparse.Namespace) -> int:
    if args.samples_per_shard < 1:
        print(f'error: --samples-per-shard must be >= 1, got {args.samples_per_shard}')
        return 2
    entries, skipped = read_annotation_file(args.ann_file, skip_bad_lines=True)
    if args.limit is not None:
        entries = entries[: args.limit]
    os.makedirs(args.out, exist_ok=True)
    old = _existing(args.out)
    if old and not args.overwrite:
        print(f'error: {args.out!r} already holds {old[:3]}...: pass --overwrite to replace them')
        return 1
    writer = _ShardWriter(args.out, args.samples_per_shard)
    images: set = set()
    try:
        for number, (ext, data, meta) in enumerate(_samples(args, entries, skipped)):
            images.add(meta['image_id'])
            writer.add(f'{number:09d}', ext, data, meta)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    written = {s['name'] for s in writer.shards}
    for name in old:  # shards of an earlier, larger conversion
        if name not in written and name != INDEX_NAME:
            os.remove(os.path.join(args.out, name))
    total = sum(s['samples'] for s in writer.shards)
    index = dict(
        format=FORMAT,
        shards=writer.shards,
        total=total,
        images=len(images),
        ann_file=os.path.abspath(args.ann_file),
        skipped=len(skipped),
    )
    fd, tmp = tempfile.mkstemp(prefix='.index-', suffix='.tmp', dir=args.out)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(index, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(args.out, INDEX_NAME))
    report('shards', total, f'{len(writer.shards)} shards in {args.out}', skipped)
    return 0 if total else 1
