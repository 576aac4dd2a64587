"""Downstream datasets (VQA v2, NLVR2, SNLI-VE, grounding): real sample files and bad input."""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import shared_path
from vlreg.datasets.downstream import (
    GROUNDING_META_KEYS,
    NLVR2_META_KEYS,
    SNLIVE_META_KEYS,
    VQA_META_KEYS,
    GroundingDataset,
    NLVR2Dataset,
    SNLIVEDataset,
    VQADataset,
    read_records,
)
from vlreg.datasets.transforms.pair import ApplyToImagePair, LoadImagePair
from vlreg.registry import DATASETS, TRANSFORMS


def _json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _lines(path: Path, entries: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(json.dumps(e) for e in entries) + '\n')
    return path


def _image(path: Path, size: tuple[int, int] = (12, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(path)


def test_registered() -> None:
    for name in ('VQADataset', 'NLVR2Dataset', 'SNLIVEDataset', 'GroundingDataset'):
        assert DATASETS.get(name).__name__ == name
    assert TRANSFORMS.get('LoadImagePair') is LoadImagePair
    assert TRANSFORMS.get('ApplyToImagePair') is ApplyToImagePair


# --- VQA v2 ---------------------------------------------------------------------------------------
def test_vqa_official_sample_files() -> None:
    root = shared_path('vl_task_samples')
    pipeline = [
        dict(type='LoadImage'),
        dict(type='Resize', size=32),
        dict(type='PackInputs', meta_keys=VQA_META_KEYS),
    ]
    ds = DATASETS.build(
        dict(
            type='VQADataset',
            data_root=str(root),
            ques_file='vqav2/questions.json',
            ann_file='vqav2/annotations.json',
            image_root='images/vqav2',
            pipeline=pipeline,
        )
    )
    assert len(ds) == 3
    infos = [ds.get_data_info(i) for i in range(3)]
    assert [i['question_id'] for i in infos] == [458752000, 458752001, 458752002]
    assert infos[1]['question'] == infos[1]['caption'] == 'What position is this man playing?'
    # data_subtype "train2014" -> COCO_train2014_<12-digit id>.jpg, which the folder holds
    assert all(
        i['img_path'] == str(root / 'images/vqav2/COCO_train2014_000000458752.jpg') for i in infos
    )
    assert all(os.path.isfile(i['img_path']) for i in infos)
    assert {i['ori_image_id'] for i in infos} == {458752} and {i['image_id'] for i in infos} == {0}
    assert all(len(i['answers']) == 10 for i in infos)
    # ALBEF's weights: count / 10 per distinct answer
    assert infos[0]['weighted_answers'] == ['net', 'netting', 'mesh', 'pitcher', 'orange']
    assert infos[0]['answer_weights'] == pytest.approx([0.6, 0.1, 0.1, 0.1, 0.1])
    assert dict(zip(infos[1]['weighted_answers'], infos[1]['answer_weights'])) == pytest.approx(
        {'pitcher': 0.9, 'catcher': 0.1}
    )
    assert infos[2]['weighted_answers'] == ['orange'] and infos[2]['answer_weights'] == [1.0]
    # the sample files carry no question / answer types
    assert infos[0]['question_type'] is None and infos[0]['answer_type'] is None
    out = ds[0]
    assert out['inputs']['image'].shape == (3, 32, 32)
    sample = out['data_samples']
    assert sample.question_id == 458752000 and sample.answers == infos[0]['answers']
    assert sample.answer_weights == pytest.approx([0.6, 0.1, 0.1, 0.1, 0.1])


def test_vqa_test_split_without_annotations(tmp_path: Path) -> None:
    root = shared_path('vl_task_samples')
    answer_list = _json(tmp_path / 'answer_list.json', ['net', 'pitcher', 'orange'])
    ds = VQADataset(
        ques_file=str(root / 'vqav2/questions.json'),
        image_root=str(root / 'images/vqav2'),
        answer_list=str(answer_list),
    )
    assert len(ds) == 3
    assert all(ds.get_data_info(i)['answers'] == [] for i in range(3))
    assert ds.get_data_info(0)['answer_weights'] == []
    assert ds.metainfo['answer_list'] == ['net', 'pitcher', 'orange']


def _questions(subtype: str | None, image_ids: list[int]) -> dict:
    data = {
        'questions': [
            {'image_id': i, 'question': f'q{n}?', 'question_id': 10 * i + n}
            for n, i in enumerate(image_ids)
        ]
    }
    if subtype is not None:
        data['data_subtype'] = subtype
    return data


@pytest.mark.parametrize(
    'subtype, file_name',
    [
        ('test-dev2015', 'COCO_test2015_000000000042.jpg'),  # test-dev questions use test images
        ('val2014', 'val2014/COCO_val2014_000000000042.jpg'),
        ('val2014', '000000000042.jpg'),
        ('val2014', '42.jpg'),
        (None, '42.jpg'),
    ],
)
def test_vqa_image_names_are_found(tmp_path: Path, subtype: str | None, file_name: str) -> None:
    _image(tmp_path / 'images' / file_name)
    ques = _json(tmp_path / 'q.json', _questions(subtype, [42, 42]))
    ds = VQADataset(ques_file=str(ques), image_root=str(tmp_path / 'images'))
    assert [ds.get_data_info(i)['img_path'] for i in range(2)] == [
        str(tmp_path / 'images' / file_name)
    ] * 2
    fixed = VQADataset(
        ques_file=str(ques),
        image_root='imgs',
        data_root=str(tmp_path),
        image_name='x_{image_id:06d}.png',
    )
    assert fixed.get_data_info(0)['img_path'] == os.path.join(str(tmp_path), 'imgs', 'x_000042.png')


def test_vqa_albef_format(tmp_path: Path) -> None:
    ques = _json(
        tmp_path / 'vqa_train.json',
        [
            {
                'question_id': 5,
                'question': 'how many?',
                'image': 'train2014/a.jpg',
                'answer': ['2', '2', 'two', '2'],
                'dataset': 'vqa',
            },
            {'question_id': 6, 'question': 'what?', 'image': 'train2014/b.jpg', 'answer': 'cat'},
            {'question_id': 7, 'question': 'who?', 'image': 'train2014/a.jpg'},
        ],
    )
    ds = VQADataset(ques_file=str(ques), image_root='coco', data_root=str(tmp_path))
    infos = [ds.get_data_info(i) for i in range(3)]
    assert infos[0]['img_path'] == os.path.join(str(tmp_path), 'coco', 'train2014/a.jpg')
    assert infos[0]['weighted_answers'] == ['2', 'two']
    assert infos[0]['answer_weights'] == pytest.approx([0.75, 0.25])
    assert infos[1]['answers'] == ['cat'] and infos[2]['answers'] == []
    assert [i['image_id'] for i in infos] == [0, 1, 0]


def test_vqa_malformed_files_name_the_file_and_entry(tmp_path: Path) -> None:
    ques = _json(tmp_path / 'q.json', _questions('val2014', [1, 2, 3]))
    anns = [{'question_id': 10 + n * 11, 'answers': [{'answer': 'x'}] * 10} for n in range(3)]
    del anns[1]['answers']
    bad = _json(tmp_path / 'a.json', {'annotations': anns})
    with pytest.raises(
        ValueError,
        match=r"a\.json': entry 1 \(question_id 21\): missing key "
        r"'answers'",
    ):
        VQADataset(ques_file=str(ques), ann_file=str(bad))
    # with skip_bad_samples the annotation and its question are dropped, and counted
    ds = VQADataset(ques_file=str(ques), ann_file=str(bad), skip_bad_samples=True)
    assert len(ds) == 2 and ds.num_bad_entries == 2
    assert [ds.get_data_info(i)['question_id'] for i in range(2)] == [10, 32]
    # a question without annotation
    short = _json(tmp_path / 'short.json', {'annotations': anns[:1]})
    with pytest.raises(ValueError, match=r"q\.json': entry 1: question_id 21 has no"):
        VQADataset(ques_file=str(ques), ann_file=str(short))
    # a question entry with a bad field
    broken = _questions('val2014', [1, 2])
    broken['questions'][1]['question'] = ''
    with pytest.raises(ValueError, match=r"q2\.json': entry 1: 'question' must be a non-empty"):
        VQADataset(ques_file=str(_json(tmp_path / 'q2.json', broken)))
    (tmp_path / 'trunc.json').write_text('{"questions": [')
    with pytest.raises(ValueError, match=r"trunc\.json': malformed JSON at line 1"):
        VQADataset(ques_file=str(tmp_path / 'trunc.json'))
    with pytest.raises(ValueError, match=r"odd\.json': expected official VQA questions"):
        VQADataset(ques_file=str(_json(tmp_path / 'odd.json', {'q': []})))


# --- NLVR2 ----------------------------------------------------------------------------------------
def test_nlvr2_official_sample_file() -> None:
    root = shared_path('vl_task_samples')
    pipeline = [
        dict(type='LoadImagePair'),
        dict(type='ApplyToImagePair', transforms=[dict(type='Resize', size=(24, 40))]),
        dict(type='PackInputs', meta_keys=NLVR2_META_KEYS),
    ]
    ds = DATASETS.build(
        dict(
            type='NLVR2Dataset',
            data_root=str(root),
            ann_file='nlvr2/tiny-dev.json',
            image_root='images/nlvr2',
            pipeline=pipeline,
        )
    )
    assert len(ds) == 8 and ds.metainfo['classes'] == ('False', 'True')
    raw = [json.loads(line) for line in (root / 'nlvr2/tiny-dev.json').read_text().splitlines()]
    infos = [ds.get_data_info(i) for i in range(8)]
    assert [i['label'] for i in infos] == [int(r['label'] == 'True') for r in raw]
    assert Counter(i['label'] for i in infos) == {0: 4, 1: 4}
    assert infos[0]['identifier'] == 'dev-850-0-0'
    assert infos[0]['img_path'] == str(root / 'images/nlvr2/dev-850-0-img0.png')
    assert infos[0]['img_path2'] == str(root / 'images/nlvr2/dev-850-0-img1.png')
    assert all(os.path.isfile(i['img_path']) and os.path.isfile(i['img_path2']) for i in infos)
    assert len({i['image_id'] for i in infos}) == 4  # 8 statements on 4 image pairs
    assert infos[4]['caption'] == raw[4]['sentence']
    out = ds[1]  # the .png files hold JPEG data: decoded by content
    assert out['inputs']['image'].shape == out['inputs']['image_2'].shape == (3, 24, 40)
    assert out['inputs']['image'].dtype == torch.uint8
    assert not torch.equal(out['inputs']['image'], out['inputs']['image_2'])
    sample = out['data_samples']
    assert sample.label == 1 and sample.img_path2 == infos[1]['img_path2']
    assert tuple(sample.ori_shape2) == Image.open(infos[1]['img_path2']).size[::-1]


def test_nlvr2_albef_format_and_directories(tmp_path: Path) -> None:
    ann = _lines(
        tmp_path / 'train.json',
        [
            {'identifier': 'train-10-1-0', 'sentence': 'One dog.', 'label': 'True', 'directory': 7},
            {
                'identifier': 'train-10-1-1',
                'sentence': 'Two dogs.',
                'label': 'False',
                'directory': 7,
            },
        ],
    )
    ds = NLVR2Dataset(ann_file=str(ann), image_root='imgs', data_root=str(tmp_path))
    assert ds.get_data_info(0)['img_path'] == os.path.join(
        str(tmp_path), 'imgs', '7', 'train-10-1-img0.png'
    )
    flat = NLVR2Dataset(
        ann_file=str(ann), image_root='imgs', data_root=str(tmp_path), use_directory=False
    )
    assert flat.get_data_info(1)['img_path2'] == os.path.join(
        str(tmp_path), 'imgs', 'train-10-1-img1.png'
    )
    albef = _json(
        tmp_path / 'nlvr_dev.json',
        [
            {'images': ['dev/a-img0.png', 'dev/a-img1.png'], 'sentence': 'x', 'label': 'False'},
            {'images': ['dev/a-img0.png', 'dev/a-img1.png'], 'sentence': 'y', 'label': True},
        ],
    )
    ds = NLVR2Dataset(ann_file=str(albef), image_root=str(tmp_path))
    assert [ds.get_data_info(i)['label'] for i in range(2)] == [0, 1]
    assert ds.get_data_info(1)['img_path2'] == str(tmp_path / 'dev/a-img1.png')
    assert {ds.get_data_info(i)['image_id'] for i in range(2)} == {0}


@pytest.mark.parametrize(
    'entry, message',
    [
        ({'identifier': 'dev-1', 'sentence': 's', 'label': 'True'}, 'identifier .* is not'),
        (
            {'identifier': 'dev-1-2-3', 'sentence': 's', 'label': 'maybe'},
            '"label" must be "True" or "False"',
        ),
        ({'identifier': 'dev-1-2-3', 'label': 'True'}, "missing key 'sentence'"),
        ({'images': ['a.png'], 'sentence': 's', 'label': 'True'}, '"images" must list two paths'),
    ],
)
def test_nlvr2_bad_entries(tmp_path: Path, entry: dict, message: str) -> None:
    good = {'identifier': 'dev-1-2-0', 'sentence': 's', 'label': 'True'}
    ann = _lines(tmp_path / 'dev.json', [good, entry])
    with pytest.raises(ValueError, match=rf"dev\.json': entry 1: {message}"):
        NLVR2Dataset(ann_file=str(ann))
    ds = NLVR2Dataset(ann_file=str(ann), skip_bad_samples=True)
    assert len(ds) == 1 and ds.num_bad_entries == 1


def test_nlvr2_unreadable_image_names_the_sample(tmp_path: Path) -> None:
    ann = _lines(
        tmp_path / 'dev.json', [{'identifier': 'dev-1-2-0', 'sentence': 's', 'label': 'True'}]
    )
    _image(tmp_path / 'dev-1-2-img0.png')
    ds = NLVR2Dataset(
        ann_file=str(ann),
        image_root=str(tmp_path),
        pipeline=[dict(type='LoadImagePair'), dict(type='PackInputs')],
    )
    with pytest.raises(
        ValueError,
        match=r"dev-1-2-img1\.png' not found, for sample 0 "
        r"\(entry 0 of .*dev\.json'",
    ):
        ds[0]


def test_read_records_accepts_json_lines_named_json(tmp_path: Path) -> None:
    path = _lines(tmp_path / 'x.json', [{'a': 1}, {'a': 2}])
    assert read_records(str(path)) == ([{'a': 1}, {'a': 2}], [])
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"x\.json': line 2: malformed JSON"):
        read_records(str(path))
    entries, problems = read_records(str(path), skip_bad_lines=True)
    assert entries == [{'a': 1}] and len(problems) == 1


# --- SNLI-VE --------------------------------------------------------------------------------------
def test_snli_ve_official_sample_file() -> None:
    root = shared_path('vl_task_samples')
    ds = DATASETS.build(
        dict(
            type='SNLIVEDataset',
            data_root=str(root),
            ann_file='visual_entailment/sample_pairs.jsonl',
            image_root='images/visual_entailment',
            pipeline=[
                dict(type='LoadImage'),
                dict(type='Resize', size=16),
                dict(type='PackInputs', meta_keys=SNLIVE_META_KEYS),
            ],
        )
    )
    assert len(ds) == 16
    assert ds.metainfo['classes'] == ('contradiction', 'neutral', 'entailment')
    infos = [ds.get_data_info(i) for i in range(16)]
    assert Counter(i['gold_label'] for i in infos) == {
        'contradiction': 4,
        'neutral': 6,
        'entailment': 6,
    }
    mapping = {'contradiction': 0, 'neutral': 1, 'entailment': 2}  # ALBEF's label ids
    assert all(i['label'] == mapping[i['gold_label']] for i in infos)
    assert infos[0]['caption'] == 'A toddler sleeps outside.' and infos[0]['label'] == 0
    assert infos[0]['premise'] == 'A toddler poses in front of a computer at a business office.'
    assert infos[0]['img_path'] == str(root / 'images/visual_entailment/2248275918.jpg')
    assert all(os.path.isfile(i['img_path']) for i in infos)
    assert infos[15]['ori_image_id'] == '402978771' and infos[15]['image_id'] == 1
    sample = ds[2]['data_samples']
    assert sample.label == 2 and sample.gold_label == 'entailment'
    assert sample.pair_id == '2248275918.jpg#2r1e'


def test_snli_ve_albef_format(tmp_path: Path) -> None:
    ann = _json(
        tmp_path / 've_dev.json',
        [
            {'image': '2248275918', 'sentence': 'A child.', 'label': 'entailment'},
            {'image': 'sub/123.jpg', 'sentence': 'A cat.', 'label': 'contradiction'},
        ],
    )
    ds = SNLIVEDataset(ann_file=str(ann), image_root='flickr', data_root=str(tmp_path))
    assert ds.get_data_info(0)['img_path'] == os.path.join(
        str(tmp_path), 'flickr', '2248275918.jpg'
    )
    assert ds.get_data_info(1)['img_path'] == os.path.join(str(tmp_path), 'flickr', 'sub/123.jpg')
    assert [ds.get_data_info(i)['label'] for i in range(2)] == [2, 0]
    assert ds.get_data_info(1)['ori_image_id'] == '123'


def test_snli_ve_undecided_label(tmp_path: Path) -> None:
    good = {'Flickr30K_ID': '1', 'sentence2': 'h', 'gold_label': 'neutral'}
    ann = _lines(
        tmp_path / 'snli_ve_dev.jsonl',
        [good, dict(good, gold_label='-'), dict(good, gold_label='unsure')],
    )
    with pytest.raises(ValueError, match=r"snli_ve_dev\.jsonl': entry 1: gold_label \"-\""):
        SNLIVEDataset(ann_file=str(ann))
    ds = SNLIVEDataset(ann_file=str(ann), skip_bad_samples=True)
    assert len(ds) == 1 and ds.num_bad_entries == 2
    (tmp_path / 'broken.jsonl').write_text(json.dumps(good) + '\n{"Flickr30K_ID": \n')
    with pytest.raises(ValueError, match=r"broken\.jsonl': line 2: malformed JSON"):
        SNLIVEDataset(ann_file=str(tmp_path / 'broken.jsonl'))


# --- grounding ------------------------------------------------------------------------------------
def test_grounding_coco_mini_captions() -> None:
    root = shared_path('coco_mini_train2017')
    raw = json.loads((root / 'grounding.json').read_text())
    ds = DATASETS.build(
        dict(
            type='GroundingDataset',
            data_root=str(root),
            ann_file='grounding.json',
            pipeline=[
                dict(type='LoadImage'),
                dict(type='Resize', size=64),
                dict(type='PackInputs', meta_keys=GROUNDING_META_KEYS),
            ],
        )
    )
    assert len(ds) == sum(len(e['caption']) for e in raw) == 400
    info = ds.get_data_info(6)  # entry 1, its second caption
    entry = raw[1]
    assert info['caption'] == entry['caption'][1] and info['ann_index'] == 1
    assert info['img_path'] == str(root / entry['image']) and os.path.isfile(info['img_path'])
    x, y, w, h = entry['boxes'][0]['bbox']
    assert info['gt_bboxes'].shape == (len(entry['boxes']), 4)
    assert info['gt_bboxes'][0].tolist() == pytest.approx([x, y, x + w, y + h])
    assert info['categories'] == [b['category'] for b in entry['boxes']]
    np.testing.assert_array_equal(info['proposals'], info['gt_bboxes'])
    assert (info['width'], info['height']) == (entry['width'], entry['height'])
    assert info['ori_image_id'] == entry['image_id'] and info['image_id'] == 1
    out = ds[6]
    sample = out['data_samples']
    # gt_bboxes moved with the 64 x 64 resize; ori_gt_bboxes stayed in original pixels
    assert sample.gt_bboxes.shape == (len(entry['boxes']), 4)
    assert sample.gt_bboxes[0, 2].item() == pytest.approx((x + w) * 64 / entry['width'], abs=0.01)
    assert sample.ori_gt_bboxes[0].tolist() == pytest.approx([x, y, x + w, y + h])


def test_grounding_coco_mini_categories() -> None:
    root = shared_path('coco_mini_train2017')
    raw = json.loads((root / 'grounding.json').read_text())
    ds = GroundingDataset(ann_file='grounding.json', data_root=str(root), expressions='categories')
    assert len(ds) == sum(len({b['category'] for b in e['boxes']}) for e in raw)
    first = [ds.get_data_info(i) for i in range(len({b['category'] for b in raw[0]['boxes']}))]
    assert [i['caption'] for i in first] == list(
        dict.fromkeys(b['category'] for b in raw[0]['boxes'])
    )
    chairs = next(i for i in first if i['caption'] == 'chair')
    n_chairs = sum(b['category'] == 'chair' for b in raw[0]['boxes'])
    assert chairs['gt_bboxes'].shape == (n_chairs, 4)
    assert chairs['categories'] == ['chair'] * n_chairs
    assert chairs['proposals'].shape == (len(raw[0]['boxes']), 4)


def _refer_files(tmp_path: Path) -> dict:
    _json(
        tmp_path / 'refcoco+_val.json',
        [
            {
                'image': 'train2014/COCO_train2014_000000000009.jpg',
                'text': 'left bowl',
                'ref_id': 3,
            },
            {
                'image': 'train2014/COCO_train2014_000000000025.jpg',
                'text': 'giraffe on right',
                'ref_id': 4,
                'split': 'testA',
            },
        ],
    )
    _json(
        tmp_path / 'dets.json',
        {'9': [[1, 2, 10, 20, 0.9], [5, 5, 4, 4, 0.5]], '25': [[0, 0, 30, 30, 0.8]]},
    )
    refs = [
        {'ref_id': 3, 'ann_id': 100, 'image_id': 9, 'split': 'val'},
        {'ref_id': 4, 'ann_id': 101, 'image_id': 25, 'split': 'testB'},
    ]
    _json(
        tmp_path / 'instances.json',
        {
            'annotations': [
                {'id': 100, 'bbox': [1, 2, 10, 20], 'image_id': 9, 'category_id': 51},
                {'id': 101, 'bbox': [3, 3, 6, 8], 'image_id': 25, 'category_id': 25},
            ],
            'categories': [{'id': 51, 'name': 'bowl'}, {'id': 25, 'name': 'giraffe'}],
        },
    )
    _json(tmp_path / 'refs.json', refs)
    (tmp_path / 'refs(unc).p').write_bytes(pickle.dumps(refs))
    return dict(
        data_root=str(tmp_path),
        ann_file='refcoco+_val.json',
        image_root='coco',
        proposal_file='dets.json',
        instances_file='instances.json',
    )


@pytest.mark.parametrize('refs_file', ['refs(unc).p', 'refs.json'])
def test_grounding_refcoco_format(tmp_path: Path, refs_file: str) -> None:
    ds = GroundingDataset(refs_file=refs_file, **_refer_files(tmp_path))
    assert len(ds) == 2
    first, second = ds.get_data_info(0), ds.get_data_info(1)
    assert first['img_path'] == os.path.join(
        str(tmp_path), 'coco', 'train2014/COCO_train2014_000000000009.jpg'
    )
    assert first['caption'] == 'left bowl' and first['ref_id'] == 3
    assert first['ori_gt_bboxes'].tolist() == [[1, 2, 11, 22]]  # xywh -> xyxy
    assert first['proposals'].tolist() == [[1, 2, 11, 22], [5, 5, 9, 9]]  # keyed by image id 9
    assert first['categories'] == ['bowl'] and first['split'] == 'val'
    assert second['split'] == 'testA'  # the entry's own split wins over the refs file's
    assert second['proposals'].tolist() == [[0, 0, 30, 30]]


def test_grounding_refcoco_without_refs_and_keyed_by_ref(tmp_path: Path) -> None:
    kwargs = _refer_files(tmp_path)
    kwargs.pop('instances_file')
    _json(tmp_path / 'dets_by_ref.json', {'3': [[0, 0, 2, 2]], '4': [[1, 1, 2, 2]]})
    ds = GroundingDataset(
        **dict(kwargs, proposal_file='dets_by_ref.json', proposal_key='ref_id'), split='val'
    )
    info = ds.get_data_info(0)
    assert info['proposals'].tolist() == [[0, 0, 2, 2]]
    assert info['ori_gt_bboxes'].shape == (0, 4) and info['split'] == 'val'  # no gt source
    with pytest.raises(
        ValueError,
        match=r"refcoco\+_val\.json': entry 0: no proposals for "
        r'image_id 9',
    ):
        GroundingDataset(**dict(kwargs, proposal_file='dets_by_ref.json'))
    with pytest.raises(ValueError, match='refs_file needs instances_file'):
        GroundingDataset(**kwargs, refs_file='refs.json')


@pytest.mark.parametrize(
    'change, message',
    [
        (lambda e: e['boxes'][1].update(bbox=[1, 1, 0, 5]), r'entry 1, box 1: box .* has no area'),
        (lambda e: e['boxes'][0].pop('category'), r"entry 1, box 0: missing key 'category'"),
        (lambda e: e.update(caption=[]), r'entry 1: "caption" must be'),
    ],
)
def test_grounding_bad_coco_entries(tmp_path: Path, change: object, message: str) -> None:
    entry = {
        'image': 'a.jpg',
        'image_id': '1',
        'width': 20,
        'height': 10,
        'caption': ['a cat'],
        'boxes': [
            {'bbox': [0, 0, 5, 5], 'category': 'cat'},
            {'bbox': [5, 5, 5, 5], 'category': 'dog'},
        ],
    }
    bad = json.loads(json.dumps(entry))
    change(bad)  # type: ignore[operator]
    ann = _json(tmp_path / 'grounding.json', [entry, bad])
    with pytest.raises(ValueError, match=rf"grounding\.json': {message}"):
        GroundingDataset(ann_file=str(ann))
    ds = GroundingDataset(ann_file=str(ann), skip_bad_samples=True)
    assert len(ds) == 1 and ds.num_bad_entries == 1
