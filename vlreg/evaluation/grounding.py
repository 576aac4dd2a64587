"""Weakly supervised visual grounding (ALBEF's RefCOCO+ protocol): box scoring by Grad-CAM and IoU.

ALBEF grounds an expression without box supervision: the Grad-CAM map of the expression (ITM
score w.r.t. the cross-attention of fusion layer index 8, averaged over heads and words) is
upsampled bicubically to the image size, each detector proposal is scored by the sum of the map
inside it divided by ``sqrt(area)``, and the best proposal counts as correct when its IoU with the
ground-truth box is at least 0.5 (reported on val / testA / testB).

Conventions: boxes are ``[x0, y0, x1, y1]`` in pixels of the original image; a box covers the
pixel rows ``int(y0) .. int(y1) - 1`` and columns ``int(x0) .. int(x1) - 1`` when a map is summed
(ALBEF's slicing), and has the continuous area ``(x1 - x0) * (y1 - y0)`` in IoU and scores. (The
refer toolkit's IoU used by ALBEF adds one pixel to widths and heights; that matters only for
boxes a few pixels wide, and we keep the continuous form used by the rest of vlreg.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from vlreg.registry import METRICS
from vlreg.structures.boxes import box_problem

__all__ = [
    'GroundingAccuracyMetric',
    'box_iou',
    'grounding_hit',
    'score_boxes_by_cam',
    'select_box_by_cam',
]


def _boxes(boxes: Any, name: str) -> torch.Tensor:
    """``[N, 4]`` float64 tensor from a tensor / array / list of one or several xyxy boxes."""
    if isinstance(boxes, torch.Tensor):
        out = boxes.detach().to('cpu', torch.float64)
    else:
        out = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    if out.numel() == 0:
        return out.reshape(0, 4)
    if out.shape[-1] != 4 or out.dim() > 2:
        raise ValueError(f'{name} must be [4] or [N, 4] xyxy boxes, got shape {tuple(out.shape)}')
    out = out.reshape(-1, 4)
    if not torch.isfinite(out).all():
        row = int((~torch.isfinite(out)).any(1).nonzero()[0])
        raise ValueError(f'{name}: box {row} {out[row].tolist()} is not finite')
    return out


def _checked_boxes(
    boxes: Any, name: str, where: str, image_hw: tuple[Any, Any] | None = None
) -> torch.Tensor:
    """:func:`_boxes`, refusing (naming ``where`` and the box) a box of negative size or one that
    lies outside the ``(H, W)`` image by more than :data:`~vlreg.structures.boxes.BOX_TOLERANCE`
    pixel (:func:`~vlreg.structures.boxes.box_problem`); boxes of zero size pass."""
    try:
        out = _boxes(boxes, name)
    except ValueError as err:
        raise ValueError(f'GroundingAccuracyMetric: {where}: {err}') from err
    height, width = image_hw if image_hw is not None else (None, None)
    for row, box in enumerate(out.tolist()):
        problem = box_problem(box, width, height)
        if problem is not None:
            raise ValueError(f'GroundingAccuracyMetric: {where}: {name} box {row} {box} {problem}')
    return out


def box_iou(a_xyxy: Any, b_xyxy: Any) -> torch.Tensor:
    """Pairwise IoU of two sets of xyxy boxes.

    Args:
        a_xyxy: ``[N, 4]`` (or one box ``[4]``).
        b_xyxy: ``[M, 4]`` (or one box ``[4]``).

    Returns:
        float64 ``[N, M]``; a pair whose union is empty (two degenerate boxes) has IoU 0.

    Example:
        >>> box_iou([0, 0, 2, 2], [[1, 0, 3, 2], [5, 5, 6, 6]])
        tensor([[0.3333, 0.0000]], dtype=torch.float64)
    """
    a, b = _boxes(a_xyxy, 'a_xyxy'), _boxes(b_xyxy, 'b_xyxy')
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    left_top = torch.maximum(a[:, None, :2], b[None, :, :2])
    right_bottom = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (right_bottom - left_top).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def grounding_hit(pred_box: Any, gt_box: Any, thr: float = 0.5) -> bool:
    """Whether ``pred_box`` overlaps a ground-truth box with IoU >= ``thr``.

    Args:
        pred_box: one xyxy box ``[4]``.
        gt_box: one box ``[4]`` (RefCOCO+) or several ``[K, 4]``: a hit on any of them counts.
        thr: the IoU threshold (0.5 in ALBEF and the RefCOCO literature).
    """
    pred = _boxes(pred_box, 'pred_box')
    if len(pred) != 1:
        raise ValueError(f'pred_box must be one box, got {len(pred)}')
    gt = _boxes(gt_box, 'gt_box')
    return bool(len(gt) and (box_iou(pred, gt) >= thr).any())


def score_boxes_by_cam(
    cam: Any,
    boxes_xyxy: Any,
    image_hw: Sequence[int] | None = None,
    alpha: float = 0.5,
    interpolation: str = 'bicubic',
) -> torch.Tensor:
    """ALBEF's proposal score: the sum of the map inside each box divided by ``area ** alpha``.

    Args:
        cam: ``[h, w]`` map: at pixel resolution, or on the patch grid together with
            ``image_hw`` (then upsampled to ``(H, W)`` first, bicubic by default as in ALBEF).
        boxes_xyxy: ``[P, 4]`` proposals in pixels of the ``(H, W)`` image; parts outside the
            image add nothing.
        image_hw: ``(H, W)`` of the image the boxes refer to; None: ``cam`` is already ``[H, W]``.
        alpha: area exponent (0.5 = ``sqrt``, ALBEF's setting).
        interpolation: ``F.interpolate`` mode for the upsampling (``'bicubic'``, ``'bilinear'``,
            ``'nearest'``).

    Returns:
        float64 ``[P]`` scores; a box with no area scores ``-inf`` so that it is never chosen.

    Example:
        >>> cam = torch.zeros(4, 4); cam[0, 0] = 1.0
        >>> score_boxes_by_cam(cam, [[0, 0, 1, 1], [0, 0, 4, 4]])
        tensor([1.0000, 0.2500], dtype=torch.float64)
    """
    grid = torch.as_tensor(cam).detach().to('cpu', torch.float64)
    if grid.dim() != 2 or grid.numel() == 0:
        raise ValueError(f'cam must be a non-empty [h, w] map, got shape {tuple(grid.shape)}')
    if image_hw is not None and tuple(int(s) for s in image_hw) != tuple(grid.shape):
        size = (int(image_hw[0]), int(image_hw[1]))
        kwargs = {} if interpolation == 'nearest' else {'align_corners': False}
        grid = F.interpolate(grid[None, None], size=size, mode=interpolation, **kwargs)[0, 0]
    boxes = _boxes(boxes_xyxy, 'boxes_xyxy')
    h, w = grid.shape
    # summed-area table with a zero first row / column: sum over [r0, r1) x [c0, c1) in O(1)
    table = F.pad(grid.cumsum(0).cumsum(1), (1, 0, 1, 0))
    # int() truncates toward zero as ALBEF's slicing does; then clip to the image
    idx = boxes.trunc().long()
    c0, r0 = idx[:, 0].clamp(0, w), idx[:, 1].clamp(0, h)
    c1, r1 = idx[:, 2].clamp(0, w), idx[:, 3].clamp(0, h)
    c1, r1 = torch.maximum(c1, c0), torch.maximum(r1, r0)
    inside = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    scores = inside / area.clamp(min=1e-12) ** alpha
    return torch.where(area > 0, scores, torch.full_like(scores, float('-inf')))


def select_box_by_cam(
    cam: Any, boxes_xyxy: Any, image_hw: Sequence[int] | None = None, **kwargs: Any
) -> tuple[int, torch.Tensor]:
    """Index and box of the best-scoring proposal (:func:`score_boxes_by_cam`; first on ties)."""
    boxes = _boxes(boxes_xyxy, 'boxes_xyxy')
    if not len(boxes):
        raise ValueError('select_box_by_cam needs at least one proposal')
    index = int(torch.argmax(score_boxes_by_cam(cam, boxes, image_hw, **kwargs)))
    return index, boxes[index]


def _get(sample: Any, key: str) -> Any:
    if isinstance(sample, Mapping):
        return sample.get(key)
    return sample.get(key) if hasattr(sample, 'get') else getattr(sample, key, None)


def _where(sample: Any) -> str:
    """A sample named by what it carries: index, image file, annotation entry, ref id."""
    parts = [
        f'{label}{_get(sample, key)!r}'
        for key, label in (('img_path', ''), ('ann_index', 'entry '), ('ref_id', 'ref_id '))
        if _get(sample, key) is not None
    ]
    return f'sample {_get(sample, "sample_idx")!r}' + (f' ({", ".join(parts)})' if parts else '')


def _image_hw(sample: Any) -> tuple[Any, Any] | None:
    """The original ``(H, W)`` of a sample's image (``ori_shape``, else ``height`` / ``width``),
    or None when it carries neither."""
    shape = _get(sample, 'ori_shape')
    if shape is not None:
        return shape[0], shape[1]
    height, width = _get(sample, 'height'), _get(sample, 'width')
    return None if height is None and width is None else (height, width)


@METRICS.register_module()
class GroundingAccuracyMetric(BaseMetric):
    """Grounding accuracy: the share of expressions whose predicted box has IoU >= ``thr``.

    ``process`` receives data samples (or their dicts) with

    * the prediction: ``pred_bbox`` (xyxy ``[4]``), or ``proposals`` ``[P, 4]`` with
      ``proposal_scores`` ``[P]`` (the best one is taken, e.g. from :func:`score_boxes_by_cam`);
    * the truth: ``ori_gt_bboxes`` (boxes in original-image pixels, as
      :class:`~vlreg.datasets.downstream.GroundingDataset` stores them) or else ``gt_bboxes``,
      ``[4]`` or ``[K, 4]`` (a hit on any of the K counts);
    * optional ``split`` (RefCOCO+: ``val``, ``testA``, ``testB``).

    Every box is checked (:func:`~vlreg.structures.boxes.box_problem`): four finite numbers and
    no negative size; with ``ori_gt_bboxes`` and the image size (``ori_shape``, or ``height`` /
    ``width``), the prediction, the proposals and the ground truth must also lie inside the image
    (up to :data:`~vlreg.structures.boxes.BOX_TOLERANCE` pixel). A bad box raises ``ValueError``
    naming the sample (index, image file, annotation entry, ref id, as far as it carries them)
    and the box.

    ``compute_metrics`` returns ``acc`` (percent, all samples), ``<split>_acc`` for every split
    seen, and ``num_samples``; when every sample carries its ``proposals``, also ``chance`` (and
    ``<split>_chance``): the accuracy of picking a proposal uniformly at random, i.e. the mean share
    of each sample's proposals that hit. Keys get the prefix ``grounding/``.

    Args:
        thr: IoU threshold.
        collect_device: ``'cpu'`` or ``'gpu'``, see :class:`mmengine.evaluator.BaseMetric`.
        prefix: key prefix, default ``'grounding'``.

    Example:
        >>> test_evaluator = dict(type='GroundingAccuracyMetric', thr=0.5)
    """

    default_prefix = 'grounding'

    def __init__(
        self, thr: float = 0.5, collect_device: str = 'cpu', prefix: str | None = None
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thr = float(thr)

    @staticmethod
    def _prediction(sample: Any, image_hw: tuple[Any, Any] | None = None) -> Any:
        """The predicted box, every box checked (``image_hw``: the size they must lie in)."""
        pred = _get(sample, 'pred_bbox')
        if pred is not None:
            return _checked_boxes(pred, 'pred_bbox', _where(sample), image_hw)
        proposals, scores = _get(sample, 'proposals'), _get(sample, 'proposal_scores')
        if proposals is None or scores is None:
            raise KeyError(
                'GroundingAccuracyMetric: a sample needs "pred_bbox", or "proposals" '
                f'and "proposal_scores" (sample {_get(sample, "sample_idx")!r})'
            )
        boxes = _checked_boxes(proposals, 'proposals', _where(sample), image_hw)
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float64)).reshape(-1)
        if len(scores) != len(boxes) or not len(boxes):
            raise ValueError(
                f'GroundingAccuracyMetric: {len(boxes)} proposals but '
                f'{len(scores)} scores (sample {_get(sample, "sample_idx")!r})'
            )
        return boxes[int(torch.argmax(scores))]

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            gt = _get(sample, 'ori_gt_bboxes')
            gt = _get(sample, 'gt_bboxes') if gt is None else gt
            if gt is None:
                raise KeyError(
                    'GroundingAccuracyMetric: a sample needs "ori_gt_bboxes" or '
                    f'"gt_bboxes" (sample {_get(sample, "sample_idx")!r})'
                )
            # ori_gt_bboxes, proposals and predictions are in original-image pixels; gt_bboxes
            # may have moved with the image (a resize), so the image size checks them not
            original = _get(sample, 'ori_gt_bboxes') is not None
            hw = _image_hw(sample) if original else None
            gt = _checked_boxes(
                gt, 'ori_gt_bboxes' if original else 'gt_bboxes', _where(sample), hw
            )
            hit = grounding_hit(self._prediction(sample, hw), gt, self.thr)
            split = _get(sample, 'split')
            self.results.append(
                dict(
                    hit=hit,
                    split=None if split is None else str(split),
                    chance=self._chance(sample, gt),
                )
            )

    def _chance(self, sample: Any, gt: Any) -> float | None:
        """Expected hit of a proposal drawn uniformly at random (None without proposals)."""
        proposals = _get(sample, 'proposals')
        if proposals is None:
            return None
        boxes, gt_boxes = _boxes(proposals, 'proposals'), _boxes(gt, 'gt_bboxes')
        if not len(boxes) or not len(gt_boxes):
            return 0.0
        return float((box_iou(boxes, gt_boxes) >= self.thr).any(dim=1).double().mean())

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics: dict[str, float] = {'num_samples': float(len(results))}
        if not results:
            return metrics
        metrics['acc'] = 100.0 * sum(r['hit'] for r in results) / len(results)
        by_split: dict[str, list[bool]] = defaultdict(list)
        for r in results:
            if r['split'] is not None:
                by_split[r['split']].append(r['hit'])
        for split in sorted(by_split):
            metrics[f'{split}_acc'] = 100.0 * sum(by_split[split]) / len(by_split[split])
        chances = [r for r in results if r.get('chance') is not None]
        if len(chances) == len(results):  # every sample came with its proposals
            metrics['chance'] = 100.0 * sum(r['chance'] for r in chances) / len(chances)
            for split in sorted(by_split):
                rows = [r['chance'] for r in chances if r['split'] == split]
                metrics[f'{split}_chance'] = 100.0 * sum(rows) / len(rows)
        return metrics
