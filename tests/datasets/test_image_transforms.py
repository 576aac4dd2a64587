"""Image augmentations: registry, shapes, boxes, and reproducibility from numpy's global RNG."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import DefaultScope

from vlreg.datasets.transforms import (
    ColorJitter,
    GaussianBlur,
    HorizontalFlip,
    RandAugment,
    RandomResizedCrop,
    Resize,
    ToGray,
)
from vlreg.datasets.transforms.image import ALBEF_PRETRAIN_OPS, RANDAUG_OPS
from vlreg.registry import AUGMENTATIONS, TRANSFORMS

AUGS = [
    'RandomResizedCrop',
    'Resize',
    'HorizontalFlip',
    'RandAugment',
    'ColorJitter',
    'ToGray',
    'GaussianBlur',
]
ARGS = {'RandomResizedCrop': dict(size=32), 'Resize': dict(size=(24, 40))}


def _results() -> dict:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    return {'img': img, 'gt_bboxes': np.array([[4, 6, 20, 30], [40, 10, 60, 44]], np.float32)}


@pytest.mark.parametrize('name', AUGS)
def test_augmentation_registered_and_reproducible(name: str) -> None:
    assert name in AUGMENTATIONS.module_dict and name not in TRANSFORMS.module_dict
    t = TRANSFORMS.build(dict(type=name, **ARGS.get(name, {})))  # pipelines find augmentations
    np.random.seed(3)
    a = t(_results())
    state = np.random.get_state()
    a2 = t(_results())
    np.random.seed(3)
    b = t(_results())
    np.random.set_state(state)
    b2 = t(_results())
    for x, y in ((a, b), (a2, b2)):
        assert x['img'].dtype == np.uint8 and x['img'].ndim == 3 and x['img'].shape[2] == 3
        assert np.array_equal(x['img'], y['img'])
        assert np.array_equal(x['gt_bboxes'], y['gt_bboxes'])
        assert tuple(x.get('img_shape', x['img'].shape[:2])) == x['img'].shape[:2]


def test_default_scope_builds_through_mmengine_root() -> None:
    DefaultScope.get_instance('test_vlreg_transforms', scope_name='vlreg')
    with DefaultScope.overwrite_default_scope('vlreg'):
        t = MMENGINE_TRANSFORMS.build(dict(type='RandAugment', num_ops=1))
    assert isinstance(t, RandAugment)


def test_random_resized_crop_varies_with_seed() -> None:
    t = RandomResizedCrop(32)
    outs = []
    for seed in range(4):
        np.random.seed(seed)
        outs.append(t(_results())['img'])
    assert all(o.shape == (32, 32, 3) for o in outs)
    assert len({o.tobytes() for o in outs}) == 4


def test_horizontal_flip_moves_boxes_and_records_flag() -> None:
    res = _results()
    out = HorizontalFlip(p=1.0)(copy.deepcopy(res))
    assert out['flipped'] is True
    assert np.array_equal(out['img'], res['img'][:, ::-1])
    w = res['img'].shape[1]
    expected = np.stack(
        [
            w - res['gt_bboxes'][:, 2],
            res['gt_bboxes'][:, 1],
            w - res['gt_bboxes'][:, 0],
            res['gt_bboxes'][:, 3],
        ],
        axis=1,
    )
    np.testing.assert_allclose(out['gt_bboxes'], expected, atol=1e-4)
    again = HorizontalFlip(p=1.0)(out)
    assert again['flipped'] is False and np.array_equal(again['img'], res['img'])
    kept = HorizontalFlip(p=0.0)(copy.deepcopy(res))
    assert kept['flipped'] is False and np.array_equal(kept['img'], res['img'])


def test_resize_scales_boxes() -> None:
    out = Resize((24, 32))(_results())
    assert out['img'].shape == (24, 32, 3) and out['img_shape'] == (24, 32)
    np.testing.assert_allclose(out['gt_bboxes'], [[2, 3, 10, 15], [20, 5, 30, 22]], atol=1e-3)


def test_crop_keeps_box_count_and_empties_lost_boxes() -> None:
    res = _results()
    res['gt_bboxes'] = np.array([[0, 0, 2, 2], [10, 10, 50, 40], [0, 0, 0, 0]], np.float32)
    t = RandomResizedCrop(32, scale=(0.05, 0.1))
    seen_lost = False
    for seed in range(20):
        np.random.seed(seed)
        out = t(copy.deepcopy(res))
        boxes = out['gt_bboxes']
        assert boxes.shape == (3, 4)
        assert np.all(boxes >= 0) and np.all(boxes <= 32)
        assert np.array_equal(boxes[2], [0, 0, 0, 0])
        seen_lost |= bool(np.array_equal(boxes[0], [0, 0, 0, 0]))
    assert seen_lost


def test_randaugment_defaults_are_albef_geometric_and_tone_ops() -> None:
    t = RandAugment()
    assert t.num_ops == 2 and t.magnitude == 7 and t.ops == ALBEF_PRETRAIN_OPS
    assert not {'Color', 'Contrast', 'Solarize', 'Posterize'} & set(t.ops)
    with pytest.raises(ValueError, match='unknown ops'):
        RandAugment(ops=['Nope'])
    every = RandAugment(num_ops=3, ops=list(RANDAUG_OPS), op_prob=1.0)
    np.random.seed(0)
    changed = 0
    for _ in range(10):
        out = every(_results())
        assert out['img'].shape == (48, 64, 3) and out['gt_bboxes'].shape == (2, 4)
        changed += int(not np.array_equal(out['img'], _results()['img']))
    assert changed >= 8


def test_photometric_defaults() -> None:
    cj, gray, blur = ColorJitter(), ToGray(), GaussianBlur()
    assert (cj.args, cj.p) == (dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), 0.8)
    assert gray.p == 0.2 and (blur.sigma, blur.p) == ((0.1, 2.0), 0.5)
    out = ToGray(p=1.0)(_results())['img'].astype(int)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
