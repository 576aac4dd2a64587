"""Retrieval fine-tuning and zero-shot evaluation: Karpathy's split files, the image-id-aware
ITC / ITM of fine-tuning, loading a pre-training checkpoint, the prepare module, and Runner runs
(fine-tune + test, zero-shot test) on the real images of ../shared/data/coco_mini_train2017."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.conftest import shared_path
from tests.models.loss_context import model_context
from vlreg.datasets import CaptionDataset, RetrievalDataset
from vlreg.datasets.karpathy import read_karpathy, resolve_splits
from vlreg.datasets.prepare import retrieval as prepare
from vlreg.models import ALBEFPretrainer
from vlreg.structures import DataSample

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))

import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

CONFIGS = ROOT / 'configs' / 'tasks' / 'retrieval'
TINY = CONFIGS / 'albef_vit-t-bert-t_1xb16_coco-mini-retrieval.py'
TINY_ZEROSHOT = CONFIGS / 'albef_vit-t-bert-t_zeroshot_coco-mini.py'


# ------------------------------------------------------------------------ a Karpathy file by hand
def _sentences(*raws: str) -> list[dict]:
    return [{'raw': r, 'tokens': r.lower().split()} for r in raws]


def _coco_images() -> list[dict]:
    """7 images: 2 train, 2 restval, 1 val, 2 test; COCO style (filepath + cocoid)."""
    spec = [
        ('train', 11, 2),
        ('restval', 12, 3),
        ('train', 13, 1),
        ('val', 14, 2),
        ('test', 15, 2),
        ('restval', 16, 1),
        ('test', 17, 3),
    ]
    images = []
    for i, (split, cocoid, n) in enumerate(spec):
        folder = 'val2014' if split != 'train' else 'train2014'
        images.append(
            {
                'filepath': folder,
                'filename': f'COCO_{folder}_{cocoid:012d}.jpg',
                'split': split,
                'cocoid': cocoid,
                'imgid': i,
                'sentids': list(range(n)),
                'sentences': _sentences(*[f'Image {cocoid}, Caption {j}.' for j in range(n)]),
            }
        )
    return images


def _write_karpathy(path: Path, images: list[dict], dataset: str = 'coco') -> Path:
    path.write_text(json.dumps({'images': images, 'dataset': dataset}))
    return path


def test_karpathy_train_merges_restval_by_default(tmp_path: Path) -> None:
    ann = _write_karpathy(tmp_path / 'dataset_coco.json', _coco_images())
    ds = CaptionDataset(str(ann), data_root=str(tmp_path), image_root='images', split='train')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    # train 11 (2 captions), restval 12 (3), train 13 (1), restval 16 (1): file order
    assert [i['ori_image_id'] for i in infos] == [11, 11, 12, 12, 12, 13, 16]
    assert [i['image_id'] for i in infos] == [0, 0, 1, 1, 1, 2, 3]  # contiguous, one per image
    assert [i['ann_index'] for i in infos] == [0, 0, 1, 1, 1, 2, 5]  # position in "images"
    assert infos[2]['caption'] == 'image 12 caption 0'  # ALBEF's cleaning
    assert infos[0]['img_path'] == str(
        tmp_path / 'images' / 'train2014' / 'COCO_train2014_000000000011.jpg'
    )
    only = CaptionDataset(str(ann), split='train', merge_restval=False)
    assert [only.get_data_info(i)['ori_image_id'] for i in range(len(only))] == [11, 11, 13]
    assert resolve_splits('train') == ('train', 'restval')
    assert resolve_splits(['val', 'test'], True) == ('val', 'test')


def test_karpathy_eval_splits_group_captions_per_image(tmp_path: Path) -> None:
    ann = _write_karpathy(tmp_path / 'dataset_coco.json', _coco_images())
    test = RetrievalDataset(str(ann), split='test')
    assert len(test) == 2 and test.img2txt == [[0, 1], [2, 3, 4]]
    assert test.txt2img == [0, 0, 1, 1, 1]
    assert test.captions[2] == 'image 17 caption 0'
    assert [test.get_data_info(i)['ori_image_id'] for i in range(2)] == [15, 17]
    both = RetrievalDataset(str(ann), split=['val', 'test'])
    assert [both.get_data_info(i)['ori_image_id'] for i in range(3)] == [14, 15, 17]


def test_flickr_style_file_uses_imgid_and_bare_file_names(tmp_path: Path) -> None:
    images = [
        {
            'filename': f'{100 + i}.jpg',
            'split': s,
            'imgid': i,
            'sentences': _sentences('A dog runs.', 'A dog.'),
        }
        for i, s in enumerate(['train', 'test', 'train', 'val'])
    ]
    ann = _write_karpathy(tmp_path / 'dataset_flickr30k.json', images, 'flickr30k')
    ds = CaptionDataset(
        str(ann), data_root=str(tmp_path), image_root='flickr30k-images', split='train'
    )
    assert [ds.get_data_info(i)['ori_image_id'] for i in range(len(ds))] == [0, 0, 2, 2]
    assert ds.get_data_info(2)['img_path'] == str(tmp_path / 'flickr30k-images' / '102.jpg')


def test_split_option_errors(tmp_path: Path) -> None:
    karpathy = _write_karpathy(tmp_path / 'dataset_coco.json', _coco_images())
    albef = tmp_path / 'coco_test.json'
    albef.write_text(json.dumps([{'image': 'a.jpg', 'caption': ['x']}]))
    with pytest.raises(ValueError, match=r'dataset_coco\.json.*set split='):
        CaptionDataset(str(karpathy))
    with pytest.raises(ValueError, match=r"split='test'.*coco_test\.json.*ALBEF format"):
        RetrievalDataset(str(albef), split='test')
    with pytest.raises(ValueError, match=r"unknown Karpathy split.*'dev'"):
        CaptionDataset(str(karpathy), split='dev')
    with pytest.raises(FileNotFoundError, match='absent.json'):
        read_karpathy(str(tmp_path / 'absent.json'), 'test')
    (tmp_path / 'other.json').write_text(json.dumps({'annotations': []}))
    with pytest.raises(ValueError, match=r'other\.json.*not a Karpathy split file'):
        CaptionDataset(str(tmp_path / 'other.json'), split='test')


@pytest.mark.parametrize(
    'index, change, message',
    [
        (4, lambda im: im.pop('filename'), r'images\[4\]: "filename" must be'),
        (4, lambda im: im.update(split='testing'), r'images\[4\]: "split" must be one of'),
        (
            4,
            lambda im: im.update(sentences=[]),
            r'images\[4\].*"sentences" must be a non-empty list',
        ),
        (
            4,
            lambda im: im['sentences'][1].pop('raw'),
            r'images\[4\] \(COCO_val2014_000000000015\.jpg\): sentence 1 has no usable "raw"',
        ),
        (4, lambda im: im.update(cocoid=[15]), r'images\[4\].*image id must be'),
        (
            6,
            lambda im: im.update(cocoid=15),
            r'images\[6\].*image id 15 already used by images\[4\]',
        ),
        (1, lambda im: im.update(split=None), r'images\[1\]: "split" must be one of'),  # any split
    ],
)
def test_bad_karpathy_entries_name_file_and_entry(
    tmp_path: Path, index: int, change, message: str
) -> None:
    images = _coco_images()
    change(images[index])
    ann = _write_karpathy(tmp_path / 'dataset_coco.json', images)
    with pytest.raises(ValueError, match=f'dataset_coco.json.*{message}'):
        RetrievalDataset(str(ann), split='test')


def test_bad_karpathy_entries_are_skipped_and_counted(tmp_path: Path) -> None:
    images = _coco_images()
    images[4]['sentences'][0]['raw'] = '   '  # one bad sentence: the image stays
    images[6]['sentences'] = [{'tokens': ['x']}]  # no usable sentence: the image goes
    images.append('not an image')  # malformed entry
    ann = _write_karpathy(tmp_path / 'dataset_coco.json', images)
    ds = CaptionDataset(str(ann), split='test', skip_bad_samples=True)
    assert len(ds) == 1 and ds.get_data_info(0)['caption'] == 'image 15 caption 1'
    assert ds.num_bad_entries == 2 and ds.num_bad_captions == 1


# ----------------------------------------------------------------- the fine-tuning objective
D, EMBED, VOCAB = 32, 16, 60


def _retrieval_model(
    use_ids: bool = True,
    queue_size: int = 8,
    img_size: int = 32,
    mlm: bool = False,
    seed: int = 0,
    **kwargs,
) -> ALBEFPretrainer:
    torch.manual_seed(seed)
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=EMBED, queue_size=queue_size, use_image_ids=use_ids),
        itm=dict(type='ITMLoss', use_image_ids=use_ids),
    )
    if mlm:
        losses['mlm'] = dict(type='MLMLoss')
    return ALBEFPretrainer(
        image_backbone=dict(
            type='TimmViTBackbone',
            model_name='vit_tiny_patch16_224',
            img_size=img_size,
            embed_dim=D,
            depth=1,
            num_heads=2,
        ),
        text_backbone=dict(
            type='BertTextBackbone',
            vocab_size=VOCAB,
            hidden_size=D,
            num_layers=1,
            num_heads=2,
            intermediate_size=2 * D,
            max_position_embeddings=16,
        ),
        fusion=dict(
            type='BertFusion',
            hidden_size=D,
            encoder_width=D,
            num_layers=2,
            num_heads=2,
            intermediate_size=2 * D,
            layer_offset=1,
        ),
        embed_dim=EMBED,
        losses=losses,
        mlm_head=dict(type='MLMHead') if mlm else None,
        **kwargs,
    )


def _batch(ids: list[int], img_size: int = 32, seed: int = 1) -> tuple[dict, list[DataSample]]:
    """Samples with the same image id share image and caption tokens (two captions of one image
    that read alike: the hardest case for same-image negatives)."""
    g = torch.Generator().manual_seed(seed)
    distinct = sorted(set(ids))
    images = {i: torch.randn(3, img_size, img_size, generator=g) for i in distinct}
    words = {i: torch.randint(5, VOCAB, (6,), generator=g) for i in distinct}
    input_ids = torch.stack([torch.cat([torch.tensor([2]), words[i]]) for i in ids])
    inputs = dict(
        image=torch.stack([images[i] for i in ids]),
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        mlm_input_ids=input_ids.clone(),
        mlm_labels=torch.full_like(input_ids, -100),
    )
    inputs['mlm_labels'][:, 3] = input_ids[:, 3]
    return inputs, [DataSample(metainfo=dict(image_id=i)) for i in ids]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_itc_targets_spread_over_every_caption_of_the_image() -> None:
    """Same-image columns of the batch AND of the queue are positives (ALBEF's Retrieval model)."""
    model = _retrieval_model(queue_size=8).eval()  # eval: no dropout, no enqueue
    ids = [5, 5, 9, 2]
    inputs, samples = _batch(ids)
    itc = model.losses['itc']
    itc.idx_queue[0, :] = torch.tensor([5, -100, 9, 7, -100, -100, 5, 3])
    feats = model.extract_features(inputs, samples)
    assert feats.image_ids.tolist() == ids
    alpha, temp = 0.4, model.temp.item()
    feats = dataclasses.replace(feats, alpha=alpha)
    got = itc(model_context(model, feats))['loss_itc'].item()
    # reference: numpy, float64, written out from ALBEF's model_retrieval.py equations
    f = {
        k: v.detach().double().numpy()
        for k, v in (
            ('image_embed', feats.image_embed),
            ('text_embed', feats.text_embed),
            ('image_embed_m', feats.momentum.image_embed),
            ('text_embed_m', feats.momentum.text_embed),
        )
    }
    cols_t = np.concatenate([f['text_embed_m'], itc.text_queue.double().numpy().T])
    cols_v = np.concatenate([f['image_embed_m'], itc.image_queue.double().numpy().T])
    col_ids = np.array(ids + itc.idx_queue[0].tolist())
    pos = (np.array(ids)[:, None] == col_ids[None, :]).astype(float)
    assert pos.sum(1).tolist() == [4, 4, 2, 1]  # 2 batch + 2 queue columns for image 5, ...
    pos /= pos.sum(1, keepdims=True)
    total = 0.0
    for rows, rows_m, cols in (
        (f['image_embed'], f['image_embed_m'], cols_t),
        (f['text_embed'], f['text_embed_m'], cols_v),
    ):
        target = alpha * np.exp(_log_softmax(rows_m @ cols.T / temp)) + (1 - alpha) * pos
        total += -(_log_softmax(rows @ cols.T / temp) * target).sum(1).mean()
    assert got == pytest.approx(total / 2, abs=1e-5)


def test_itc_queue_stores_the_image_ids_when_training() -> None:
    model = _retrieval_model(queue_size=8).train()
    inputs, samples = _batch([5, 5, 9, 2])
    model(inputs, samples, mode='loss')
    itc = model.losses['itc']
    assert itc.idx_queue[0, :4].tolist() == [5, 5, 9, 2] and int(itc.queue_ptr) == 4
    assert (itc.idx_queue[0, 4:] == -100).all()


@pytest.mark.parametrize('use_ids', [True, False])
def test_itm_never_draws_a_negative_of_the_same_image(use_ids: bool, monkeypatch) -> None:
    from vlreg.models.losses import itm as itm_module

    drawn: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = itm_module.sample_hard_negatives

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        drawn.append(out)
        return out

    monkeypatch.setattr(itm_module, 'sample_hard_negatives', spy)
    model = _retrieval_model(use_ids=use_ids, queue_size=0).eval()
    ids = torch.tensor([0, 0, 0, 1, 1, 2])
    inputs, samples = _batch(ids.tolist())
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(40):
            out = model(inputs, samples, mode='loss')
            assert set(out) >= {'loss_itc', 'loss_itm'} and 'loss_mlm' not in out
    img_neg = torch.stack([d[0] for d in drawn])
    txt_neg = torch.stack([d[1] for d in drawn])
    same = (ids[img_neg] == ids).sum() + (ids[txt_neg] == ids).sum()
    if use_ids:
        assert int(same) == 0
    else:  # control: identical captions of one image are the likeliest "negatives" without ids
        assert int(same) > 40


# ------------------------------------------------------------ loading a pre-training checkpoint
def _pretraining_checkpoint(
    tmp_path: Path, queue_size: int = 16, momentum_keys: bool = True
) -> tuple[Path, dict]:
    pre = _retrieval_model(use_ids=False, queue_size=queue_size, img_size=32, mlm=True, seed=7)
    with torch.no_grad():  # momentum copies that differ from the online weights, as after training
        for p in pre.image_backbone_m.parameters():
            p.add_(0.5)
        pre.losses['itc'].queue_ptr.fill_(queue_size // 2)
    state = pre.state_dict()
    if not momentum_keys:
        state = {k: v for k, v in state.items() if '_m.' not in k}
    path = tmp_path / 'pretrain.pth'
    torch.save({'meta': {'epoch': 30}, 'state_dict': state}, path)
    return path, state


def _bicubic_grid(pos: torch.Tensor, side: int) -> torch.Tensor:
    """Independent reference: [CLS] kept, the patch grid resized bicubically."""
    n = pos.shape[1] - 1
    old = math.isqrt(n)
    grid = pos[0, 1:].reshape(old, old, -1).permute(2, 0, 1)[None]
    grid = F.interpolate(grid, size=(side, side), mode='bicubic', align_corners=False)
    return torch.cat([pos[0, :1], grid[0].permute(1, 2, 0).reshape(side * side, -1)])[None]


def test_pretrained_checkpoint_loads_for_fine_tuning(tmp_path: Path) -> None:
    path, state = _pretraining_checkpoint(tmp_path, queue_size=16)
    model = _retrieval_model(queue_size=8, img_size=48, pretrained=str(path), seed=1)
    model.init_weights()
    own = model.state_dict()
    for key in (
        'text_backbone.embeddings.word_embeddings.weight',
        'fusion.layer.1.output.dense.weight',
        'itm_head.fc.weight',
        'vision_proj.weight',
        'text_proj_m.weight',
        'temp',
        'image_backbone.vit.blocks.0.attn.qkv.weight',
        'image_backbone_m.vit.blocks.0.attn.qkv.weight',
    ):
        assert torch.equal(own[key], state[key]), key
    # 32 px (2 x 2 patches) -> 48 px (3 x 3): interpolated, online and momentum alike
    for prefix in ('image_backbone', 'image_backbone_m'):
        expected = _bicubic_grid(state[f'{prefix}.vit.pos_embed'], 3)
        torch.testing.assert_close(own[f'{prefix}.vit.pos_embed'], expected)
    # queues of another size restart; no MLM head in fine-tuning
    itc = model.losses['itc']
    assert itc.image_queue.shape == (EMBED, 8) and int(itc.queue_ptr) == 0
    assert (itc.idx_queue == -100).all()
    assert not any(k.startswith('mlm_head') for k in own)
    inputs, samples = _batch([3, 3, 4, 5], img_size=48)
    out = model.train()(inputs, samples, mode='loss')
    assert torch.isfinite(out['loss_itc']) and torch.isfinite(out['loss_itm'])


@pytest.mark.parametrize('mode', ['load', 'reset'])
def test_queues_of_the_same_size(tmp_path: Path, mode: str) -> None:
    path, state = _pretraining_checkpoint(tmp_path, queue_size=8)
    model = _retrieval_model(queue_size=8, pretrained=str(path), pretrained_queues=mode, seed=1)
    model.init_weights()
    itc = model.losses['itc']
    loaded = torch.equal(itc.text_queue, state['losses.itc.text_queue'])
    assert loaded == (mode == 'load')
    assert int(itc.queue_ptr) == 0 and (itc.idx_queue == -100).all()
    with pytest.raises(ValueError, match='pretrained_queues'):
        _retrieval_model(pretrained_queues='keep')


def test_checkpoint_without_momentum_copies(tmp_path: Path) -> None:
    path, state = _pretraining_checkpoint(tmp_path, momentum_keys=False)
    model = _retrieval_model(pretrained=str(path), seed=1)
    model.init_weights()
    for online, shadow in zip(
        model.image_backbone.parameters(), model.image_backbone_m.parameters(), strict=True
    ):
        assert torch.equal(online, shadow)
    assert torch.equal(
        model.image_backbone.vit.blocks[0].mlp.fc1.weight,
        state['image_backbone.vit.blocks.0.mlp.fc1.weight'],
    )


def test_runner_style_load_from_fits_resolution_and_queues(tmp_path: Path) -> None:
    """What tools/test.py does for zero-shot: MMEngine's load_checkpoint, non-strict."""
    from mmengine.runner import load_checkpoint

    path, state = _pretraining_checkpoint(tmp_path, queue_size=16)
    model = _retrieval_model(queue_size=8, img_size=48, seed=1)
    load_checkpoint(model, str(path), map_location='cpu')
    torch.testing.assert_close(
        model.image_backbone.vit.pos_embed, _bicubic_grid(state['image_backbone.vit.pos_embed'], 3)
    )
    assert torch.equal(model.itm_head.fc.weight, state['itm_head.fc.weight'])
    assert model.losses['itc'].image_queue.shape == (EMBED, 8)


# ------------------------------------------------------------------------------ prepare module
def _prepare_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    return parser.parse_args(list(argv))


def _images_on_disk(root: Path, images: list[dict], skip: tuple[int, ...] = ()) -> None:
    for i, im in enumerate(images):
        if i in skip:
            continue
        path = root / im['filepath'] / im['filename']
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(path, format='JPEG')


def test_prepare_writes_albef_files(tmp_path: Path, capsys) -> None:
    images = _coco_images()
    images[1]['sentences'].append({'raw': ' ?! '})  # empty after cleaning: caption skipped
    images.insert(3, {'filename': 'x.jpg', 'split': 'val', 'sentences': 'oops'})  # bad entry
    ann = _write_karpathy(tmp_path / 'dataset_coco.json', images)
    _images_on_disk(tmp_path / 'images', images, skip=(3, 7))  # images[7]: test image 17 missing
    out = tmp_path / 'out'
    rc = prepare.run(
        _prepare_args(
            '--karpathy', str(ann), '--out-dir', str(out), '--image-root', str(tmp_path / 'images')
        )
    )
    printed = capsys.readouterr().out
    assert rc == 0
    train = json.loads((out / 'coco_train.json').read_text())
    val = json.loads((out / 'coco_val.json').read_text())
    test = json.loads((out / 'coco_test.json').read_text())
    assert [e['image_id'] for e in train] == [11, 11, 12, 12, 12, 13, 16]  # train + restval
    assert all(isinstance(e['caption'], str) for e in train)
    assert train[0] == {
        'image': 'train2014/COCO_train2014_000000000011.jpg',
        'caption': 'Image 11, Caption 0.',
        'image_id': 11,
    }
    assert [e['image_id'] for e in val] == [14]
    assert [(e['image_id'], len(e['caption'])) for e in test] == [(15, 2)]
    assert 'coco_train.json: 4 images (train + restval), 7 captions' in printed
    assert 'skipped 2 images' in printed and 'skipped 1 captions' in printed
    assert 'images[3]' in printed and '"sentences" must be a non-empty list' in printed
    assert 'image file not found' in printed and 'empty after cleaning' in printed
    # the written files read like Karpathy's file read directly (without the skipped entries)
    where = dict(data_root=str(tmp_path), image_root='images')
    direct = RetrievalDataset(str(ann), split='test', skip_bad_samples=True, **where)
    albef = RetrievalDataset(str(out / 'coco_test.json'), **where)
    assert albef.captions == direct.captions and len(albef) == len(direct) == 1
    assert len(CaptionDataset(str(out / 'coco_train.json'))) == 7


def test_prepare_options_and_failures(tmp_path: Path, capsys) -> None:
    images = _coco_images()
    ann = _write_karpathy(tmp_path / 'dataset_coco.json', images)
    out = tmp_path / 'out'
    rc = prepare.run(
        _prepare_args(
            '--karpathy',
            str(ann),
            '--out-dir',
            str(out),
            '--no-restval',
            '--name',
            'mini',
            '--image-prefix',
            'coco',
            '--splits',
            'train,test',
        )
    )
    assert rc == 0 and sorted(p.name for p in out.iterdir()) == [
        'mini_test.json',
        'mini_train.json',
    ]
    train = json.loads((out / 'mini_train.json').read_text())
    assert [e['image_id'] for e in train] == [11, 11, 13]
    assert train[0]['image'] == 'coco/train2014/COCO_train2014_000000000011.jpg'
    assert 'skipped nothing' in capsys.readouterr().out
    # --strict: the first bad entry stops the run and nothing is written
    images[2]['split'] = 'dev'
    _write_karpathy(ann, images)
    strict_out = tmp_path / 'strict'
    rc = prepare.run(
        _prepare_args('--karpathy', str(ann), '--out-dir', str(strict_out), '--strict')
    )
    assert rc == 1 and not strict_out.exists()
    assert 'images[2]: "split" must be one of' in capsys.readouterr().out
    # not a Karpathy file / missing file / a split with nothing usable
    (tmp_path / 'list.json').write_text('[]')
    for bad in (tmp_path / 'list.json', tmp_path / 'missing.json'):
        assert prepare.run(_prepare_args('--karpathy', str(bad), '--out-dir', str(out))) == 1
    flickr = _write_karpathy(
        tmp_path / 'dataset_flickr30k.json',
        [{'filename': '1.jpg', 'split': 'train', 'imgid': 0, 'sentences': _sentences('a dog')}],
        'flickr30k',
    )
    assert prepare.run(_prepare_args('--karpathy', str(flickr), '--out-dir', str(out))) == 1
    assert "no usable entry for split(s) ['val', 'test']" in capsys.readouterr().out
    assert isinstance(prepare.HELP, str) and '\n' not in prepare.HELP


# ------------------------------------------------------------------------------------- configs
def test_gpu_configs_carry_albefs_retrieval_recipe() -> None:
    """ALBEF's configs/Retrieval_{coco,flickr}.yaml: 384 px, batch 32 x 8, lr 1e-5 -> 1e-6,
    5 / 10 epochs, k_test 256 / 128, queue 65,536, momentum 0.995, alpha 0.4; ITC + ITM only."""
    from mmengine.config import Config

    coco = Config.fromfile(str(CONFIGS / 'albef_vit-b16-bert-base_8xb32_coco-retrieval-5e.py'))
    flickr = Config.fromfile(
        str(CONFIGS / 'albef_vit-b16-bert-base_8xb32_flickr30k-retrieval-10e.py')
    )
    zero = Config.fromfile(str(CONFIGS / 'albef_vit-b16-bert-base_zeroshot_flickr30k-1k.py'))
    for cfg, epochs, k in ((coco, 5, 256), (flickr, 10, 128)):
        model = cfg.model
        assert model.image_backbone.img_size == 384 and model.mlm_head is None
        assert sorted(model.losses) == ['itc', 'itm']
        assert model.losses.itc.use_image_ids and model.losses.itm.use_image_ids
        assert model.losses.itc.queue_size == 65536 and model.momentum == 0.995
        assert model.alpha == 0.4 and cfg.train_dataloader.batch_size == 32
        assert cfg.optim_wrapper.optimizer.lr == 1e-5
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.02
        assert cfg.param_scheduler[0].eta_min == 1e-6 and cfg.param_scheduler[0].end == epochs
        assert cfg.train_cfg.max_epochs == epochs
        assert cfg.val_cfg.k == cfg.test_cfg.k == k and cfg.test_cfg.score == 'itm'
        assert cfg.train_dataloader.dataset.type == 'CaptionDataset'
        assert cfg.test_dataloader.dataset.type == 'RetrievalDataset'
        assert any(h.type == 'AlphaWarmupHook' for h in cfg.custom_hooks)
    assert coco.test_evaluator.prefix == 'coco_5k_test'
    assert flickr.test_dataloader.dataset.ann_file == 'flickr30k_test.json'
    assert zero.test_dataloader.dataset.ann_file == 'flickr30k_test.json'
    assert zero.test_cfg.k == 128 and zero.test_evaluator.prefix == 'flickr30k_1k_test_zeroshot'


def test_prepare_through_the_dispatcher(tmp_path: Path) -> None:
    import prepare_data  # tools/prepare_data.py

    ann = _write_karpathy(tmp_path / 'dataset_coco.json', _coco_images())
    assert (
        prepare_data.main(['retrieval', '--karpathy', str(ann), '--out-dir', str(tmp_path / 'out')])
        == 0
    )
    assert (tmp_path / 'out' / 'coco_test.json').is_file()


# ------------------------------------------------------- Runner runs on the real coco_mini images
def _options(root: Path) -> list[str]:
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def _build(config: Path, options: list[str]):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(dict(o.split('=', 1) for o in options))
    init_default_scope('vlreg')
    return cfg


def _brute_rank(scores: list[float], gt: set[int]) -> int:
    """Pessimistic rank of the best ground truth: candidates scoring higher, plus the other
    candidates that tie with it."""
    return min(
        sum(s > scores[g] for s in scores)
        + sum(s == scores[g] for c, s in enumerate(scores) if c not in gt)
        for g in gt
    )


@torch.no_grad()
def _recomputed_recalls(config: Path, options: list[str], checkpoint: Path, k: int) -> dict:
    """TR / IR recall@1/5/10 from the model itself, query by query, outside the retrieval loop."""
    from mmengine.runner import Runner, load_checkpoint

    from vlreg.registry import MODELS

    cfg = _build(config, options)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(checkpoint), map_location='cpu')
    model.eval()
    image_tokens, image_embed, texts, owner = [], [], [], []
    for batch in Runner.build_dataloader(cfg.test_dataloader):
        data = model.data_preprocessor(batch, False)['inputs']
        offset = sum(t.shape[0] for t in image_tokens)  # images of the earlier batches
        tokens, embed = model.encode_image(data['image'])
        image_tokens.append(tokens)
        image_embed.append(embed)
        for ids, mask, b in zip(
            data['caption_ids'],
            data['caption_attention_mask'],
            data['caption_image_index'],
            strict=True,
        ):
            n = int(mask.sum())  # each caption alone, without the batch's padding
            texts.append(model.encode_text(ids[None, :n], mask[None, :n]))
            owner.append(offset + int(b))
    image_tokens, image_embed = torch.cat(image_tokens), torch.cat(image_embed)
    text_embed = torch.cat([e for _, e in texts])
    sim = image_embed @ text_embed.t()

    def itm(i: int, t: int) -> float:
        tokens, _ = texts[t]
        mask = torch.ones(tokens.shape[:2], dtype=torch.long)
        return float(model.itm_logits(tokens, mask, image_tokens[i : i + 1])[0, 1])

    n_img, n_txt = sim.shape
    txt_ranks, img_ranks = [], []
    for i in range(n_img):
        top = sim[i].topk(k).indices.tolist()
        scores = [itm(i, t) if t in top else -100.0 for t in range(n_txt)]
        txt_ranks.append(_brute_rank(scores, {t for t in range(n_txt) if owner[t] == i}))
    for t in range(n_txt):
        top = sim[:, t].topk(k).indices.tolist()
        scores = [itm(i, t) if i in top else -100.0 for i in range(n_img)]
        img_ranks.append(_brute_rank(scores, {owner[t]}))
    out = {}
    for name, ranks in (('txt', txt_ranks), ('img', img_ranks)):
        for cut in (1, 5, 10):
            out[f'{name}_r{cut}'] = 100.0 * sum(r < cut for r in ranks) / len(ranks)
    return out


def _tiny_pretraining_checkpoint(tmp_path: Path, options: list[str]) -> Path:
    """A 'pre-training' checkpoint of the tiny config's sizes: with MLM heads, another queue size
    and 32 px instead of 64 px (as ALBEF's 256 px pre-training before 384 px fine-tuning)."""
    from vlreg.registry import MODELS

    cfg = _build(TINY, options)
    model_cfg = cfg.model
    model_cfg.image_backbone.img_size = 32
    model_cfg.mlm_head = dict(type='MLMHead')
    model_cfg.losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=48),
        itm=dict(type='ITMLoss'),
        mlm=dict(type='MLMLoss'),
    )
    torch.manual_seed(11)
    model = MODELS.build(model_cfg)
    path = tmp_path / 'tiny_pretrain.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': model.state_dict()}, path)
    return path


def _check_metrics(metrics: dict, prefix: str, recomputed: dict) -> None:
    protocol = metrics[f'{prefix}/protocol']
    assert 'itc top-8 -> itm' in protocol and '20 images x 100 texts' in protocol
    for key, value in recomputed.items():
        assert metrics[f'{prefix}/{key}'] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
def test_zero_shot_and_fine_tune_on_coco_mini(tmp_path: Path) -> None:
    root = shared_path('coco_mini_train2017')
    options = _options(root)
    # the deterministic split: first 60 images train, last 20 evaluate
    from mmengine.runner import Runner

    cfg = _build(TINY, options)
    train_set = Runner.build_dataloader(cfg.train_dataloader).dataset
    train_images = {train_set.get_data_info(i)['img_path'] for i in range(len(train_set))}
    test_set = Runner.build_dataloader(cfg.test_dataloader).dataset
    assert len(train_images) == 60 and len(test_set) == 20 and len(test_set.captions) == 100
    assert not train_images & {test_set.get_data_info(i)['img_path'] for i in range(20)}

    pretrain = _tiny_pretraining_checkpoint(tmp_path, options)
    # zero-shot: evaluate the pre-training checkpoint as it is
    out_json = tmp_path / 'zeroshot.json'
    metrics = test_tool.main(
        [
            str(TINY_ZEROSHOT),
            str(pretrain),
            '--work-dir',
            str(tmp_path / 'zs'),
            '--out',
            str(out_json),
            '--cfg-options',
            *options,
        ]
    )
    _check_metrics(
        metrics,
        'coco_mini_test_zeroshot',
        _recomputed_recalls(TINY_ZEROSHOT, options, pretrain, k=8),
    )
    written = json.loads(out_json.read_text())
    assert 'itc top-8 -> itm' in written['metrics']['coco_mini_test_zeroshot/protocol']

    # fine-tuning from the pre-training checkpoint, then the test split
    work = tmp_path / 'ft'
    train_tool.main(
        [
            str(TINY),
            '--work-dir',
            str(work),
            '--cfg-options',
            *options,
            f'model.pretrained={pretrain}',
        ]
    )
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    tuned = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    start = torch.load(pretrain, map_location='cpu')['state_dict']
    assert not any(k.startswith('mlm_head') for k in tuned)
    assert tuned['losses.itc.idx_queue'].max() >= 0  # image ids were queued
    # started from the checkpoint (lr <= 1e-5 for 18 steps moves weights by < 1e-3) and moved
    key = 'text_backbone.embeddings.word_embeddings.weight'
    delta = (tuned[key] - start[key]).abs().max()
    assert 0 < delta < 1e-3
    metrics = test_tool.main(
        [
            str(TINY),
            str(checkpoint),
            '--work-dir',
            str(tmp_path / 'test'),
            '--cfg-options',
            *options,
        ]
    )
    _check_metrics(metrics, 'coco_mini_test', _recomputed_recalls(TINY, options, checkpoint, k=8))
