"""Grad-CAM pointing game: does the peak of a word's Grad-CAM fall inside the object the word names?

Pure functions on one map, and the registered metric that sums the hits of an evaluation loop
(:class:`vlreg.engine.pointing_loop.GradCAMPointingLoop`). Conventions: a map is ``[gh, gw]``
over the patch grid of an ``H x W`` image, patch ``(i, j)`` covers the pixel columns
``[j * W / gw, (j + 1) * W / gw)`` and its centre is the point that is scored; boxes are xyxy
pixels with ``x0 <= x < x1`` (the synthetic dataset's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from vlreg.registry import METRICS

__all__ = ['PointingMetric', 'box_chance', 'peak_location', 'pointing_hit']


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def peak_location(cam: Any, image_hw: Sequence[int]) -> tuple[float, float]:
    """Pixel centre ``(x, y)`` of the arg-max patch of ``cam`` ``[gh, gw]`` on an ``(H, W)`` image.

    Ties go to the first maximum in row-major order; NaN entries never win.

    Example:
        >>> peak_location(torch.tensor([[0., 0.], [0., 1.]]), (64, 64))
        (48.0, 48.0)
    """
    grid = _as_numpy(cam)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f'cam must be a non-empty [gh, gw] map, got shape {grid.shape}')
    grid = np.where(np.isnan(grid), -np.inf, grid)
    row, col = np.unravel_index(int(np.argmax(grid)), grid.shape)
    h, w = float(image_hw[0]), float(image_hw[1])
    return (col + 0.5) * w / grid.shape[1], (row + 0.5) * h / grid.shape[0]


def _boxes(boxes_xyxy: Any) -> np.ndarray:
    boxes = _as_numpy(boxes_xyxy)
    return boxes.reshape(-1, 4) if boxes.size else np.zeros((0, 4))


def pointing_hit(
    cam: Any, boxes_xyxy: Any, image_hw: Sequence[int] | None = None, tolerance: float = 0.0
) -> bool:
    """Whether the peak of ``cam`` lies inside one of ``boxes_xyxy``.

    Args:
        cam: ``[gh, gw]`` map (patch grid), or a map already at pixel resolution.
        boxes_xyxy: ``[4]`` or ``[K, 4]`` boxes in pixels (``x0 <= x < x1``, ``y0 <= y < y1``).
        image_hw: ``(H, W)`` of the image the boxes refer to; None: ``cam`` is at pixel resolution
            (one cell per pixel).
        tolerance: grow every box by this many pixels on each side (the pointing game's usual
            15-pixel tolerance on large images; 0 by default).

    Returns:
        True when the peak is inside a box; False for no box, and for a constant map (e.g. all
        zeros), which points nowhere (its arg-max would be the first patch by convention only).
    """
    grid = _as_numpy(cam)
    finite = grid[np.isfinite(grid)]
    if not finite.size or finite.max() <= finite.min():
        return False
    hw = grid.shape if image_hw is None else image_hw
    x, y = peak_location(grid, hw)
    boxes = _boxes(boxes_xyxy)
    if not len(boxes):
        return False
    t = float(tolerance)
    inside = (
        (boxes[:, 0] - t <= x)
        & (x < boxes[:, 2] + t)
        & (boxes[:, 1] - t <= y)
        & (y < boxes[:, 3] + t)
    )
    return bool(inside.any())


def box_chance(
    grid_hw: Sequence[int], boxes_xyxy: Any, image_hw: Sequence[int], tolerance: float = 0.0
) -> float:
    """Hit probability of a peak drawn uniformly among the patches (share of centres in a box)."""
    gh, gw = int(grid_hw[0]), int(grid_hw[1])
    h, w = float(image_hw[0]), float(image_hw[1])
    boxes = _boxes(boxes_xyxy)
    if not len(boxes):
        return 0.0
    xs = (np.arange(gw) + 0.5) * w / gw
    ys = (np.arange(gh) + 0.5) * h / gh
    t = float(tolerance)
    hit = np.zeros((gh, gw), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        hit |= (
            (ys[:, None] >= y0 - t)
            & (ys[:, None] < y1 + t)
            & (xs[None, :] >= x0 - t)
            & (xs[None, :] < x1 + t)
        )
    return float(hit.mean())


@METRICS.register_module()
class PointingMetric(BaseMetric):
    """Pointing-game accuracy from per-sample hit counts.

    ``process`` receives one dict per sample (image), e.g. from
    :class:`~vlreg.engine.pointing_loop.GradCAMPointingLoop`::

        hits    int    (caption, object) pairs whose Grad-CAM peak is inside the object's box
        total   int    (caption, object) pairs scored
        chance  float  (optional) expected hits of a peak drawn uniformly among the patches

    and ``compute_metrics`` returns ``acc`` (percent of pairs hit; 0 when nothing was scored),
    ``hits``, ``total`` and, when every sample gave it, ``chance`` (percent): the accuracy of a
    random peak, to read ``acc`` against. Keys get the prefix ``pointing/``.

    Args:
        collect_device: ``'cpu'`` or ``'gpu'``, see :class:`mmengine.evaluator.BaseMetric`.
        prefix: key prefix, default ``'pointing'``.

    Example:
        >>> test_evaluator = dict(type='PointingMetric')
    """

    default_prefix = 'pointing'

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if not isinstance(sample, dict) or 'hits' not in sample or 'total' not in sample:
                raise KeyError(
                    f'PointingMetric expects dicts with "hits" and "total", got {sample!r}'
                )
            hits, total = int(sample['hits']), int(sample['total'])
            if not 0 <= hits <= total:
                raise ValueError(f'PointingMetric: need 0 <= hits <= total, got {hits} / {total}')
            entry = dict(hits=hits, total=total)
            if sample.get('chance') is not None:
                entry['chance'] = float(sample['chance'])
            self.results.append(entry)

    def compute_metrics(self, results: list) -> dict[str, float]:
        hits = sum(r['hits'] for r in results)
        total = sum(r['total'] for r in results)
        metrics: dict[str, float] = dict(
            acc=100.0 * hits / total if total else 0.0, hits=hits, total=total
        )
        if results and all('chance' in r for r in results):
            chance = sum(r['chance'] for r in results)
            metrics['chance'] = 100.0 * chance / total if total else 0.0
        return metrics
