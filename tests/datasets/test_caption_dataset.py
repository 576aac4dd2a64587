"""ALBEF-format caption / retrieval datasets: real Flickr8k data and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import minilm_path, shared_path
from vlreg.datasets import BadSampleError, CaptionDataset, RetrievalDataset
from vlreg.registry import DATASETS

LOAD = [dict(type='LoadImage'), dict(type='Resize', size=32), dict(type='PackInputs')]


def _write_images(root: Path, names: list[str]) -> None:
    (root / 'images').mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        arr = np.full((20, 30, 3), 40 * i, np.uint8)
        Image.fromarray(arr).save(root / 'images' / name)


def _write_json(path: Path, entries: list) -> Path:
    path.write_text(json.dumps(entries))
    return path


# --- real data ---------------------------------------------------------------------------------
def test_flickr_pretraining_samples() -> None:
    root = shared_path('flickr8k_1k')
    tok = dict(type='BertTokenizer', path=minilm_path())
    pipeline = [
        dict(type='LoadImage'),
        dict(type='RandomResizedCrop', size=64),
        dict(type='HorizontalFlip'),
        dict(type='RandAugment'),
        dict(type='Tokenize', tokenizer=tok),
        dict(type='MaskText', tokenizer=tok),
        dict(type='PackInputs'),
    ]
    ds = DATASETS.build(
        dict(
            type='CaptionDataset', data_root=str(root), ann_file='captions.json', pipeline=pipeline
        )
    )
    assert len(ds) == 5000
    entries = json.loads((root / 'captions.json').read_text())
    np.random.seed(0)
    out = ds[7]
    inputs, sample = out['inputs'], out['data_samples']
    assert set(inputs) == {'image', 'input_ids', 'mlm_input_ids', 'mlm_labels'}
    assert inputs['image'].shape == (3, 64, 64) and inputs['image'].dtype == torch.uint8
    assert inputs['input_ids'].dtype == torch.int64 and inputs['input_ids'][0] == 101
    assert 102 not in inputs['input_ids'].tolist() and len(inputs['input_ids']) <= 25
    assert inputs['mlm_labels'].shape == inputs['input_ids'].shape
    assert sample.sample_idx == 7 and sample.image_id == 1 and sample.ann_index == 1
    assert sample.ori_image_id == entries[1]['image_id']
    assert sample.img_path == str(root / entries[1]['image'])
    assert sample.caption == entries[1]['caption'][2].lower().rstrip(' .').replace('-', ' ')
    assert all(ds.get_data_info(i)['image_id'] == i // 5 for i in range(0, 5000, 499))


def test_flickr_retrieval_samples() -> None:
    root = shared_path('flickr8k_1k')
    tok = dict(type='BertTokenizer', path=minilm_path())
    ds = RetrievalDataset(
        data_root=str(root),
        ann_file='captions.json',
        pipeline=LOAD[:2] + [dict(type='Tokenize', tokenizer=tok), dict(type='PackInputs')],
    )
    assert len(ds) == 1000 and len(ds.captions) == 5000
    assert ds.img2txt[3] == [15, 16, 17, 18, 19] and ds.txt2img[17] == 3
    out = ds[3]
    sample = out['data_samples']
    assert sample.text_index == [15, 16, 17, 18, 19]
    assert sample.captions == ds.captions[15:20]
    ids = out['inputs']['caption_ids']
    assert ids.dtype == torch.int64 and ids.shape[0] == 5 and torch.all(ids[:, 0] == 101)
    sub = ds.get_subset([3, 5])
    assert sub.img2txt == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert sub.captions[:5] == ds.captions[15:20]


# --- formats and bad input -----------------------------------------------------------------------
def test_jsonl_and_flattening(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png', 'b.png'])
    lines = [
        {'image': 'images/a.png', 'caption': ['One.', 'Two!']},
        {'image': 'images/b.png', 'caption': 'Three', 'image_id': 42},
        {'image': 'images/a.png', 'caption': 'Four'},
    ]
    (tmp_path / 'ann.jsonl').write_text('\n'.join(json.dumps(x) for x in lines) + '\n\n')
    ds = CaptionDataset('ann.jsonl', data_root=str(tmp_path), pipeline=LOAD)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['caption'] for i in infos] == ['one', 'two', 'three', 'four']
    assert [i['image_id'] for i in infos] == [0, 0, 1, 0]
    assert [i['ori_image_id'] for i in infos] == [
        'images/a.png',
        'images/a.png',
        42,
        'images/a.png',
    ]
    ret = RetrievalDataset('ann.jsonl', data_root=str(tmp_path), pipeline=LOAD)
    assert len(ret) == 2 and ret.img2txt == [[0, 1, 2], [3]] and ret.captions[2] == 'four'


def test_image_root_and_raw_captions(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png'])
    _write_json(tmp_path / 'ann.json', [{'image': 'a.png', 'caption': 'Raw, Text.'}])
    ds = CaptionDataset(
        'ann.json', data_root=str(tmp_path), image_root='images', max_words=None, pipeline=LOAD
    )
    assert ds.get_data_info(0)['caption'] == 'Raw, Text.'
    assert ds[0]['data_samples'].img_path == str(tmp_path / 'images' / 'a.png')


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.json'
    bad.write_text('[\n{"image": "a.jpg", "caption": "x"},\n{"image": }\n]')
    with pytest.raises(ValueError, match=r'bad\.json.*line 3'):
        CaptionDataset(str(bad))
    bad_lines = tmp_path / 'bad.jsonl'
    bad_lines.write_text('{"image": "a.jpg", "caption": "x"}\n{"image": "b.jpg", "caption"\n')
    with pytest.raises(ValueError, match=r'bad\.jsonl.*line 2'):
        CaptionDataset(str(bad_lines))
    with pytest.raises(FileNotFoundError, match='nope.json'):
        CaptionDataset(str(tmp_path / 'nope.json'))


@pytest.mark.parametrize(
    'entry, message',
    [
        ({'caption': 'x'}, r"entry 1: missing key 'image'"),
        ({'image': 'images/a.png'}, r"entry 1: missing key 'caption'"),
        ({'image': 'images/a.png', 'caption': ''}, r'entry 1: caption 0 is empty'),
        ({'image': 'images/a.png', 'caption': ['ok', '  ']}, r'entry 1: caption 1 is empty'),
        ({'image': 'images/a.png', 'caption': '?!'}, r'entry 1: caption 0 is empty after cleaning'),
        ({'image': 'images/a.png', 'caption': []}, r'entry 1: "caption" must be'),
        (
            {'image': 'images/a.png', 'caption': 'x', 'image_id': [1]},
            r'entry 1: "image_id" must be',
        ),
        ('just a string', r'entry 1: expected an object'),
    ],
)
def test_bad_entry_names_file_and_entry(tmp_path: Path, entry: object, message: str) -> None:
    ann = _write_json(tmp_path / 'ann.json', [{'image': 'images/a.png', 'caption': 'fine'}, entry])
    with pytest.raises(ValueError, match=f'ann.json.*{message}'):
        CaptionDataset(str(ann))


def test_missing_and_corrupt_images_name_path_and_entry(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png', 'good.jpg'])
    (tmp_path / 'images' / 'corrupt.jpg').write_bytes(b'this is not an image')
    data = (tmp_path / 'images' / 'good.jpg').read_bytes()
    (tmp_path / 'images' / 'truncated.jpg').write_bytes(data[: len(data) // 2])
    ann = _write_json(
        tmp_path / 'ann.json',
        [
            {'image': 'images/a.png', 'caption': 'fine'},
            {'image': 'images/missing.jpg', 'caption': 'gone'},
            {'image': 'images/corrupt.jpg', 'caption': 'broken'},
            {'image': 'images/truncated.jpg', 'caption': 'cut'},
        ],
    )
    ds = CaptionDataset(str(ann), data_root=str(tmp_path), pipeline=LOAD)
    assert ds[0]['inputs']['image'].shape == (3, 32, 32)
    with pytest.raises(BadSampleError, match=r"missing\.jpg' not found.*entry 1 of .*ann\.json"):
        ds[1]
    with pytest.raises(BadSampleError, match=r'cannot decode image .*corrupt\.jpg.*entry 2 of'):
        ds[2]
    with pytest.raises(BadSampleError, match=r'cannot decode image .*truncated\.jpg.*entry 3 of'):
        ds[3]


def test_skip_mode_drops_bad_entries_with_logged_counts(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png', 'b.png'])
    ann = _write_json(
        tmp_path / 'ann.json',
        [
            {'image': 'images/a.png', 'caption': ['good one', '', 'good two']},
            {'caption': 'no image'},
            {'image': 'images/b.png'},
            {'image': 'images/b.png', 'caption': 'good three'},
        ],
    )
    with mock.patch('vlreg.datasets.caption_dataset.print_log') as log:
        ds = CaptionDataset(str(ann), data_root=str(tmp_path), skip_bad_samples=True, pipeline=LOAD)
    assert [ds.get_data_info(i)['caption'] for i in range(len(ds))] == [
        'good one',
        'good two',
        'good three',
    ]
    assert (ds.num_bad_entries, ds.num_bad_captions) == (2, 1)
    message = log.call_args.args[0]
    assert 'dropped 2 bad annotation entries and 1 bad captions' in message
    assert 'entry 1' in message and 'entry 2' in message and 'ann.json' in message


def test_skip_mode_tries_the_next_sample_and_counts(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png', 'c.png'])
    ann = _write_json(
        tmp_path / 'ann.json',
        [
            {'image': 'images/a.png', 'caption': 'first'},
            {'image': 'images/missing.png', 'caption': 'second'},
            {'image': 'images/c.png', 'caption': 'third'},
        ],
    )
    ds = CaptionDataset(str(ann), data_root=str(tmp_path), skip_bad_samples=True, pipeline=LOAD)
    with mock.patch('vlreg.datasets.base.print_log') as log:
        out = ds[1]
    assert out['data_samples'].sample_idx == 2 and out['data_samples'].caption == 'third'
    assert ds.num_skipped == 1
    assert 'missing.png' in log.call_args.args[0] and '1 skipped' in log.call_args.args[0]


def test_skip_mode_skips_captions_emptied_by_the_pipeline(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png', 'c.png'])
    ann = _write_json(
        tmp_path / 'ann.json',
        [
            {
                'image': 'images/a.png',
                'caption': '...',
            },  # kept raw (max_words=None), empty if cleaned
            {'image': 'images/c.png', 'caption': 'third'},
        ],
    )
    pipeline = [dict(type='CleanCaption')] + LOAD
    strict = CaptionDataset(str(ann), data_root=str(tmp_path), max_words=None, pipeline=pipeline)
    with pytest.raises(
        BadSampleError, match=r'sample 0 \(entry 0 of .*ann\.json.*empty after cleaning'
    ):
        strict[0]
    ds = CaptionDataset(
        str(ann), data_root=str(tmp_path), max_words=None, pipeline=pipeline, skip_bad_samples=True
    )
    with mock.patch('vlreg.datasets.base.print_log'):
        assert ds[0]['data_samples'].caption == 'third'
    assert ds.num_skipped == 1
    all_bad = _write_json(
        tmp_path / 'all_bad.json', [{'image': 'images/a.png', 'caption': '?'}] * 3
    )
    ds = CaptionDataset(
        str(all_bad),
        data_root=str(tmp_path),
        max_words=None,
        pipeline=pipeline,
        skip_bad_samples=True,
        max_refetch=2,
    )
    with (
        mock.patch('vlreg.datasets.base.print_log'),
        pytest.raises(
            RuntimeError,
            match=r"every sample of '.*all_bad\.json' is unreadable "
            r'\(3 samples.*first errors:\n  .*sample 0 .*empty after cleaning',
        ),
    ):
        ds[0]
    assert ds.num_skipped == 3


def test_retrieval_never_replaces_a_bad_image(tmp_path: Path) -> None:
    _write_images(tmp_path, ['a.png', 'c.png'])
    (tmp_path / 'images' / 'corrupt.png').write_bytes(b'garbage')
    ann = _write_json(
        tmp_path / 'ann.json',
        [
            {'image': 'images/a.png', 'caption': ['a1', 'a2']},
            {'image': 'images/corrupt.png', 'caption': ['b1']},
            {'image': 'images/c.png', 'caption': ['c1', 'c2']},
        ],
    )
    strict = RetrievalDataset(str(ann), data_root=str(tmp_path), pipeline=LOAD)
    assert strict.img2txt == [[0, 1], [2], [3, 4]]
    with pytest.raises(BadSampleError, match=r'corrupt\.png'):
        strict[1]
    with mock.patch('vlreg.datasets.caption_dataset.print_log') as log:
        lenient = RetrievalDataset(
            str(ann), data_root=str(tmp_path), pipeline=LOAD, skip_bad_samples=True
        )
    assert 'corrupt.png' in log.call_args.args[0] and lenient.num_bad_entries == 1
    assert lenient.img2txt == [[0, 1], [2, 3]] and lenient.captions == ['a1', 'a2', 'c1', 'c2']
    assert lenient[1]['data_samples'].text_index == [2, 3]
    (tmp_path / 'images' / 'c.png').write_bytes(b'broken after loading')
    with (
        mock.patch('vlreg.datasets.base.print_log'),
        pytest.raises(BadSampleError, match='corrupting the retrieval ranking'),
    ):
        lenient[1]


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P'])
def test_load_image_gives_rgb_uint8(tmp_path: Path, mode: str) -> None:
    from vlreg.datasets import LoadImage

    path = tmp_path / f'img_{mode}.png'
    Image.new(mode, (7, 5), color=77 if mode in ('L', 'P') else (10, 20, 30, 128)).save(path)
    out = LoadImage()({'img_path': str(path), 'sample_idx': 0})
    expected = Image.open(path).convert('RGB')
    assert out['img'].shape == (5, 7, 3) and out['img'].dtype == np.uint8
    assert np.array_equal(out['img'], np.asarray(expected)) and out['ori_shape'] == (5, 7)


# --- sampling: one sample per caption (default) or ALBEF's random caption per entry -------------
def test_sample_per_caption_and_per_entry(tmp_path: Path) -> None:
    import random

    ann = _write_json(
        tmp_path / 'ann.json',
        [
            {'image': 'a.png', 'caption': ['one dog', 'two dogs', 'three dogs'], 'image_id': 'a'},
            {'image': 'b.png', 'caption': 'a cat'},
            {'image': 'c.png', 'caption': ['red car', 'blue car'], 'image_id': 'c'},
        ],
    )
    per_caption = CaptionDataset(ann_file=str(ann))
    assert len(per_caption) == 6
    assert [per_caption.get_data_info(i)['caption'] for i in range(6)] == [
        'one dog',
        'two dogs',
        'three dogs',
        'a cat',
        'red car',
        'blue car',
    ]
    assert [per_caption.get_data_info(i)['image_id'] for i in range(6)] == [0, 0, 0, 1, 2, 2]
    per_entry = CaptionDataset(ann_file=str(ann), sample_per='entry')
    assert len(per_entry) == 3
    random.seed(0)
    draws = [per_entry.get_data_info(0)['caption'] for _ in range(60)]
    assert set(draws) == {'one dog', 'two dogs', 'three dogs'}  # every caption, only its own
    assert max(draws.count(c) for c in set(draws)) < 35  # drawn uniformly, not always the first
    random.seed(0)  # Python's random (ALBEF's random.choice): reproducible from its seed
    assert [per_entry.get_data_info(0)['caption'] for _ in range(60)] == draws
    assert {per_entry.get_data_info(1)['caption'] for _ in range(10)} == {'a cat'}
    info = per_entry.get_data_info(2)
    assert info['caption'] in {'red car', 'blue car'} and info['image_id'] == 2
    assert 'captions' not in info and info['ann_index'] == 2
    with pytest.raises(ValueError, match='sample_per'):
        CaptionDataset(ann_file=str(ann), sample_per='image')
    with pytest.raises(ValueError, match='sample_per'):
        RetrievalDataset(ann_file=str(ann), sample_per='entry')


def test_flickr_per_entry_sampling() -> None:
    root = shared_path('flickr8k_1k')
    ds = CaptionDataset(
        data_root=str(root), ann_file='captions.json', sample_per='entry', indices=800
    )
    entries = json.loads((root / 'captions.json').read_text())
    assert len(ds) == 800
    info = ds.get_data_info(3)
    assert info['ori_image_id'] == entries[3]['image_id'] and info['image_id'] == 3
    cleaned = {c.lower().rstrip(' .').replace('-', ' ') for c in entries[3]['caption']}
    assert {ds.get_data_info(3)['caption'] for _ in range(40)} <= cleaned
