"""Checks of one annotation entry's fields; each raises ``ValueError`` naming ``where``.

``where`` is the file and the entry (``"'/data/vqa.json': entry 12"``), so a message says which
line of which file to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlreg.structures.boxes import BOX_TOLERANCE

__all__ = ['as_int', 'box_array', 'require_keys', 'text_field', 'xywh_to_xyxy']


def require_keys(where: str, entry: Any, keys: Sequence[str]) -> dict:
    """``entry`` when it is an object holding ``keys``."""
    if not isinstance(entry, dict):
        raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f'{where}: missing key {missing[0]!r} (keys: {sorted(entry)})')
    return entry


def text_field(where: str, value: Any, key: str) -> str:
    """``value`` when it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{where}: {key!r} must be a non-empty string, got {value!r}')
    return value


def as_int(where: str, value: Any, key: str) -> int:
    """``value`` as an integer (an int, or a string of one); booleans and floats are refused."""
    if isinstance(value, (bool, float)):
        raise ValueError(f'{where}: {key!r} must be an integer, got {value!r}')
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{where}: {key!r} must be an integer, got {value!r}') from err


def _size(where: str, value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f'{where}: {key!r} must be a positive number, got {value!r}')
    return float(value)


def xywh_to_xyxy(where: str, box: Any, width: Any = None, height: Any = None) -> list[float]:
    """A COCO ``[x, y, w, h]`` box (extra values ignored) as ``[x0, y0, x1, y1]``.

    Raises:
        ValueError: not four finite numbers, no area (``w`` or ``h`` not positive), or, when the
            image size is known, a box reaching more than :data:`BOX_TOLERANCE` pixels outside it.
    """
    if not isinstance(box, (list, tuple)) or len(box) < 4:
        raise ValueError(f'{where}: a box must be [x, y, w, h] numbers, got {box!r}')
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in box[:4]):
        raise ValueError(f'{where}: a box must be [x, y, w, h] numbers, got {box!r}')
    x, y, w, h = (float(v) for v in box[:4])
    if not all(math.isfinite(v) for v in (x, y, w, h)) or not (w > 0 and h > 0):
        raise ValueError(f'{where}: box {box!r} has no area or is not finite')
    size_w, size_h = _size(where, width, 'width'), _size(where, height, 'height')
    tol = BOX_TOLERANCE
    if (size_w is not None and (x < -tol or x + w > size_w + tol)) or (
        size_h is not None and (y < -tol or y + h > size_h + tol)
    ):
        raise ValueError(f'{where}: box {box!r} lies outside the {width} x {height} image')
    return [x, y, x + w, y + h]


def box_array(boxes: list[list[float]]) -> np.ndarray:
    """Boxes as float32 ``[K, 4]`` (``[0, 4]`` when there are none)."""
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
