"""Multi-modal augmentation: the extra image view and the caption-aware horizontal flip."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from vlreg.datasets import (
    CaptionAwareHorizontalFlip,
    ColorJitter,
    GaussianBlur,
    ImageView,
    PackInputs,
    RandAugment,
    SyntheticShapesDataset,
    ToGray,
)
from vlreg.datasets.transforms.multimodal import GEOMETRIC_OPS
from vlreg.registry import AUGMENTATIONS, TRANSFORMS


def _results(caption: str | list[str] = 'a red circle to the left of a blue square') -> dict:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    return {
        'img': img,
        'img_shape': (48, 64),
        'caption': caption,
        'gt_bboxes': np.array([[4, 6, 20, 30], [40, 10, 60, 44], [0, 0, 0, 0]], np.float32),
        'gt_word_indices': [[1, 2], [8, 9]],
    }


def _mirrored(boxes: np.ndarray, width: int) -> np.ndarray:
    out = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    out[~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))] = 0
    return out


@pytest.mark.parametrize('name', ['ImageView', 'CaptionAwareHorizontalFlip'])
def test_registered_as_augmentations(name: str) -> None:
    assert name in AUGMENTATIONS.module_dict and name not in TRANSFORMS.module_dict
    assert type(TRANSFORMS.build(dict(type=name))).__name__ == name


def test_image_view_defaults_follow_the_paper() -> None:
    view = ImageView()
    cj, gray, blur, ra = view.transforms
    assert isinstance(cj, ColorJitter) and (cj.args, cj.p) == (
        dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        0.8,
    )
    assert isinstance(gray, ToGray) and gray.p == 0.2
    assert isinstance(blur, GaussianBlur) and blur.p == 0.5
    assert isinstance(ra, RandAugment) and ra.ops == GEOMETRIC_OPS
    assert set(GEOMETRIC_OPS) == {'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate'}
    assert view.out_key == 'img_aug' and view.copy_boxes
    with pytest.raises(ValueError, match='out_key'):
        ImageView(out_key='aug')


def test_image_view_leaves_main_image_and_is_seeded() -> None:
    view = ImageView()
    res = _results()
    original_img, original_boxes = res['img'].copy(), res['gt_bboxes'].copy()
    np.random.seed(7)
    out = view(res)
    assert out['img'] is res['img'] and out['img'].tobytes() == original_img.tobytes()
    assert np.array_equal(out['gt_bboxes'], original_boxes)
    aug = out['img_aug']
    assert aug.dtype == np.uint8 and aug.shape == original_img.shape
    assert not np.array_equal(aug, original_img)
    assert out['gt_bboxes_aug'].shape == original_boxes.shape
    assert np.array_equal(out['gt_bboxes_aug'][2], [0, 0, 0, 0])
    np.random.seed(7)
    again = view(_results())
    assert np.array_equal(again['img_aug'], aug)
    assert np.array_equal(again['gt_bboxes_aug'], out['gt_bboxes_aug'])
    views = set()
    for seed in range(5):
        np.random.seed(seed)
        views.add(view(_results())['img_aug'].tobytes())
    assert len(views) == 5
    no_boxes = ImageView(copy_boxes=False)(_results())
    assert 'gt_bboxes_aug' not in no_boxes


def test_image_view_moves_its_own_boxes_and_packs() -> None:
    shift = dict(type='RandAugment', num_ops=1, ops=['TranslateX'], op_prob=1.0, magnitude=10)
    view = ImageView(transforms=[shift], out_key='img_shift')
    shifts = set()
    for seed in range(6):
        np.random.seed(seed)
        out = view(_results())
        moved, boxes = out['gt_bboxes_shift'], _results()['gt_bboxes']
        dx = moved[0, 2] - boxes[0, 2]  # right edge of box 0: inside the image either way
        assert abs(dx) == 10 and moved[1, 0] - boxes[1, 0] == dx
        assert np.array_equal(moved[:, [1, 3]], boxes[:, [1, 3]])
        assert np.array_equal(out['gt_bboxes'], boxes)  # the main boxes do not move
        shifts.add(float(dx))
    assert shifts == {-10.0, 10.0}
    packed = PackInputs()(ImageView()(_results()))
    assert packed['inputs']['image_aug'].shape == (3, 48, 64)
    assert packed['inputs']['image'].shape == (3, 48, 64)
    assert packed['data_samples'].gt_bboxes_aug.shape == (3, 4)


def test_flip_swaps_side_words_and_mirrors_everything() -> None:
    flip = CaptionAwareHorizontalFlip(p=1.0)
    res = _results()
    res = ImageView(transforms=[dict(type='ToGray', p=1.0)])(res)
    before = copy.deepcopy(res)
    out = flip(res)
    assert out['flipped'] is True
    assert out['caption'] == 'a red circle to the right of a blue square'
    assert out['gt_word_indices'] == before['gt_word_indices']
    assert len(out['caption'].split()) == len(before['caption'].split())
    assert np.array_equal(out['img'], np.fliplr(before['img']))
    assert np.array_equal(out['img_aug'], np.fliplr(before['img_aug']))
    assert out['img'].flags['C_CONTIGUOUS']
    np.testing.assert_allclose(out['gt_bboxes'], _mirrored(before['gt_bboxes'], 64))
    np.testing.assert_allclose(out['gt_bboxes_aug'], _mirrored(before['gt_bboxes_aug'], 64))
    assert np.array_equal(out['gt_bboxes'][2], [0, 0, 0, 0])
    back = flip(out)  # a second flip restores image, boxes and words
    assert back['flipped'] is False and back['caption'] == before['caption']
    assert np.array_equal(back['img'], before['img'])
    np.testing.assert_allclose(back['gt_bboxes'], before['gt_bboxes'])


@pytest.mark.parametrize(
    'text, expected',
    [
        ('Left of the RIGHT dog', 'Right of the LEFT dog'),
        ('the leftmost cup, right-hand side', 'the rightmost cup, left-hand side'),
        ('a bright copyright sign on the left.', 'a bright copyright sign on the right.'),
    ],
)
def test_flip_swap_text(text: str, expected: str) -> None:
    flip = CaptionAwareHorizontalFlip()
    assert flip.names_side(text)
    assert flip.swap_text(text) == expected


def test_flip_skip_mode_and_captions_without_sides() -> None:
    skip = CaptionAwareHorizontalFlip(p=1.0, mode='skip')
    res = _results()
    before = copy.deepcopy(res)
    out = skip(res)
    assert out['flipped'] is False and out['caption'] == before['caption']
    assert np.array_equal(out['img'], before['img'])
    assert np.array_equal(out['gt_bboxes'], before['gt_bboxes'])
    for mode in ('skip', 'swap'):  # no side word: flipped, caption unchanged
        caption = 'a bright red circle above a blue square'
        res = _results(caption)
        out = CaptionAwareHorizontalFlip(p=1.0, mode=mode)(res)
        assert out['flipped'] is True and out['caption'] == caption
        assert np.array_equal(out['img'], np.fliplr(_results()['img']))
    never = CaptionAwareHorizontalFlip(p=0.0)(_results())
    assert never['flipped'] is False and never['caption'] == _results()['caption']
    assert np.array_equal(never['img'], _results()['img'])
    with pytest.raises(ValueError, match='mode'):
        CaptionAwareHorizontalFlip(mode='mirror')


def test_flip_lists_of_captions() -> None:
    captions = ['a red circle to the left of a star', 'two shapes', 'a star right of a circle']
    out = CaptionAwareHorizontalFlip(p=1.0)(_results(list(captions)))
    assert out['flipped'] is True
    assert out['caption'] == [
        'a red circle to the right of a star',
        'two shapes',
        'a star left of a circle',
    ]
    out = CaptionAwareHorizontalFlip(p=1.0, mode='skip')(_results(list(captions)))
    assert out['flipped'] is False and out['caption'] == captions
    out = CaptionAwareHorizontalFlip(p=1.0, mode='skip')(_results(['two shapes', 'a star']))
    assert out['flipped'] is True


def test_flip_rate_and_reproducibility() -> None:
    flip = CaptionAwareHorizontalFlip(p=0.5)
    np.random.seed(1)
    flags = [flip(_results())['flipped'] for _ in range(400)]
    assert 150 < sum(flags) < 250
    np.random.seed(1)
    assert [flip(_results())['flipped'] for _ in range(400)] == flags


def _subject_and_reference(caption: str, named: list[list[int]]) -> tuple[int, int, str] | None:
    words = caption.split()
    for side in ('left', 'right'):
        if side in words:
            at = words.index(side)
            start, end = at - 2, at + 1  # "to the <side> of"
            subject = max(
                (k for k, ws in enumerate(named) if ws and max(ws) < start),
                key=lambda k: max(named[k]),
            )
            reference = min(
                (k for k, ws in enumerate(named) if ws and min(ws) > end),
                key=lambda k: min(named[k]),
            )
            return subject, reference, side
    return None


@pytest.mark.parametrize('p', [0.0, 1.0])
def test_flipped_synthetic_captions_stay_true(p: float) -> None:
    ds = SyntheticShapesDataset(
        num_images=40,
        image_size=64,
        num_objects=(2, 3),
        pipeline=[dict(type='CaptionAwareHorizontalFlip', p=p), dict(type='PackInputs')],
    )
    checked = 0
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        found = _subject_and_reference(sample.caption, sample.gt_word_indices)
        if found is None:
            continue
        subject, reference, side = found
        boxes = sample.gt_bboxes.numpy()
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        assert sample.flipped is bool(p)
        assert (cx[subject] < cx[reference]) == (side == 'left'), (sample.caption, boxes)
        checked += 1
    assert checked >= 20
