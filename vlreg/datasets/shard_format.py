"""The webdataset tar-shard layout vlreg reads and writes: shard lists, the shard index, member keys.

A shard is a plain tar file whose members are grouped by *key* (the member path up to the first
dot of its file name): ``<key>.jpg`` (or ``.jpeg`` / ``.png`` / ``.webp`` / ``.bmp``) holds the
image file's bytes, and ``<key>.json`` (``{"caption": str, "image_id"?: int | str,
"ori_image_id"?}``) or ``<key>.txt`` the caption. The members of a key follow one another.
``tools/prepare_data.py shards`` writes such shards from an ALBEF annotation file, plus an
``index.json`` with every shard's sample count (docs/streaming.md). Only the standard library's
:mod:`tarfile` reads them (:class:`~vlreg.datasets.shards.ShardedCaptionDataset`).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .base import join_root
from .reader import read_json

__all__ = [
    'BAD_REASONS',
    'IMAGE_EXTS',
    'INDEX_NAME',
    'ShardError',
    'expand_braces',
    'member_key',
    'read_shard_index',
    'resolve_shards',
    'stable_image_id',
]

IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp', 'bmp')  #: image member extensions, in preference order
INDEX_NAME = 'index.json'  #: the converter's shard index, next to the shards

#: Why a sample was skipped (the keys of ``bad_counts``).
BAD_REASONS = (
    'no_image',  # a key without an image member
    'no_caption',  # a key without a caption (no .txt, no "caption" in .json)
    'bad_caption',  # caption member not UTF-8, malformed JSON, not a string
    'empty_caption',  # empty, or empty after cleaning
    'undecodable',  # the pipeline refused it (an image that does not decode, ...)
    'corrupt_tar',  # a shard that cannot be opened or read to its end (the rest is lost)
    'missing_samples',  # a shard that ended with fewer samples than its index entry says
)

_BRACE = re.compile(r'\{(\d+)\.\.(\d+)\}')
_GLOB = re.compile(r'[*?\[]')


class ShardError(RuntimeError):
    """A shard with too many bad samples (``max_bad_fraction``)."""


def expand_braces(pattern: str) -> list[str]:
    """Expand every numeric range ``{000..099}`` of ``pattern`` (zero-padded to the first bound).

    ``'shard-{000000..000002}.tar'`` -> ``['shard-000000.tar', 'shard-000001.tar',
    'shard-000002.tar']``; several ranges multiply out; a pattern without braces is returned as is.

    Raises:
        ValueError: a range whose first bound is above the second.
    """
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    low, high = match.group(1), match.group(2)
    if int(low) > int(high):
        raise ValueError(f'shard pattern {pattern!r}: range {{{low}..{high}}} is empty')
    head, tail = pattern[: match.start()], expand_braces(pattern[match.end() :])
    return [f'{head}{n:0{len(low)}d}{t}' for n in range(int(low), int(high) + 1) for t in tail]


def resolve_shards(shards: str | Sequence[str], data_root: str = '') -> list[str]:
    """The shard files named by ``shards`` (paths, globs or brace ranges, relative to ``data_root``).

    Raises:
        FileNotFoundError: a glob that matches nothing, or named shard files that do not exist
            (all of them are listed, up to 10).
        ValueError: no shard at all, or a shard named twice.
    """
    patterns = [shards] if isinstance(shards, str) else list(shards)
    paths: list[str] = []
    for pattern in patterns:
        for name in expand_braces(str(pattern)):
            path = join_root(data_root, name) or name
            if _GLOB.search(name):
                found = sorted(glob.glob(path))
                if not found:
                    raise FileNotFoundError(f'no shard file matches {path!r}')
                paths.extend(found)
            else:
                paths.append(path)
    if not paths:
        raise ValueError(f'no shards given (shards={shards!r})')
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ', '.join(repr(p) for p in missing[:10])
        more = f' and {len(missing) - 10} more' if len(missing) > 10 else ''
        raise FileNotFoundError(
            f'{len(missing)} of {len(paths)} shard files not found: {shown}{more} '
            f'(shards={shards!r}, data_root={data_root!r})'
        )
    repeated = sorted(p for p, n in Counter(paths).items() if n > 1)
    if repeated:
        raise ValueError(f'shards named more than once: {repeated[:10]}')
    return paths


def read_shard_index(path: str) -> dict[str, int]:
    """``{shard file name: sample count}`` of an ``index.json`` written by the converter.

    Raises:
        ValueError: not the converter's format, naming the file and the entry.
    """
    doc = read_json(path, what='shard index')
    if not isinstance(doc, dict) or not isinstance(doc.get('shards'), list):
        raise ValueError(f'{path!r}: expected an object with a "shards" list (the shard index)')
    counts = {}
    for i, entry in enumerate(doc['shards']):
        ok = isinstance(entry, dict) and isinstance(entry.get('name'), str)
        if not ok or not isinstance(entry.get('samples'), int) or entry['samples'] < 0:
            raise ValueError(
                f'{path!r}: shards[{i}] must be {{"name": str, "samples": int >= 0}}, got {entry!r}'
            )
        counts[entry['name']] = entry['samples']
    return counts


def member_key(name: str) -> tuple[str, str]:
    """``(key, extension)`` of a tar member: ``'a/000001.jpg'`` -> ``('a/000001', 'jpg')``; the
    extension is everything after the first dot of the file name, lower-cased."""
    folder, _, base = name.rpartition('/')
    stem, _, ext = base.partition('.')
    return (f'{folder}/{stem}' if folder else stem), ext.lower()


def stable_image_id(value: Any) -> int:
    """An integer image id: ints as they are, anything else a stable 62-bit hash of its text (the
    losses compare integer ids, and a stream has no global table of contiguous ids)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    digest = hashlib.blake2b(str(value).encode('utf-8'), digest_size=8).digest()
    return int.from_bytes(digest, 'big') >> 2
