"""VLDataPreprocessor against a direct computation of padding and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from vlreg.datasets import PackInputs
from vlreg.models.data_preprocessor import VLDataPreprocessor
from vlreg.registry import MODELS

MEAN = np.array([0.48145466, 0.4578275, 0.40821073]) * 255
STD = np.array([0.26862954, 0.26130258, 0.27577711]) * 255


def _sample(seed: int, n_ids: int, captions: list[list[int]] | None = None) -> dict:
    rng = np.random.default_rng(seed)
    results = {
        'img': rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8),
        'sample_idx': seed,
        'image_id': seed,
        'caption': 'x',
    }
    ids = np.concatenate([[101], rng.integers(1000, 2000, size=n_ids - 1)])
    results['input_ids'] = ids
    results['mlm_input_ids'] = ids.copy()
    results['mlm_labels'] = np.where(np.arange(n_ids) == 1, ids, -100)
    if captions is not None:
        results['caption_ids'] = [np.asarray(c) for c in captions]
    return PackInputs()(results)


def test_registered_with_albef_defaults() -> None:
    pre = MODELS.build(dict(type='VLDataPreprocessor'))
    assert isinstance(pre, VLDataPreprocessor)
    np.testing.assert_allclose(pre.mean.flatten().numpy(), MEAN, rtol=1e-6)
    np.testing.assert_allclose(pre.std.flatten().numpy(), STD, rtol=1e-6)


def test_images_normalised_and_text_padded() -> None:
    samples = [_sample(0, 5), _sample(1, 3), _sample(2, 7)]
    out = VLDataPreprocessor()(pseudo_collate(samples))
    inputs = out['inputs']
    images = np.stack([s['inputs']['image'].numpy() for s in samples]).astype(np.float64)
    expected = (images - MEAN[None, :, None, None]) / STD[None, :, None, None]
    assert inputs['image'].dtype == torch.float32 and inputs['image'].shape == (3, 3, 8, 6)
    np.testing.assert_allclose(inputs['image'].numpy(), expected, atol=1e-5)
    lengths = [5, 3, 7]
    ids = np.zeros((3, 7), np.int64)
    labels = np.full((3, 7), -100, np.int64)
    mask = np.zeros((3, 7), np.int64)
    for i, (s, n) in enumerate(zip(samples, lengths)):
        ids[i, :n] = s['inputs']['input_ids'].numpy()
        labels[i, :n] = s['inputs']['mlm_labels'].numpy()
        mask[i, :n] = 1
    assert np.array_equal(inputs['input_ids'].numpy(), ids)
    assert np.array_equal(inputs['mlm_input_ids'].numpy(), ids)
    assert np.array_equal(inputs['mlm_labels'].numpy(), labels)
    assert np.array_equal(inputs['attention_mask'].numpy(), mask)
    assert inputs['attention_mask'].dtype == torch.int64
    assert [d.sample_idx for d in out['data_samples']] == [0, 1, 2]


def test_custom_pad_id() -> None:
    out = VLDataPreprocessor(pad_token_id=7)(pseudo_collate([_sample(0, 2), _sample(1, 4)]))
    assert out['inputs']['input_ids'][0, 2:].tolist() == [7, 7]
    assert out['inputs']['attention_mask'][0].tolist() == [1, 1, 0, 0]


def test_caption_ids_flattened_with_owner_index() -> None:
    caps0 = [[101, 5, 6], [101, 7]]
    caps1 = [[101, 8, 9, 10, 11], [101, 12], [101, 13, 14]]
    batch = pseudo_collate([_sample(0, 3, caps0), _sample(1, 3, caps1)])
    inputs = VLDataPreprocessor()(batch)['inputs']
    rows = caps0 + caps1
    expected = np.zeros((5, 5), np.int64)
    for i, r in enumerate(rows):
        expected[i, : len(r)] = r
    assert np.array_equal(inputs['caption_ids'].numpy(), expected)
    mask = (expected != 0).astype(np.int64)
    assert np.array_equal(inputs['caption_attention_mask'].numpy(), mask)
    assert inputs['caption_image_index'].tolist() == [0, 0, 1, 1, 1]
    # a hand-made batch with the per-sample list form of the contract gives the same result
    listed = {
        'inputs': {
            'caption_ids': [[torch.tensor(r) for r in caps0], [torch.tensor(r) for r in caps1]]
        }
    }
    again = VLDataPreprocessor()(listed)['inputs']
    assert torch.equal(again['caption_ids'], inputs['caption_ids'])
    assert torch.equal(again['caption_image_index'], inputs['caption_image_index'])


def test_dataloader_batch_from_synthetic_retrieval_set() -> None:
    from torch.utils.data import DataLoader

    from vlreg.datasets import SyntheticShapesDataset

    tok = dict(type='SyntheticTokenizer')
    ds = SyntheticShapesDataset(
        num_images=6,
        image_size=32,
        mode='retrieval',
        captions_per_image=3,
        pipeline=[dict(type='Tokenize', tokenizer=tok), dict(type='PackInputs')],
    )
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=pseudo_collate)))
    out = VLDataPreprocessor()(batch)
    inputs, samples = out['inputs'], out['data_samples']
    assert inputs['image'].shape == (4, 3, 32, 32)
    assert inputs['caption_ids'].shape[0] == 12
    assert inputs['caption_image_index'].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    flat = [t for s in samples for t in s.text_index]
    assert (
        flat == list(range(12))
        and [ds.txt2img[t] for t in flat] == inputs['caption_image_index'].tolist()
    )
    lengths = inputs['caption_attention_mask'].sum(1)
    tok_obj = ds.pipeline.transforms[0].tokenizer
    for row, (ids, n) in enumerate(zip(inputs['caption_ids'], lengths)):
        caption = ds.captions[row]
        assert ids[:n].tolist() == tok_obj.encode(caption, 25)


def _annotated(seed: int, n_ids: int) -> dict:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    results = {
        'img': img,
        'img_aug': 255 - img,
        'sample_idx': seed,
        'caption': 'x',
        'input_ids': np.concatenate([[101], rng.integers(1000, 2000, size=n_ids - 1)]),
        'word_ids': np.arange(-1, n_ids - 1),
        'content_mask': np.ones(n_ids, np.int64),
    }
    results['content_mask'][0] = 0
    return PackInputs()(results)


def test_word_keys_padded_with_their_own_values() -> None:
    samples = [_annotated(0, 4), _annotated(1, 2)]
    assert set(samples[0]['inputs']) == {
        'image',
        'image_aug',
        'input_ids',
        'word_ids',
        'content_mask',
    }
    inputs = VLDataPreprocessor()(pseudo_collate(samples))['inputs']
    assert inputs['word_ids'].tolist() == [[-1, 0, 1, 2], [-1, 0, -1, -1]]
    assert inputs['content_mask'].tolist() == [[0, 1, 1, 1], [0, 1, 0, 0]]
    assert inputs['input_ids'][1, 2:].tolist() == [0, 0]
    assert inputs['attention_mask'].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    aug = np.stack([s['inputs']['image_aug'].numpy() for s in samples]).astype(np.float64)
    np.testing.assert_allclose(
        inputs['image_aug'].numpy(),
        (aug - MEAN[None, :, None, None]) / STD[None, :, None, None],
        atol=1e-5,
    )
    custom = VLDataPreprocessor(pad_token_id=7, pad_values=dict(word_ids=-5))
    inputs = custom(pseudo_collate(samples))['inputs']
    assert inputs['word_ids'][1, 2:].tolist() == [-5, -5]
    assert inputs['input_ids'][1, 2:].tolist() == [7, 7]


def test_pad_value_rule() -> None:
    pre = VLDataPreprocessor(pad_token_id=3, pad_values=dict(tags=9, mlm_input_ids=None))
    assert [
        pre.pad_value(k)
        for k in (
            'input_ids',
            'mlm_input_ids',
            'caption_ids',
            'mlm_labels',
            'word_ids',
            'caption_word_ids',
            'content_mask',
            'caption_content_mask',
        )
    ] == [3, 3, 3, -100, -1, -1, 0, 0]
    assert [
        pre.pad_value(k)
        for k in ('tags', 'title_word_ids', 'title_labels', 'title_mask', 'title_ids')
    ] == [9, -1, -100, 0, 3]


def test_caption_word_keys_flattened_like_caption_ids() -> None:
    from vlreg.datasets import AnnotateWords, SyntheticTokenizer, Tokenize

    tok = SyntheticTokenizer()
    pipeline = [Tokenize(tok), AnnotateWords(tok), PackInputs()]
    samples = []
    for seed, captions in enumerate(
        [
            ['a red circle', 'a blue star to the left of a cross'],
            ['two shapes', 'one star', 'a green square'],
        ]
    ):
        results = {'img': np.zeros((8, 6, 3), np.uint8), 'sample_idx': seed, 'caption': captions}
        for t in pipeline:
            results = t(results)
        samples.append(results)
    assert samples[1]['inputs']['caption_word_ids'][0].tolist() == [-1, 0, 1, -1]
    inputs = VLDataPreprocessor()(pseudo_collate(samples))['inputs']
    ids, word_ids = inputs['caption_ids'], inputs['caption_word_ids']
    content, mask = inputs['caption_content_mask'], inputs['caption_attention_mask']
    assert ids.shape == word_ids.shape == content.shape == mask.shape == (5, 10)
    assert inputs['caption_image_index'].tolist() == [0, 0, 1, 1, 1]
    assert word_ids[0].tolist() == [-1, 0, 1, 2] + [-1] * 6
    assert word_ids[2].tolist() == [-1, 0, 1] + [-1] * 7
    assert torch.equal(word_ids >= 0, mask.bool() & (torch.arange(10) > 0))
    assert content[0].tolist() == [0, 0, 1, 1] + [0] * 6
    assert not content[~mask.bool()].any()
    bad = pseudo_collate(samples)
    bad['inputs']['caption_word_ids'] = bad['inputs']['caption_word_ids'][::-1]
    with pytest.raises(ValueError, match='one row per caption'):
        VLDataPreprocessor()(bad)


def test_dataloader_batch_with_words_and_views() -> None:
    from torch.utils.data import DataLoader

    from vlreg.datasets import SyntheticShapesDataset

    tok = dict(type='SyntheticTokenizer')
    ds = SyntheticShapesDataset(
        num_images=4,
        image_size=32,
        mode='pretrain',
        pipeline=[
            dict(type='CaptionAwareHorizontalFlip'),
            dict(type='Tokenize', tokenizer=tok),
            dict(type='AnnotateWords', tokenizer=tok),
            dict(type='MaskText', tokenizer=tok),
            dict(type='ImageView'),
            dict(type='PackInputs'),
        ],
    )
    batch = next(iter(DataLoader(ds, batch_size=6, collate_fn=pseudo_collate)))
    inputs = VLDataPreprocessor()(batch)['inputs']
    assert inputs['image'].shape == inputs['image_aug'].shape == (6, 3, 32, 32)
    shape = inputs['input_ids'].shape
    for key in ('mlm_input_ids', 'mlm_labels', 'word_ids', 'content_mask', 'attention_mask'):
        assert inputs[key].shape == shape and inputs[key].dtype == torch.int64, key
    real = inputs['attention_mask'].bool()
    assert (inputs['word_ids'][~real] == -1).all() and (inputs['content_mask'][~real] == 0).all()
    assert (inputs['word_ids'][:, 0] == -1).all()
    assert (inputs['word_ids'][:, 1:][real[:, 1:]] >= 0).all()
    assert (inputs['content_mask'].sum(1) > 0).all()  # every synthetic caption names a shape
