"""What makes a box usable: the rule the grounding datasets, the converters and the grounding
metric share.

Boxes are ``[x0, y0, x1, y1]`` pixels of the original image. A box is bad when it does not hold
four finite numbers, when its size is negative (``x1 < x0`` or ``y1 < y0``), or, when the image
size is known, when it reaches more than :data:`BOX_TOLERANCE` pixel past a border (annotation
tools and detectors round outwards, so one pixel is allowed). This module imports nothing from
vlreg.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ['BOX_TOLERANCE', 'box_problem']

#: How far (pixels) a box may reach past the image border (annotation tools round outwards).
BOX_TOLERANCE = 1.0


def _known_size(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        return None
    return float(value)


def box_problem(xyxy: Sequence[Any], width: Any = None, height: Any = None) -> str | None:
    """Why ``xyxy`` is not a usable box (a phrase to put after the box), or None when it is.

    Args:
        xyxy: ``[x0, y0, x1, y1]``.
        width, height: the image size in pixels; None (or not a positive number): not checked.

    Example:
        >>> box_problem([0, 0, 4, 4], 16, 12), box_problem([0, 0, 4, -1])
        (None, 'has a negative size')
        >>> box_problem([0, 0, 18, 4], 16, 12)
        'lies outside the 16 x 12 image'
    """
    if len(xyxy) != 4:
        return f'has {len(xyxy)} values, not 4 (x0, y0, x1, y1)'
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in xyxy):
        return 'is not four numbers'
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return 'is not finite'
    if x1 < x0 or y1 < y0:
        return 'has a negative size'
    w, h, tol = _known_size(width), _known_size(height), BOX_TOLERANCE
    if (w is not None and (x0 < -tol or x1 > w + tol)) or (
        h is not None and (y0 < -tol or y1 > h + tol)
    ):
        return f'lies outside the {width} x {height} image'
    return None
