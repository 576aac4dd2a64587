"""Weakly supervised grounding: IoU, ALBEF's Grad-CAM box score, hits and the metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import shared_path
from vlreg.evaluation.grounding import (
    GroundingAccuracyMetric,
    box_iou,
    grounding_hit,
    score_boxes_by_cam,
    select_box_by_cam,
)
from vlreg.registry import METRICS
from vlreg.structures import DataSample


def _iou_reference(a: list[float], b: list[float]) -> float:
    """IoU of two xyxy boxes, written out with scalars."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --- IoU ------------------------------------------------------------------------------------------
def test_box_iou_hand_made() -> None:
    iou = box_iou(
        [0, 0, 2, 2],
        [
            [1, 0, 3, 2],  # overlap 1 x 2 = 2, union 4 + 4 - 2 = 6
            [5, 5, 6, 6],  # disjoint
            [0, 0, 2, 2],  # identical
            [2, 0, 4, 2],  # touching edges: no area in common
            [-1, -1, 3, 3],
        ],
    )  # contains it: 4 / 16
    assert iou.shape == (1, 5) and iou.dtype == torch.float64
    assert iou[0].tolist() == pytest.approx([1 / 3, 0.0, 1.0, 0.0, 0.25])
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([1, 1, 1, 1], [1, 1, 1, 1]).item() == 0.0  # empty union is not a match
    with pytest.raises(ValueError, match=r'\[N, 4\]'):
        box_iou([[0, 0, 1]], [0, 0, 1, 1])


def test_box_iou_matches_a_scalar_reference() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(7, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, size=(7, 2))], axis=1)
    xy = rng.uniform(0, 50, size=(5, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 30, size=(5, 2))], axis=1)
    iou = box_iou(torch.from_numpy(a).float(), b)
    expected = [[_iou_reference(list(x), list(y)) for y in b] for x in a]
    assert iou.shape == (7, 5)
    np.testing.assert_allclose(iou.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_grounding_hit_threshold_is_inclusive() -> None:
    gt = [0, 0, 2, 2]
    assert grounding_hit([0, 0, 2, 1], gt)  # IoU 2 / 4 = 0.5 exactly
    assert not grounding_hit([0, 0, 2, 0.9], gt)  # 1.8 / 4 = 0.45
    assert grounding_hit([0, 0, 2, 0.9], gt, thr=0.4)
    # several ground-truth boxes: a hit on any one counts
    assert grounding_hit([10, 10, 12, 12], [[0, 0, 2, 2], [10, 10, 12, 13]])
    assert not grounding_hit([0, 0, 1, 1], np.zeros((0, 4)))
    with pytest.raises(ValueError, match='one box'):
        grounding_hit([[0, 0, 1, 1], [0, 0, 2, 2]], gt)


# --- Grad-CAM box scores --------------------------------------------------------------------------
def test_score_is_sum_inside_over_sqrt_area() -> None:
    cam = torch.zeros(8, 8)
    cam[2:4, 2:4] = 1.0  # rows 2-3, columns 2-3
    scores = score_boxes_by_cam(
        cam,
        [
            [2, 2, 4, 4],  # 4 / sqrt(4) = 2
            [0, 0, 8, 8],  # 4 / sqrt(64) = 0.5
            [2, 2, 3, 3],  # 1 / sqrt(1) = 1
            [3, 3, 3, 5],  # no area: never chosen
            [6, 6, 20, 20],
        ],
    )  # outside part adds nothing: 0
    assert scores.tolist() == pytest.approx([2.0, 0.5, 1.0, -math.inf, 0.0])
    index, box = select_box_by_cam(cam, [[0, 0, 8, 8], [2, 2, 3, 3], [2, 2, 4, 4]])
    assert index == 2 and box.tolist() == [2, 2, 4, 4]


def test_score_truncates_coordinates_like_albef() -> None:
    # ALBEF sums mask[int(y0):int(y0 + h), int(x0):int(x0 + w)] and divides by w * h (floats)
    rng = np.random.default_rng(1)
    cam = rng.random((20, 30))
    boxes = np.array([[0.7, 1.2, 10.9, 7.5], [5.5, 3.1, 29.99, 19.5], [12.0, 0.0, 13.5, 20.0]])
    expected = [
        cam[int(y0) : int(y1), int(x0) : int(x1)].sum() / math.sqrt((x1 - x0) * (y1 - y0))
        for x0, y0, x1, y1 in boxes
    ]
    np.testing.assert_allclose(score_boxes_by_cam(cam, boxes).numpy(), expected, rtol=1e-10)
    half = score_boxes_by_cam(cam, boxes, alpha=1.0).numpy()
    np.testing.assert_allclose(
        half,
        [
            cam[int(y0) : int(y1), int(x0) : int(x1)].sum() / ((x1 - x0) * (y1 - y0))
            for x0, y0, x1, y1 in boxes
        ],
    )


def test_patch_grid_is_upsampled_to_the_image() -> None:
    # a constant map stays constant under bicubic upsampling: score = area / sqrt(area)
    scores = score_boxes_by_cam(torch.ones(2, 2), [[0, 0, 4, 4], [0, 0, 8, 6]], image_hw=(8, 8))
    assert scores.tolist() == pytest.approx([4.0, math.sqrt(48)], rel=1e-6)
    # one hot patch of a 2 x 2 grid on a 6 x 8 image (nearest): the bottom-right quadrant wins
    grid = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    quadrants = [[0, 0, 4, 3], [4, 0, 8, 3], [0, 3, 4, 6], [4, 3, 8, 6]]
    scores = score_boxes_by_cam(grid, quadrants, image_hw=(6, 8), interpolation='nearest')
    assert scores.tolist() == pytest.approx([0, 0, 0, 12 / math.sqrt(12)])
    # bicubic (ALBEF) picks the same box
    assert select_box_by_cam(grid, quadrants, image_hw=(6, 8))[0] == 3
    with pytest.raises(ValueError, match=r'\[h, w\]'):
        score_boxes_by_cam(torch.ones(2, 2, 2), quadrants)


# --- the metric -----------------------------------------------------------------------------------
def test_metric_accuracy_per_split() -> None:
    metric = METRICS.build(dict(type='GroundingAccuracyMetric'))
    assert isinstance(metric, GroundingAccuracyMetric)
    gt = [[0.0, 0.0, 10.0, 10.0]]
    metric.process(
        None,
        [
            dict(pred_bbox=[0, 0, 10, 10], ori_gt_bboxes=gt, split='val'),  # hit
            dict(pred_bbox=[0, 0, 10, 4], ori_gt_bboxes=gt, split='val'),  # IoU 0.4: miss
            dict(pred_bbox=[0, 0, 10, 6], ori_gt_bboxes=gt, split='testA'),  # IoU 0.6: hit
            # proposals + scores: the best-scored proposal is the prediction
            dict(
                proposals=[[50, 50, 60, 60], [1, 1, 10, 10]],
                proposal_scores=[0.1, 0.9],
                gt_bboxes=gt,
                split='testB',
            ),  # IoU 0.81: hit
        ],
    )
    sample = DataSample(metainfo=dict(split='testB', ori_gt_bboxes=np.asarray(gt)))
    sample.pred_bbox = torch.tensor([20.0, 20.0, 30.0, 30.0])  # miss
    metric.process(None, [sample])
    out = metric.evaluate(5)
    assert out == {
        'grounding/num_samples': 5.0,
        'grounding/acc': pytest.approx(60.0),
        'grounding/val_acc': pytest.approx(50.0),
        'grounding/testA_acc': pytest.approx(100.0),
        'grounding/testB_acc': pytest.approx(50.0),
    }


def test_metric_chance_is_the_share_of_hitting_proposals() -> None:
    metric = GroundingAccuracyMetric()
    gt = [[0.0, 0.0, 10.0, 10.0]]
    # sample 1: proposals with IoU 1.0, 0.4 and 0.6 -> 2 of 3 hit; the best-scored one (IoU 0.4) misses
    metric.process(
        None,
        [
            dict(
                proposals=[[0, 0, 10, 10], [0, 0, 10, 4], [0, 0, 10, 6]],
                proposal_scores=[0.1, 0.9, 0.2],
                ori_gt_bboxes=gt,
                split='val',
            )
        ],
    )
    # sample 2: one proposal of four hits (IoU 0.81); the prediction is that one
    metric.process(
        None,
        [
            dict(
                proposals=[[50, 50, 60, 60], [1, 1, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]],
                proposal_scores=[0.0, 1.0, 0.5, 0.5],
                ori_gt_bboxes=gt,
                split='testA',
            )
        ],
    )
    out = metric.evaluate(2)
    assert out['grounding/acc'] == pytest.approx(50.0)
    assert out['grounding/val_chance'] == pytest.approx(100 * 2 / 3)
    assert out['grounding/testA_chance'] == pytest.approx(100 * 1 / 4)
    assert out['grounding/chance'] == pytest.approx(100 * (2 / 3 + 1 / 4) / 2)


def test_metric_prefers_original_pixel_boxes() -> None:
    metric = GroundingAccuracyMetric()
    # gt_bboxes were moved by a resize; ori_gt_bboxes are in the predictions' coordinates
    metric.process(
        None,
        [
            dict(
                pred_bbox=[0, 0, 100, 100],
                gt_bboxes=[[0, 0, 10, 10]],
                ori_gt_bboxes=[[0, 0, 100, 100]],
            )
        ],
    )
    assert metric.evaluate(1) == {'grounding/num_samples': 1.0, 'grounding/acc': 100.0}


def test_metric_rejects_incomplete_samples() -> None:
    metric = GroundingAccuracyMetric()
    with pytest.raises(KeyError, match='pred_bbox'):
        metric.process(None, [dict(gt_bboxes=[[0, 0, 1, 1]], sample_idx=3)])
    with pytest.raises(KeyError, match='gt_bboxes'):
        metric.process(None, [dict(pred_bbox=[0, 0, 1, 1])])
    with pytest.raises(ValueError, match='2 proposals but 1 scores'):
        metric.process(
            None,
            [
                dict(
                    proposals=[[0, 0, 1, 1], [0, 0, 2, 2]],
                    proposal_scores=[1.0],
                    gt_bboxes=[[0, 0, 1, 1]],
                )
            ],
        )


def test_oracle_maps_ground_every_single_object_of_coco_mini() -> None:
    """A map equal to the object's own box picks that box among all the image's boxes."""
    from vlreg.datasets.downstream import GroundingDataset

    root = shared_path('coco_mini_train2017')
    ds = GroundingDataset(ann_file='grounding.json', data_root=str(root), expressions='categories')
    metric = GroundingAccuracyMetric()
    scored = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        if len(info['ori_gt_bboxes']) != 1 or len(info['proposals']) < 3:
            continue  # single-instance categories among at least 3 boxes
        cam = np.zeros((info['height'], info['width']))
        x0, y0, x1, y1 = info['ori_gt_bboxes'][0]
        cam[int(y0) : int(y1), int(x0) : int(x1)] = 1.0
        scores = score_boxes_by_cam(cam, info['proposals'])
        metric.process(None, [dict(info, proposal_scores=scores)])
        scored += 1
        if scored == 50:  # enough to be meaningful, cheap enough to stay fast
            break
    assert scored == 50
    assert metric.evaluate(scored)['grounding/acc'] == 100.0
