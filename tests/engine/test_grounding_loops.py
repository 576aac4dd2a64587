"""Weakly supervised grounding (RefCOCO+ protocol) and the COCO pointing game: box scores, the
Grad-CAM grounding loop against a per-sample recomputation, the word -> category vocabulary, the
refer-toolkit converter, and Runner runs on ../shared/data/coco_mini_train2017."""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate

from tests.conftest import shared_path
from tests.models.test_mutation_guards import reference_gradcam
from tests.models.tiny import VOCAB, tiny_model
from vlreg.datasets.coco_categories import (
    CATEGORY_TERMS,
    COCO_CATEGORIES,
    WORD_TO_CATEGORY,
    LinkCategoryWords,
    build_word_map,
    find_category_mentions,
    pluralise,
)
from vlreg.datasets.downstream import GroundingDataset
from vlreg.datasets.prepare import refcoco
from vlreg.engine.grounding_loop import GradCAMGroundingLoop, expression_maps
from vlreg.engine.pointing_loop import GradCAMPointingLoop
from vlreg.evaluation.grounding import score_boxes_by_cam, select_box_by_cam
from vlreg.structures import DataSample

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))

import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

GROUNDING_CFG = str(ROOT / 'configs/tasks/grounding/albef_vit-t-bert-t_1xb8_coco-mini-grounding.py')
POINTING_CFG = str(ROOT / 'configs/tasks/grounding/albef_vit-t-bert-t_1xb8_coco-mini-pointing.py')


# --- box scores: cases the metric tests do not cover -------------------------------------------
def test_box_partly_left_of_the_image_and_ties() -> None:
    cam = torch.ones(4, 6)
    # [-2, 0, 2, 2]: 2 x 2 pixels inside, continuous area 4 x 2 = 8 -> 4 / sqrt(8)
    # [1.5, 1.5, 3.5, 3.5]: rows 1-2, columns 1-2 (truncated) = 4 pixels, area 4 -> 2
    scores = score_boxes_by_cam(cam, [[-2, 0, 2, 2], [1.5, 1.5, 3.5, 3.5], [0, 0, 2, 2]])
    assert scores.tolist() == pytest.approx([4 / math.sqrt(8), 2.0, 2.0])
    index, box = select_box_by_cam(cam, [[-2, 0, 2, 2], [1.5, 1.5, 3.5, 3.5], [0, 0, 2, 2]])
    assert index == 1 and box.tolist() == [1.5, 1.5, 3.5, 3.5]  # a tie goes to the first


def test_expression_maps_reductions() -> None:
    cam = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    word_ids = torch.tensor([[-1, 0, 0, -1], [-1, 0, -1, 1]])
    every = expression_maps(cam, mask, tokens='all')
    assert every[0].tolist() == pytest.approx(((cam[0, 0] + cam[0, 1] + cam[0, 2]) / 3).tolist())
    assert every[1].tolist() == pytest.approx(cam[1].mean(0).tolist())
    words = expression_maps(cam, mask, word_ids, tokens='words')
    assert words[0].tolist() == pytest.approx(((cam[0, 1] + cam[0, 2]) / 2).tolist())
    assert words[1].tolist() == pytest.approx(((cam[1, 1] + cam[1, 3]) / 2).tolist())
    no_ids = expression_maps(cam, mask, None, tokens='words')  # every real token but [CLS]
    assert no_ids[1].tolist() == pytest.approx(cam[1, 1:].mean(0).tolist())
    assert torch.equal(expression_maps(cam, mask, tokens='cls'), cam[:, 0])
    with pytest.raises(ValueError, match='tokens must be one of'):
        expression_maps(cam, mask, tokens='mean')


# --- the grounding loop's choice = a per-sample recomputation ----------------------------------
def _packed(seed: int, length: int, ori_hw: tuple[int, int], n_boxes: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (length,), generator=g)
    ids[0] = 2  # [CLS]
    h, w = ori_hw
    xy = torch.rand(n_boxes, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 3 + torch.rand(n_boxes, 2, generator=g) * torch.tensor([w * 0.3 - 3, h * 0.3 - 3])
    proposals = torch.cat([xy, xy + wh], 1).numpy().astype(np.float32)
    meta = dict(
        sample_idx=seed,
        ori_shape=ori_hw,
        proposals=proposals,
        ori_gt_bboxes=proposals[:1],
        split='val' if seed % 2 else 'testA',
        ref_id=seed,
    )
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)
    return dict(inputs=dict(image=image, input_ids=ids), data_samples=DataSample(metainfo=meta))


def _reference_scores(model, packed: dict, layer: int) -> list[float]:
    """One sample alone (no padding), ALBEF's slicing loop over the proposals."""
    data = model.data_preprocessor(pseudo_collate([packed]), False)
    inputs = data['inputs']
    cam, _ = reference_gradcam(
        model, inputs['image'], inputs['input_ids'], inputs['attention_mask'], layer=layer
    )  # by hand, not model.gradcam
    text_map = cam[0].sum(0) / cam.shape[1]  # every token is real here
    h, w = packed['data_samples'].metainfo['ori_shape']
    up = F.interpolate(
        text_map.reshape(1, 1, 4, 4).double(), size=(h, w), mode='bicubic', align_corners=False
    )[0, 0]
    scores = []
    for x0, y0, x1, y1 in packed['data_samples'].metainfo['proposals'].tolist():
        inside = up[int(y0) : int(y1), int(x0) : int(x1)].sum().item()
        scores.append(inside / math.sqrt((x1 - x0) * (y1 - y0)))
    return scores


def test_loop_box_choice_matches_per_sample_computation() -> None:
    model = tiny_model(mlm=False, dropout=0.0).eval()
    batch = [
        _packed(seed, length, hw, n)
        for seed, length, hw, n in [(0, 9, (50, 70), 6), (1, 5, (64, 40), 4), (2, 7, (33, 90), 8)]
    ]
    loop = GradCAMGroundingLoop.__new__(GradCAMGroundingLoop)  # the scoring part, no Runner
    loop._init_grounding(
        layer=0, head_reduction='mean', tokens='all', area_exponent=0.5, interpolation='bicubic'
    )
    loop.fp16 = False
    results = loop.score_batch(model, pseudo_collate(batch), layer=0)
    assert len(results) == 3
    for packed, result in zip(batch, results, strict=True):
        expected = _reference_scores(model, packed, layer=0)
        np.testing.assert_allclose(
            result['proposal_scores'].numpy(), expected, rtol=1e-4, atol=1e-9
        )
        proposals = packed['data_samples'].metainfo['proposals']
        assert result['pred_bbox'].tolist() == pytest.approx(
            proposals[int(np.argmax(expected))].tolist()
        )
        assert result['split'] == packed['data_samples'].metainfo['split']
    # a sample without proposals is a miss, not a crash
    empty = _packed(3, 6, (40, 40), 1)
    empty['data_samples'].set_metainfo(dict(proposals=np.zeros((0, 4), np.float32)))
    out = loop.score_batch(model, pseudo_collate([empty]), layer=0)
    assert out[0]['pred_bbox'].tolist() == [0, 0, 0, 0] and loop.num_without_proposals == 1


def test_pointing_loop_scores_box_groups() -> None:
    loop = GradCAMPointingLoop.__new__(GradCAMPointingLoop)
    loop._init_pointing(
        num_captions=1, layer=0, pair_batch_size=4, head_reduction='mean', tolerance=0.0
    )
    sample = DataSample(metainfo=dict(gt_word_indices=[[0], [1]], gt_box_groups=[[0, 1], [2]]))
    # top-left, bottom-right and top-right quarters of an 8 x 8 image (2 x 2 patch grid)
    sample.gt_bboxes = torch.tensor([[0, 0, 4, 4], [4, 4, 8, 8], [4, 0, 8, 4]], dtype=torch.float)
    cam = torch.zeros(3, 4)
    cam[1, 3] = 1.0  # word 0: peak bottom-right = box 1 of its group {0, 1}: hit
    cam[2, 0] = 1.0  # word 1: peak top-left, its group is the top-right box: miss
    result = dict(hits=0, total=0, chance=0.0, skipped=0)
    loop._score_pair(
        result, sample, cam, None, torch.ones(3, dtype=torch.long), None, (2, 2), (8, 8)
    )
    # chance: 2 of 4 patch centres in group 0, 1 of 4 in group 1
    assert result == dict(hits=1, total=2, chance=0.75, skipped=0)


# --- the word -> category vocabulary -----------------------------------------------------------
def test_vocabulary_covers_the_80_categories() -> None:
    assert len(COCO_CATEGORIES) == 80 and set(CATEGORY_TERMS) == set(COCO_CATEGORIES)
    for category in COCO_CATEGORIES:
        # every category is found by its own name, except "orange" (the colour; see the docstring)
        if category != 'orange':
            assert WORD_TO_CATEGORY[category] == category
    assert WORD_TO_CATEGORY['oranges'] == 'orange' and 'orange' not in WORD_TO_CATEGORY
    table = {
        'man': 'person',
        'women': 'person',
        'people': 'person',
        'children': 'person',
        'bike': 'bicycle',
        'bikes': 'bicycle',
        'motorbike': 'motorcycle',
        'puppies': 'dog',
        'sofa': 'couch',
        'fridge': 'refrigerator',
        'tv': 'tv',
        'television': 'tv',
        'buses': 'bus',
        'knives': 'knife',
        'mice': 'mouse',
        'sheep': 'sheep',
        'mans': 'person',
        'hot dogs': 'hot dog',
        'teddy bears': 'teddy bear',
        'wine glasses': 'wine glass',
        'skis': 'skis',
        'ski': 'skis',
        'racquet': 'tennis racket',
        'cellphone': 'cell phone',
        'donuts': 'donut',
        'doughnuts': 'donut',
        'plane': 'airplane',
    }
    assert {w: WORD_TO_CATEGORY.get(w) for w in table} == table
    for word in ('glass', 'glasses', 'baseball', 'tennis', 'bag', 'pitcher', 'orange'):
        assert word not in WORD_TO_CATEGORY
    assert (
        pluralise('bus'),
        pluralise('puppy'),
        pluralise('boy'),
        pluralise('policeman'),
        pluralise('human'),
        pluralise('teddy bear'),
        pluralise('sheep'),
    ) == ('buses', 'puppies', 'boys', 'policemen', 'humans', 'teddy bears', None)
    with pytest.raises(ValueError, match="'bat' names both"):
        build_word_map({'baseball bat': ['bat'], 'bird': ['bat']})


def test_mentions_longest_phrase_first() -> None:
    words = "Two men, a Puppy and a man's hot dog next to the teddy bear's chair".split()
    assert find_category_mentions(words) == [
        ('person', [1]),
        ('dog', [3]),
        ('person', [6]),
        ('hot dog', [7, 8]),
        ('teddy bear', [12, 13]),
        ('chair', [14]),
    ]
    assert find_category_mentions('a bear and a dog'.split()) == [('bear', [1]), ('dog', [4])]
    assert find_category_mentions([]) == []


def test_link_category_words() -> None:
    link = LinkCategoryWords()
    out = link(
        dict(
            caption='two men and a dog sit near a hot dog stand with a teddy bear',
            categories=['person', 'dog', 'person', 'hot dog'],
        )
    )
    assert out['gt_word_indices'] == [[1], [4], [8, 9]]
    assert out['gt_box_groups'] == [[0, 2], [1], [3]]
    assert out['gt_object_names'] == ['person', 'dog', 'hot dog']
    assert out['num_unboxed_mentions'] == 1  # the teddy bear has no box
    custom = LinkCategoryWords(terms={'dog': ['hound']})
    assert custom(dict(caption='a hound and a dog', categories=['dog']))['gt_word_indices'] == [[1]]
    with pytest.raises(KeyError, match='categories'):
        link(dict(caption='a dog'))


# --- tools/prepare_data.py refcoco ---------------------------------------------------------------
def _args(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    refcoco.add_arguments(parser)
    argv = []
    for key, value in kwargs.items():
        argv += [f'--{key.replace("_", "-")}'] + ([] if value is True else [str(value)])
    return parser.parse_args(argv)


def _refer_fixture(tmp_path: Path) -> dict:
    instances = {
        'images': [
            {'id': 9, 'file_name': 'COCO_train2014_000000000009.jpg', 'width': 100, 'height': 80},
            {'id': 25, 'file_name': 'COCO_train2014_000000000025.jpg', 'width': 60, 'height': 60},
            {'id': 30, 'file_name': 'COCO_train2014_000000000030.jpg', 'width': 50, 'height': 50},
        ],
        'annotations': [
            {'id': 100, 'image_id': 9, 'bbox': [1, 2, 10, 20], 'category_id': 51},
            {'id': 101, 'image_id': 25, 'bbox': [3, 3, 6, 8], 'category_id': 25},
            {'id': 102, 'image_id': 30, 'bbox': [0, 0, 5, 5], 'category_id': 25},
            {'id': 103, 'image_id': 9, 'bbox': [5, 5, 0, 4], 'category_id': 51},
        ],
        'categories': [{'id': 51, 'name': 'bowl'}, {'id': 25, 'name': 'giraffe'}],
    }
    refs = [
        {
            'ref_id': 1,
            'ann_id': 102,
            'image_id': 30,
            'split': 'train',
            'sentences': [{'sent': 'giraffe', 'raw': 'Giraffe.', 'sent_id': 10}],
        },
        {
            'ref_id': 3,
            'ann_id': 100,
            'image_id': 9,
            'split': 'val',
            'sentences': [
                {'sent': 'left bowl', 'raw': 'Left bowl', 'sent_id': 11},
                {'sent': '', 'raw': '', 'sent_id': 12},
            ],
        },
        {
            'ref_id': 4,
            'ann_id': 101,
            'image_id': 25,
            'split': 'testB',
            'sentences': [{'sent': 'giraffe on right', 'sent_id': 13}],
        },
        {'ref_id': 5, 'ann_id': 999, 'image_id': 9, 'split': 'val', 'sentences': []},
        {
            'ref_id': 3,
            'ann_id': 100,
            'image_id': 9,
            'split': 'val',
            'sentences': [{'sent': 'again', 'sent_id': 14}],
        },
        {'ann_id': 100, 'image_id': 9, 'split': 'val', 'sentences': []},
    ]
    (tmp_path / 'refs(unc).p').write_bytes(pickle.dumps(refs, protocol=2))
    (tmp_path / 'instances.json').write_text(json.dumps(instances))
    (tmp_path / 'dets.json').write_text(
        json.dumps(
            {'9': [[1, 2, 10, 20, 0.9], [0, 0, 50, 40, 0.5], [3, 3, -1, 4]], '25': [[2, 2, 8, 8]]}
        )
    )
    return dict(
        refs=tmp_path / 'refs(unc).p',
        instances=tmp_path / 'instances.json',
        proposals=tmp_path / 'dets.json',
        out_dir=tmp_path / 'out',
    )


def test_prepare_refcoco(tmp_path: Path, capsys) -> None:
    files = _refer_fixture(tmp_path)
    assert refcoco.run(_args(**files)) == 0
    printed = capsys.readouterr().out
    out = tmp_path / 'out'
    assert sorted(p.name for p in out.iterdir()) == [
        'refcoco+_proposals.json',
        'refcoco+_testB.json',
        'refcoco+_train.json',
        'refcoco+_val.json',
    ]
    train = json.loads((out / 'refcoco+_train.json').read_text())
    assert train == [
        {
            'image': 'train2014/COCO_train2014_000000000030.jpg',
            'ref_id': 1,
            'image_id': 30,
            'split': 'train',
            'width': 50,
            'height': 50,
            'category': 'giraffe',
            'text': 'giraffe',
            'sent_id': 10,
        }
    ]  # no box
    val = json.loads((out / 'refcoco+_val.json').read_text())
    assert [(e['ref_id'], e['text'], e['bbox']) for e in val] == [(3, 'left bowl', [1, 2, 10, 20])]
    proposals = json.loads((out / 'refcoco+_proposals.json').read_text())
    assert proposals == {'9': [[1, 2, 10, 20, 0.9], [0, 0, 50, 40, 0.5]], '25': [[2, 2, 8, 8]]}
    # every skip is reported with its reason
    assert 'skipped 6' in printed
    for reason in (
        'annotation 3 (id 103): bbox [5, 5, 0, 4] has no area',
        'proposal [3, 3, -1, 4] has no area',
        'ref 1 (ref_id 3): sentence 1 has no text',
        'ref 3 (ref_id 5): ann_id 999 is not a valid annotation',
        'ref 4: duplicate ref_id 3',
        "ref 5: missing key 'ref_id'",
    ):
        assert reason in printed, reason
    # GroundingDataset reads the result without the refs file
    ds = GroundingDataset(
        data_root=str(out),
        ann_file='refcoco+_val.json',
        proposal_file='refcoco+_proposals.json',
        image_root='coco',
    )
    info = ds.get_data_info(0)
    assert info['ori_gt_bboxes'].tolist() == [[1, 2, 11, 22]]
    assert info['proposals'].tolist() == [[1, 2, 11, 22], [0, 0, 50, 40]]
    assert info['categories'] == ['bowl'] and info['split'] == 'val' and info['ref_id'] == 3
    train_ds = GroundingDataset(data_root=str(out), ann_file='refcoco+_train.json')
    info = train_ds.get_data_info(0)
    assert info['caption'] == 'giraffe' and info['image_id'] == 0
    assert info['ori_gt_bboxes'].shape == (0, 4) and info['proposals'].shape == (0, 4)
    # ground-truth boxes as proposals, one split only
    assert (
        refcoco.run(_args(**dict(files, proposals='gt', out_dir=tmp_path / 'gt'), splits='testB'))
        == 0
    )
    assert json.loads((tmp_path / 'gt' / 'refcoco+_proposals.json').read_text()) == {
        '25': [[3, 3, 6, 8]]
    }


def test_refs_pickle_is_read_without_running_code(tmp_path: Path) -> None:
    evil = tmp_path / 'evil.p'
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / 'pwned').encode() + b"'\ntR.")
    with pytest.raises(ValueError, match=r"evil\.p'.*refusing to load the global os\.system"):
        refcoco.safe_pickle_load(str(evil))
    (tmp_path / 'a.json').write_text(json.dumps([{'image': 'x.jpg', 'text': 'a', 'ref_id': 1}]))
    (tmp_path / 'i.json').write_text(json.dumps({'annotations': [], 'categories': []}))
    with pytest.raises(ValueError, match=r"evil\.p'.*refusing"):
        GroundingDataset(
            ann_file=str(tmp_path / 'a.json'),
            refs_file=str(evil),
            instances_file=str(tmp_path / 'i.json'),
        )
    assert not (tmp_path / 'pwned').exists()
    # a Python 2 pickle (protocol 2, byte strings): list of one dict, decoded as UTF-8
    py2 = b'\x80\x02]}(U\x06ref_idK\x03U\x04sentU\x05caf\xc3\xa9ua.'
    (tmp_path / 'py2.p').write_bytes(py2)
    assert refcoco.safe_pickle_load(str(tmp_path / 'py2.p')) == [{'ref_id': 3, 'sent': 'café'}]
    (tmp_path / 'junk.p').write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match=r"junk\.p'"):
        refcoco.safe_pickle_load(str(tmp_path / 'junk.p'))


def test_prepare_pointing_file_matches_the_shared_grounding_json(tmp_path: Path) -> None:
    root = shared_path('coco_mini_train2017')
    args = _args(
        captions=root / 'annotations/captions_train2017.json',
        instances=root / 'annotations/instances_train2017.json',
        out_dir=tmp_path,
        name='mini',
        image_prefix='images/train2017',
        image_root=root,
    )
    assert refcoco.run(args) == 0
    mine = {e['image_id']: e for e in json.loads((tmp_path / 'mini.json').read_text())}
    shared = {e['image_id']: e for e in json.loads((root / 'grounding.json').read_text())}
    assert mine.keys() == shared.keys()
    for image_id, entry in shared.items():
        assert mine[image_id]['image'] == entry['image']
        assert sorted(mine[image_id]['caption']) == sorted(entry['caption'])
        boxes = sorted((b['category'], tuple(b['bbox'])) for b in entry['boxes'])
        assert sorted((b['category'], tuple(b['bbox'])) for b in mine[image_id]['boxes']) == boxes


# --- Runner runs on coco_mini (tools/train.py, tools/test.py) ----------------------------------
def _coco_refer_fixture(root: Path, out: Path) -> Path:
    """refer-format RefCOCO+ stand-in: every non-crowd box of coco_mini is a ref whose expression
    is its category name; images 0-59 train, 60-69 val, 70-79 testB; proposals = all the image's
    boxes."""
    inst = json.loads((root / 'annotations/instances_train2017.json').read_text())
    order = [json.loads((root / 'grounding.json').read_text())[i]['image_id'] for i in range(80)]
    split = {
        int(image_id): 'train' if i < 60 else 'val' if i < 70 else 'testB'
        for i, image_id in enumerate(order)
    }
    names = {c['id']: c['name'] for c in inst['categories']}
    refs = [
        dict(
            ref_id=k,
            ann_id=a['id'],
            image_id=a['image_id'],
            split=split[a['image_id']],
            sentences=[dict(sent=names[a['category_id']], sent_id=k)],
        )
        for k, a in enumerate(inst['annotations'])
        if not a.get('iscrowd')
    ]
    out.mkdir(parents=True)
    (out / 'refs(unc).p').write_bytes(pickle.dumps(refs, protocol=2))
    args = _args(
        refs=out / 'refs(unc).p',
        instances=root / 'annotations/instances_train2017.json',
        proposals='gt',
        out_dir=out,
        image_prefix='images/train2017',
    )
    assert refcoco.run(args) == 0
    return out


@pytest.mark.slow
def test_tiny_grounding_and_pointing_through_the_tools(tmp_path: Path) -> None:
    from mmengine.config import Config

    root = shared_path('coco_mini_train2017')
    work = tmp_path / 'work'
    # 1. the shipped tiny config: weak fine-tuning (ITC + ITM) with a grounding val loop, then test
    train_tool.main([GROUNDING_CFG, '--work-dir', str(work)])
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    metrics = test_tool.main(
        [
            GROUNDING_CFG,
            str(ckpt),
            '--work-dir',
            str(work),
            '--out',
            str(tmp_path / 'grounding.json'),
        ]
    )
    assert metrics['grounding/num_samples'] == 16
    hits = metrics['grounding/acc'] * 16 / 100  # a share of the 16 expressions
    assert hits == pytest.approx(round(hits), abs=1e-6)
    assert 'fusion layer 0' in metrics['grounding/protocol']
    assert 'IoU >= 0.5' in metrics['grounding/protocol']
    written = json.loads((tmp_path / 'grounding.json').read_text())['metrics']
    assert written['grounding/acc'] == metrics['grounding/acc']

    # 2. the refer-format path: tools/prepare_data.py refcoco output -> fine-tune -> val / testB
    data = _coco_refer_fixture(root, tmp_path / 'refcoco')
    cfg = Config.fromfile(GROUNDING_CFG)
    n_train = len(json.loads((data / 'refcoco+_train.json').read_text()))
    n_eval = {
        s: len(json.loads((data / f'refcoco+_{s}.json').read_text())) for s in ('val', 'testB')
    }
    common = dict(type='GroundingDataset', data_root=str(data), image_root=str(root))
    cfg.train_dataloader.dataset = dict(
        common,
        ann_file='refcoco+_train.json',
        indices=list(range(0, n_train, n_train // 16))[:16],
        pipeline=cfg.train_pipeline,
    )
    cfg.test_dataloader = dict(
        cfg.val_dataloader,
        dataset=dict(
            type='ConcatDataset',
            datasets=[
                dict(
                    common,
                    ann_file=f'refcoco+_{s}.json',
                    proposal_file='refcoco+_proposals.json',
                    indices=list(range(0, n_eval[s], n_eval[s] // 12))[:12],
                    pipeline=cfg.test_pipeline,
                )
                for s in ('val', 'testB')
            ],
        ),
    )
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    refer_cfg = tmp_path / 'refer_cfg.py'
    cfg.dump(str(refer_cfg))
    train_tool.main([str(refer_cfg), '--work-dir', str(tmp_path / 'refer')])
    metrics = test_tool.main(
        [
            str(refer_cfg),
            str(tmp_path / 'refer' / 'epoch_1.pth'),
            '--work-dir',
            str(tmp_path / 'refer'),
        ]
    )
    assert metrics['grounding/num_samples'] == 24 and min(n_eval.values()) > 24
    assert {'grounding/val_acc', 'grounding/testB_acc'} <= set(metrics)

    # 3. the COCO pointing game with the checkpoint of step 1
    metrics = test_tool.main([POINTING_CFG, str(ckpt), '--work-dir', str(work)])
    assert metrics['pointing/total'] > 20  # category words with a box, in 40 captions
    assert 0 <= metrics['pointing/hits'] <= metrics['pointing/total']
    assert metrics['pointing/acc'] == pytest.approx(
        100.0 * metrics['pointing/hits'] / metrics['pointing/total']
    )
    assert 0.0 < metrics['pointing/chance'] < 100.0
    assert 'tolerance 0 px' in metrics['pointing/protocol']
