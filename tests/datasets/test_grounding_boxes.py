"""Grounding boxes are bounds-checked where they are read (issue 11): detector proposals in
``GroundingDataset``, the RefCOCO converter's boxes and proposals, and the grounding metric's
inputs. A bad box (negative size, not finite, wrong length, outside the image by more than one
pixel) is refused naming the file (or sample) and the entry."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from vlreg.datasets import GroundingDataset
from vlreg.datasets.prepare import refcoco
from vlreg.evaluation.grounding import GroundingAccuracyMetric
from vlreg.structures.boxes import BOX_TOLERANCE, box_problem

NAN = float('nan')


# --- the rule ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'box,size,expected',
    [
        ([0, 0, 4, 4], (16, 12), None),
        ([2, 2, 2, 5], (16, 12), None),  # zero width: not negative
        ([-1, -1, 17, 13], (16, 12), None),  # one pixel past every border: allowed
        ([-1.5, 0, 4, 4], (16, 12), 'lies outside the 16 x 12 image'),
        ([0, 0, 4, 13.5], (16, 12), 'lies outside the 16 x 12 image'),
        ([0, 0, 400, 400], (None, None), None),  # size unknown: not checked
        ([3, 0, 2, 4], (16, 12), 'has a negative size'),
        ([0, 4, 4, 3], (None, None), 'has a negative size'),
        ([0, NAN, 4, 4], (16, 12), 'is not finite'),
        ([0, 0, math.inf, 4], (None, None), 'is not finite'),
        ([0, 0, 4], (16, 12), 'has 3 values, not 4 (x0, y0, x1, y1)'),
        ([0, 0, 4, 4, 1], (16, 12), 'has 5 values, not 4 (x0, y0, x1, y1)'),
        ([0, '0', 4, 4], (16, 12), 'is not four numbers'),
        ([0, True, 4, 4], (16, 12), 'is not four numbers'),
    ],
)
def test_box_problem(box: list, size: tuple, expected: str | None) -> None:
    assert box_problem(box, *size) == expected
    assert BOX_TOLERANCE == 1.0


# --- GroundingDataset: proposals -----------------------------------------------------------------
def _refer(tmp: Path, dets_1: Any, size: bool = True) -> dict:
    """Two refer entries (16 x 12 images unless ``size`` is False) and proposals keyed by ref id;
    entry 0's proposals are ``dets_1``."""
    extra = dict(width=16, height=12) if size else {}
    entries = [
        dict(image='a.png', text='the red box', ref_id=1, bbox=[1, 1, 4, 4], **extra),
        dict(image='b.png', text='the blue box', ref_id=2, bbox=[2, 2, 5, 5], **extra),
    ]
    (tmp / 'ann.json').write_text(json.dumps(entries))
    (tmp / 'dets.json').write_text(json.dumps({'1': dets_1, '2': [[0, 0, 8, 6, 0.7]]}))
    return dict(
        ann_file='ann.json', data_root=str(tmp), proposal_file='dets.json', proposal_key='ref_id'
    )


BAD_PROPOSALS = dict(
    negative=[5, 1, -4, 4],
    nan=[1, 1, NAN, 4],
    outside_right=[10, 2, 9, 4],
    outside_top=[1, -3, 4, 4],
    short=[1, 1, 4],
    strings=['1', '1', '4', '4'],
)


@pytest.mark.parametrize('case', list(BAD_PROPOSALS))
def test_bad_proposal_names_file_entry_and_proposal(tmp_path: Path, case: str) -> None:
    kwargs = _refer(tmp_path, [[0, 0, 4, 4, 0.9], BAD_PROPOSALS[case]])
    with pytest.raises(
        ValueError,
        match=r"ann\.json': entry 0, proposal 1 of ref_id 1 in "
        r"'[^']*dets\.json'",
    ):
        GroundingDataset(**kwargs)
    lenient = GroundingDataset(**kwargs, skip_bad_samples=True)
    assert lenient.num_bad_entries == 1 and len(lenient) == 1
    assert lenient.get_data_info(0)['ann_index'] == 1
    assert 'proposal 1 of ref_id 1' in lenient.bad_entries[0]


def test_proposals_that_are_not_a_list_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("ann.json': entry 0: the proposals of ref_id 1 in ")
        + r'.*must be a list .* got dict',
    ):
        GroundingDataset(**_refer(tmp_path, {'x': 1}))


def test_good_proposals_load_with_scores_and_the_tolerance(tmp_path: Path) -> None:
    # [-1, -1, 17, 13] in xywh ends at (16, 12): inside; [x, y, w, h, score] keeps x, y, w, h
    ds = GroundingDataset(**_refer(tmp_path, [[-1, -1, 17, 13], [2, 3, 4, 5, 0.9]]))
    assert ds.get_data_info(0)['proposals'].tolist() == [[-1, -1, 16, 12], [2, 3, 6, 8]]
    assert ds.get_data_info(1)['proposals'].tolist() == [[0, 0, 8, 6]]


def test_proposals_of_an_entry_without_size_are_not_bounds_checked(tmp_path: Path) -> None:
    ds = GroundingDataset(**_refer(tmp_path, [[10, 2, 90, 40]], size=False))
    assert ds.get_data_info(0)['proposals'].tolist() == [[10, 2, 100, 42]]
    with pytest.raises(ValueError, match='proposal 0 of ref_id 1'):  # the size-free checks stay
        GroundingDataset(**_refer(tmp_path, [[10, 2, -9, 40]], size=False))


# --- the RefCOCO converter -----------------------------------------------------------------------
def _args(**kwargs: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    refcoco.add_arguments(parser)
    argv: list[str] = []
    for key, value in kwargs.items():
        argv += [f'--{key.replace("_", "-")}', str(value)]
    return parser.parse_args(argv)


def _converter_files(tmp: Path, proposals: Any) -> argparse.Namespace:
    instances = dict(
        images=[dict(id=9, file_name='COCO_9.jpg', width=100, height=80)],
        annotations=[
            dict(id=100, image_id=9, bbox=[1, 2, 10, 20], category_id=1),
            dict(id=101, image_id=9, bbox=[90, 5, 20, 10], category_id=1),
        ],  # x1 = 110
        categories=[dict(id=1, name='bowl')],
    )
    refs = [
        dict(ref_id=3, ann_id=100, image_id=9, split='val', sentences=[dict(sent='bowl')]),
        dict(ref_id=4, ann_id=101, image_id=9, split='val', sentences=[dict(sent='cup')]),
    ]
    (tmp / 'instances.json').write_text(json.dumps(instances))
    (tmp / 'refs.json').write_text(json.dumps(refs))
    (tmp / 'dets.json').write_text(json.dumps(proposals))
    return _args(
        refs=tmp / 'refs.json',
        instances=tmp / 'instances.json',
        proposals=tmp / 'dets.json',
        out_dir=tmp / 'out',
    )


def test_converter_skips_boxes_outside_the_image_naming_them(tmp_path: Path, capsys) -> None:
    dets = {'9': [[1, 2, 10, 20, 0.9], [95, 70, 10, 20, 0.5], [1, 2, NAN, 4], [0, 0, 101, 81]]}
    assert refcoco.run(_converter_files(tmp_path, dets)) == 0
    printed = capsys.readouterr().out
    for reason in (
        'annotation 1 (id 101): bbox [90, 5, 20, 10] lies outside the 100 x 80 image 9',
        'image 9 (proposal 1): proposal [95, 70, 10, 20, 0.5] lies outside the 100 x 80 image 9',
        'image 9 (proposal 2): proposal [1, 2, nan, 4] has no area or is not',
        'ref 1 (ref_id 4): ann_id 101 is not a valid annotation',
    ):
        assert reason in printed, (reason, printed)
    kept = json.loads((tmp_path / 'out' / 'refcoco+_proposals.json').read_text())
    assert kept == {'9': [[1, 2, 10, 20, 0.9], [0, 0, 101, 81]]}  # 1 px past the border: kept
    # what the converter keeps, the dataset reads
    ds = GroundingDataset(
        data_root=str(tmp_path / 'out'),
        ann_file='refcoco+_val.json',
        proposal_file='refcoco+_proposals.json',
    )
    assert ds.get_data_info(0)['proposals'].tolist() == [[1, 2, 11, 22], [0, 0, 101, 81]]


def test_converter_skips_bad_detections_of_a_results_list(tmp_path: Path, capsys) -> None:
    dets = [
        dict(image_id=9, bbox=[0, 0, 10, 10], score=0.3),
        dict(image_id=9, bbox=5),
        dict(image_id=9, bbox=[0, 0, 10, True]),
        dict(image_id=9, bbox=[0, 75, 10, 10]),
    ]
    assert refcoco.run(_converter_files(tmp_path, dets)) == 0
    printed = capsys.readouterr().out
    for reason in (
        'detection 1 (image 9): bbox 5 is not [x, y, w, h] numbers',
        'detection 2 (image 9): proposal [0, 0, 10, True] has no area',
        'detection 3 (image 9): proposal [0, 75, 10, 10] lies outside the 100 x 80 image 9',
    ):
        assert reason in printed, (reason, printed)
    kept = json.loads((tmp_path / 'out' / 'refcoco+_proposals.json').read_text())
    assert kept == {'9': [[0, 0, 10, 10, 0.3]]}


# --- the metric ----------------------------------------------------------------------------------
GT = [[0.0, 0.0, 10.0, 10.0]]


@pytest.mark.parametrize(
    'sample,message',
    [
        (
            dict(pred_bbox=[0, 0, NAN, 4], ori_gt_bboxes=GT, sample_idx=3),
            r'sample 3: pred_bbox: box 0 \[0.0, 0.0, nan, 4.0\] is not finite',
        ),
        (
            dict(
                proposals=[[0, 0, 4, 4], [5, 5, 2, 9]],
                proposal_scores=[0.2, 0.1],
                ori_gt_bboxes=GT,
                sample_idx=3,
                img_path='x/a.jpg',
                ann_index=4,
                ref_id=7,
            ),
            r"sample 3 \('x/a\.jpg', entry 4, ref_id 7\): proposals box 1 \[5.0, 5.0, 2.0, 9.0\] has "
            'a negative size',
        ),
        (
            dict(pred_bbox=[0, 0, 4, 4], ori_gt_bboxes=[[0, 0, 10, 10, 1]], sample_idx=3),
            r'sample 3: ori_gt_bboxes must be \[4\] or \[N, 4\]',
        ),
        (
            dict(
                proposals=[[0, 0, 4, 4], [0, 0, 18, 4]],
                proposal_scores=[0.2, 0.1],
                ori_gt_bboxes=GT,
                sample_idx=5,
                width=16,
                height=12,
            ),
            r'sample 5: proposals box 1 \[0.0, 0.0, 18.0, 4.0\] lies outside the 16 x 12 image',
        ),
        (
            dict(
                pred_bbox=[0, 0, 4, 4],
                ori_gt_bboxes=[[0, 0, 10, 14]],
                sample_idx=5,
                ori_shape=(12, 16),
            ),
            r'sample 5: ori_gt_bboxes box 0 \[0.0, 0.0, 10.0, 14.0\] lies outside the 16 x 12 image',
        ),
    ],
)
def test_metric_refuses_bad_boxes_naming_the_sample(sample: dict, message: str) -> None:
    with pytest.raises(ValueError, match='GroundingAccuracyMetric: ' + message):
        GroundingAccuracyMetric().process(None, [sample])


def test_metric_accepts_what_the_loop_and_transforms_produce() -> None:
    metric = GroundingAccuracyMetric()
    metric.process(
        None,
        [
            # no proposal: the loop predicts an all-zero box (a miss, not an error)
            dict(
                pred_bbox=torch.zeros(4, dtype=torch.float64), ori_gt_bboxes=GT, ori_shape=(12, 16)
            ),
            # gt_bboxes moved with a resize are not checked against the original size
            dict(pred_bbox=[0, 0, 30, 30], gt_bboxes=[[0, 0, 30, 30]], ori_shape=(12, 16)),
            # one pixel past the border is allowed
            dict(pred_bbox=[-1, -1, 17, 13], ori_gt_bboxes=[[0, 0, 16, 12]], height=12, width=16),
        ],
    )
    out = metric.evaluate(3)
    assert out['grounding/acc'] == pytest.approx(100 * 2 / 3)
