"""The embedded synthetic dataset: determinism, boxes, grounding words and the sample contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from vlreg.datasets import SyntheticShapesDataset
from vlreg.datasets.synthetic import COLORS, SHAPES, SIZES

TOK = dict(type='SyntheticTokenizer')
PIPELINE = [
    dict(type='Tokenize', tokenizer=TOK),
    dict(type='MaskText', tokenizer=TOK),
    dict(type='PackInputs'),
]


def _raw(ds: SyntheticShapesDataset, idx: int) -> dict:
    """A sample before the pipeline (the dataset has an empty one)."""
    return ds[idx]


def test_same_seed_same_samples_and_other_seed_differs() -> None:
    a = SyntheticShapesDataset(num_images=20, image_size=64, seed=0)
    b = SyntheticShapesDataset(num_images=20, image_size=64, seed=0)
    c = SyntheticShapesDataset(num_images=20, image_size=64, seed=1)
    assert len(a) == 100
    for idx in (0, 7, 99):
        x, y = _raw(a, idx), _raw(b, idx)
        assert np.array_equal(x['img'], y['img']) and x['caption'] == y['caption']
        assert np.array_equal(x['gt_bboxes'], y['gt_bboxes'])
    assert any(not np.array_equal(_raw(a, i)['img'], _raw(c, i)['img']) for i in range(0, 100, 5))
    assert [_raw(a, i)['caption'] for i in range(0, 100, 5)] != [
        _raw(c, i)['caption'] for i in range(0, 100, 5)
    ]
    # the image does not depend on the global RNG nor on the order of access
    np.random.seed(99)
    assert np.array_equal(_raw(a, 42)['img'], _raw(b, 42)['img'])


def test_boxes_inside_image_and_words_name_the_objects() -> None:
    ds = SyntheticShapesDataset(num_images=60, image_size=64, seed=3)
    counts = set()
    for idx in range(0, len(ds), 3):
        s = _raw(ds, idx)
        img, boxes, objects = s['img'], s['gt_bboxes'], s['objects']
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert 1 <= len(objects) <= 3 and boxes.shape == (len(objects), 4)
        counts.add(len(objects))
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 64)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        words = s['caption'].split()
        assert len(s['gt_word_indices']) == len(objects)
        for obj, idxs, box in zip(objects, s['gt_word_indices'], boxes):
            assert obj['shape'] in SHAPES and obj['color'] in COLORS and obj['size'] in SIZES
            named = [words[i] for i in idxs]
            assert named[-1] == obj['shape'] and obj['color'] in named
            assert set(named) <= {obj['shape'], obj['color'], obj['size']}
            # the box holds the object: its centre pixel has the object's colour (+- jitter)
            cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
            assert np.abs(img[cy, cx].astype(int) - COLORS[obj['color']]).max() <= 12
        for a in range(len(boxes)):  # objects do not overlap
            for b in range(a + 1, len(boxes)):
                ix = min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0])
                iy = min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1])
                assert ix <= 0 or iy <= 0
    assert counts == {1, 2, 3}


def test_relations_follow_object_positions() -> None:
    ds = SyntheticShapesDataset(num_images=40, image_size=64, seed=0, num_objects=(2, 2))
    checked = 0
    for idx in range(len(ds)):
        s = _raw(ds, idx)
        words = s['caption'].split()
        if 'left' not in words and 'right' not in words:
            continue
        # "X to the left of Y": the object named first is left of the one named second
        first, second = sorted(range(2), key=lambda k: s['gt_word_indices'][k][0])
        cx = (s['gt_bboxes'][:, 0] + s['gt_bboxes'][:, 2]) / 2
        assert (cx[first] < cx[second]) == ('left' in words)
        checked += 1
    assert checked >= 10


def test_captions_are_varied_and_discriminative() -> None:
    ds = SyntheticShapesDataset(
        num_images=200, image_size=64, seed=0, num_objects=(2, 2), mode='retrieval'
    )
    caps = ds.captions
    assert len(caps) == 1000 and len(set(caps)) > 900
    first_words = {c.split()[0] + ' ' + c.split()[1] for c in caps}
    assert len(first_words) > 10  # several templates in use
    for img_caps in (caps[i * 5 : (i + 1) * 5] for i in range(200)):
        assert len(set(img_caps)) == 5


def test_pretrain_contract() -> None:
    ds = SyntheticShapesDataset(num_images=4, image_size=48, pipeline=PIPELINE)
    out = ds[5]
    inputs, sample = out['inputs'], out['data_samples']
    assert set(inputs) == {'image', 'input_ids', 'mlm_input_ids', 'mlm_labels'}
    assert inputs['image'].dtype == torch.uint8 and inputs['image'].shape == (3, 48, 48)
    for key in ('input_ids', 'mlm_input_ids', 'mlm_labels'):
        assert inputs[key].dtype == torch.int64 and inputs[key].shape == inputs['input_ids'].shape
    assert inputs['input_ids'][0].item() == 2  # [CLS] first
    assert sample.sample_idx == 5 and sample.image_id == 1 and isinstance(sample.caption, str)
    assert sample.img_path == 'synthetic://seed0/1'
    assert sample.gt_bboxes.dtype == torch.float32 and sample.gt_bboxes.shape[1] == 4
    again = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive a pickled copy
    assert torch.equal(again[5]['inputs']['image'], inputs['image'])


def test_retrieval_contract() -> None:
    ds = SyntheticShapesDataset(
        num_images=6, image_size=48, mode='retrieval', pipeline=PIPELINE[:1] + PIPELINE[2:]
    )
    assert len(ds) == 6
    assert ds.img2txt == [list(range(5 * i, 5 * i + 5)) for i in range(6)]
    assert ds.txt2img == [i // 5 for i in range(30)]
    out = ds[2]
    sample = out['data_samples']
    assert sample.text_index == [10, 11, 12, 13, 14]
    assert sample.captions == ds.captions[10:15]
    assert out['inputs']['caption_ids'].shape[0] == 5
    assert len(sample.gt_word_indices) == 5
    with pytest.raises(AttributeError, match='retrieval mode'):
        SyntheticShapesDataset(num_images=2).img2txt
