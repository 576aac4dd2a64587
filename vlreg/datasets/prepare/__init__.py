"""Converters from the official dataset distributions to the files vlreg reads.

One module per dataset, each run by ``tools/prepare_data.py <name>``. A module defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; it validates every entry, writes its outputs and prints
what it wrote and what it skipped (with the reason), so a conversion never drops data silently.
"""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar('T')

DATASETS = ('retrieval', 'vqa', 'nlvr2', 'snli_ve', 'refcoco', 'shards')


def progress(
    iterable: Iterable[T], total: int | None = None, desc: str = '', every: int | None = None
) -> Iterator[T]:
    """Yield from ``iterable`` and print ``desc: done/total`` to stderr as it goes.

    Prints about 20 updates over the run (or one every ``every`` items) plus the final count; a carriage
    return keeps it to one line on a terminal, and each update ends the line when stderr is not a tty
    (log files stay readable).
    """
    if total is None and hasattr(iterable, '__len__'):
        total = len(iterable)  # type: ignore[arg-type]
    step = every or (max(1, total // 20) if total else 1000)
    tty = sys.stderr.isatty()
    count = 0

    def show() -> None:
        text = f'{desc}: {count}/{total}' if total else f'{desc}: {count}'
        sys.stderr.write(('\r' + text) if tty else (text + '\n'))
        sys.stderr.flush()

    for item in iterable:
        yield item
        count += 1
        if count % step == 0 and count != total:
            show()
    show()
    if tty:
        sys.stderr.write('\n')


def image_problem(path: str, decode: bool = False) -> str | None:
    """Why the image at ``path`` cannot be used (missing, empty, undecodable), or None when it can.

    Without ``decode`` only existence and a non-zero size are checked (fast on millions of files);
    with it the file is decoded by OpenCV, which catches truncated or non-image files.
    """
    import os

    if not os.path.isfile(path):
        return f'image {path!r} not found'
    if os.path.getsize(path) == 0:
        return f'image {path!r} is empty'
    if decode:
        import cv2

        if cv2.imread(path, cv2.IMREAD_COLOR) is None:
            return f'image {path!r} cannot be decoded'
    return None


def report(name: str, written: int, out: str, skipped: list[str]) -> None:
    """Print what a conversion wrote and what it skipped (the first 20 reasons, then a count)."""
    print(f'{name}: wrote {written} entries to {out}; skipped {len(skipped)}')
    for reason in skipped[:20]:
        print(f'  skipped: {reason}')
    if len(skipped) > 20:
        print(f'  ... and {len(skipped) - 20} more')
