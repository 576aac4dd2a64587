"""Soft masks, their visualisation (tool and training hook) and the Grad-CAM pointing evaluation."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.models.test_mutation_guards import reference_gradcam
from vlreg.evaluation.pointing import PointingMetric, box_chance, peak_location, pointing_hit
from vlreg.models.utils.softmask import (
    apply_soft_mask,
    content_words,
    minmax_normalise,
    resolve_fusion_layer,
    soft_mask_from_cam,
    upsample_map,
    word_rows_mean,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')
sys.path.insert(0, str(ROOT / 'tools'))


# ------------------------------------------------------------------------------------ soft masks
def test_soft_mask_range_and_monotone():
    torch.manual_seed(0)
    cam = torch.rand(5, 49) * 3
    for floor in (0.0, 0.2):
        mask = soft_mask_from_cam(cam, floor=floor)
        assert mask.shape == cam.shape
        assert mask.min() >= floor and mask.max() <= 1.0
        # larger Grad-CAM -> smaller mask (non-increasing along each sample's sorted map)
        order = cam.argsort(dim=1)
        assert (mask.gather(1, order).diff(dim=1) <= 1e-6).all()
    mask = soft_mask_from_cam(cam)
    peak, low = cam.argmax(1), cam.argmin(1)
    rows = torch.arange(5)
    assert torch.allclose(mask[rows, peak], torch.zeros(5))  # the most relevant: damped most
    assert torch.allclose(mask[rows, low], torch.ones(5))
    expected = 1 - (cam - cam.amin(1, keepdim=True)) / (
        cam.amax(1, keepdim=True) - cam.amin(1, keepdim=True)
    )
    assert torch.allclose(mask, expected, atol=1e-6)


def test_soft_mask_constant_map_and_no_nan():
    cam = torch.stack([torch.zeros(16), torch.full((16,), 2.5)])
    mask = soft_mask_from_cam(cam)
    assert torch.equal(mask, torch.ones(2, 16))
    nan_cam = torch.tensor([[float('nan'), 1.0, 0.0]])
    assert not soft_mask_from_cam(nan_cam).isnan().any()
    assert torch.equal(minmax_normalise(torch.zeros(3, 4)), torch.zeros(3, 4))


def test_soft_mask_sharpness_and_strength():
    cam = torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0]])
    assert torch.allclose(soft_mask_from_cam(cam, sharpness=2.0), 1 - cam**2)
    # sharper: damps the strongest patches only, so every mask value is at least as large
    assert (soft_mask_from_cam(cam, sharpness=2.0) >= soft_mask_from_cam(cam) - 1e-7).all()
    assert (soft_mask_from_cam(cam, sharpness=0.5) <= soft_mask_from_cam(cam) + 1e-7).all()
    assert torch.allclose(soft_mask_from_cam(cam, strength=0.5), 1 - 0.5 * cam)
    assert torch.allclose(soft_mask_from_cam(cam, strength=0.0), torch.ones_like(cam))
    assert torch.allclose(soft_mask_from_cam(cam, floor=0.3), (1 - cam).clamp(min=0.3))
    cam.requires_grad_(True)
    assert not soft_mask_from_cam(cam).requires_grad  # detached, as in the paper
    for bad in (dict(floor=1.5), dict(sharpness=0.0), dict(strength=-1.0)):
        with pytest.raises(ValueError):
            soft_mask_from_cam(cam, **bad)


def test_apply_soft_mask_upsample_and_words():
    tokens = torch.randn(2, 5, 3)
    mask = torch.tensor([[1.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    out = apply_soft_mask(tokens, mask)
    assert torch.equal(out[:, 0], tokens[:, 0])  # [CLS] kept
    assert torch.allclose(out[:, 1:], tokens[:, 1:] * mask[..., None])
    up = upsample_map(torch.arange(4.0).reshape(1, 2, 2), (8, 6))
    assert up.shape == (1, 8, 6) and up.min() >= 0 and up.max() <= 3
    assert upsample_map(torch.ones(3, 3), 12).shape == (12, 12)
    assert content_words(['[CLS]', 'a', 'sky', '##scraper', '.', 'red', '[PAD]']) == [
        ('a', [1]),
        ('skyscraper', [2, 3]),
        ('red', [5]),
    ]
    cam = torch.arange(12.0).reshape(4, 3)
    assert torch.equal(word_rows_mean(cam, [[1], [2, 3]]), torch.stack([cam[1], cam[2:4].mean(0)]))
    assert resolve_fusion_layer(2, 6) == (2, None)
    layer, warning = resolve_fusion_layer(2, 2)
    assert layer == 0 and 'does not exist' in warning  # the last layer's word rows are all zero


# ------------------------------------------------------------------------------------ pointing
def test_peak_and_pointing_hit():
    cam = torch.zeros(4, 4)
    cam[1, 2] = 1.0  # patch row 1, column 2 of a 64 x 64 image: centre (40, 24)
    assert peak_location(cam, (64, 64)) == (40.0, 24.0)
    assert peak_location(cam, (32, 64)) == (40.0, 12.0)
    assert pointing_hit(cam, [32, 16, 48, 32], (64, 64))
    assert not pointing_hit(cam, [0, 0, 40, 64], (64, 64))  # x1 is exclusive
    assert pointing_hit(cam, [[0, 0, 8, 8], [36, 20, 44, 28]], (64, 64))  # any box
    assert not pointing_hit(cam, [[0, 0, 8, 8]], (64, 64))
    assert pointing_hit(cam, [0, 0, 39, 23], (64, 64), tolerance=2.0)
    assert not pointing_hit(cam, torch.zeros(0, 4), (64, 64))
    assert not pointing_hit(torch.zeros(4, 4), [0, 0, 64, 64], (64, 64))  # flat: points nowhere
    pixel_cam = torch.zeros(10, 20)
    pixel_cam[7, 3] = 2.0
    assert pointing_hit(pixel_cam, [3, 7, 4, 8]) and not pointing_hit(pixel_cam, [4, 7, 5, 8])
    assert box_chance((4, 4), [0, 0, 32, 32], (64, 64)) == 0.25


def test_object_token_rows():
    from vlreg.engine.pointing_loop import object_token_rows

    mask = torch.tensor([1, 1, 1, 1, 1, 0])
    assert object_token_rows([0, 2], 6, mask) == [1, 3]  # word-level: [CLS] first
    assert object_token_rows([3, 4], 6, mask) == [4]  # position 5 is padding
    assert object_token_rows([7], 6, mask) == []  # truncated away
    word_ids = torch.tensor([-1, 0, 1, 1, 2, -1])  # word 1 split into two pieces
    assert object_token_rows([1], 6, mask, word_ids) == [2, 3]
    assert object_token_rows([1, 2], 4, mask, word_ids) == [2, 3]  # cam has 4 rows only


def test_pointing_metric():
    metric = PointingMetric()
    metric.process(None, [dict(hits=2, total=3, chance=0.5), dict(hits=0, total=1, chance=0.1)])
    metric.process(None, [dict(hits=1, total=1, chance=0.2, skipped=1)])
    out = metric.evaluate(3)
    assert out['pointing/acc'] == pytest.approx(60.0)
    assert out['pointing/hits'] == 3 and out['pointing/total'] == 5
    assert out['pointing/chance'] == pytest.approx(16.0)
    empty = PointingMetric()
    empty.process(None, [dict(hits=0, total=0)])
    assert empty.evaluate(1) == {'pointing/acc': 0.0, 'pointing/hits': 0, 'pointing/total': 0}
    with pytest.raises(ValueError):
        PointingMetric().process(None, [dict(hits=2, total=1)])


# ------------------------------------------------------------------------------------ figure
def test_render_figure_shape():
    from vlreg.engine.visualization_hook import render_softmask_figure, stack_figures

    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cams = torch.rand(3, 4, 4)
    mask = soft_mask_from_cam(cams[1].flatten()[None])[0].reshape(4, 4)
    fig = render_softmask_figure(image, ['a', 'red', 'circle'], cams, 1, mask, title='a red circle')
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    assert fig.shape[1] > 4 * 100 and fig.shape[0] > 100
    many = render_softmask_figure(
        image, [f'w{i}' for i in range(12)], torch.rand(12, 4, 4), 0, mask, max_cols=8
    )
    assert many.shape[0] > fig.shape[0]  # 14 panels wrap onto a second row
    stacked = stack_figures([fig, many])
    assert stacked.shape[1] == max(fig.shape[1], many.shape[1])
    assert stacked.shape[0] > fig.shape[0] + many.shape[0]


# ------------------------------------------------------------------------------------ the tool
@pytest.mark.slow
def test_visualize_tool_end_to_end(tmp_path, capsys):
    import matplotlib.image as mpimg
    import visualize_softmask as tool  # tools/visualize_softmask.py

    from vlreg.apis.inference import init_model

    model = init_model(CONFIG)  # random initialisation
    ckpt = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    out = tmp_path / 'figs' / 'softmask.png'
    result = tool.main(
        [CONFIG, str(ckpt), '--image', 'synthetic:0:3', '--word-index', '1', '--out', str(out)]
    )
    printed = capsys.readouterr().out
    assert out.is_file() and str(out) in printed and repr(result['word']) in printed
    assert result['word'] == result['words'][1]
    png = mpimg.imread(str(out))
    assert png.ndim == 3 and png.shape[2] in (3, 4)
    panels = len(result['words']) + 2
    assert png.shape[1] >= min(panels, 8) * 100 and png.shape[0] >= 150
    assert result['mask'].shape == (4, 4) and 0 <= float(result['mask'].min()) <= 1
    # by text, and a word that is not there
    tool.main(
        [
            CONFIG,
            str(ckpt),
            '--image',
            'synthetic:0:3',
            '--word',
            result['words'][-1],
            '--out',
            str(tmp_path / 'b.png'),
        ]
    )
    with pytest.raises(ValueError, match='not a word'):
        tool.main(
            [
                CONFIG,
                str(ckpt),
                '--image',
                'synthetic:0:3',
                '--word',
                'zebra',
                '--out',
                str(tmp_path / 'c.png'),
            ]
        )


# ------------------------------------------------------------------------------------ the hook
def _train_cfg(work_dir: Path, hook: bool) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    # no validation: the hook then takes its batch from the train dataset, whose MaskText draws from
    # NumPy's global RNG in the main process (num_workers=0): the strictest "no side effect" case
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=100)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_last=False)
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    if hook:
        cfg.custom_hooks = list(cfg.custom_hooks) + [
            dict(type='SoftMaskVisualizationHook', interval=2, num_samples=2)
        ]
    return cfg


@pytest.mark.slow
def test_hook_logs_images_without_changing_training(tmp_path):
    from mmengine.runner import Runner

    states = {}
    for hook in (False, True):
        work = tmp_path / ('hook' if hook else 'plain')
        runner = Runner.from_cfg(_train_cfg(work, hook))
        if hook:
            calls = []
            add_image = runner.visualizer.add_image
            runner.visualizer.add_image = lambda name, image, step=0: (
                calls.append((name, image.shape, step)),
                add_image(name, image, step),
            )
        runner.train()
        states[hook] = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=True)[
            'state_dict'
        ]
    # 8 images x 2 captions / batch 4 = 4 iterations: figures after iterations 2 and 4
    assert [(c[0], c[2]) for c in calls] == [('softmask', 2), ('softmask', 4)]
    assert all(len(shape) == 3 and shape[2] == 3 and shape[0] > 200 for _, shape, _ in calls)
    files = sorted(glob.glob(str(tmp_path / 'hook' / '*' / 'vis_data' / 'vis_image' / '*.png')))
    assert [Path(f).name for f in files] == ['softmask_2.png', 'softmask_4.png']
    assert states[False].keys() == states[True].keys()
    for key, value in states[False].items():
        assert torch.equal(value, states[True][key]), f'{key} differs with the hook'


# ------------------------------------------------------------------------------------ pointing loop
@pytest.mark.slow
@pytest.mark.parametrize('word_ids', [False, True], ids=['position', 'caption_word_ids'])
def test_pointing_loop_matches_direct_recomputation(tmp_path, word_ids):
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import Runner

    from vlreg.registry import TRANSFORMS

    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    if word_ids:  # the rows come from the batch's caption_word_ids: same words, same numbers
        if TRANSFORMS.get('AnnotateWords') is None:
            pytest.skip('AnnotateWords is not available')
        pipeline = list(cfg.test_dataloader.dataset.pipeline)
        pipeline.insert(1, dict(type='AnnotateWords', tokenizer=pipeline[0]['tokenizer']))
        cfg.test_dataloader.dataset.pipeline = pipeline
    cfg.test_cfg = dict(type='GradCAMPointingLoop', num_captions=2, layer=0, pair_batch_size=3)
    cfg.test_evaluator = dict(type='PointingMetric')
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 0.0 < metrics['pointing/chance'] < 100.0

    # the same numbers, pair by pair, without the loop's batching
    model = runner.model.eval()
    dataset = runner.test_dataloader.dataset
    if word_ids:
        assert 'caption_word_ids' in dataset[0]['inputs']
    hits = total = 0
    for idx in range(len(dataset)):
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), False)
        inputs, sample = data['inputs'], data['data_samples'][0]
        for j in range(2):
            ids = inputs['caption_ids'][j : j + 1]
            mask = inputs['caption_attention_mask'][j : j + 1]
            length = int(mask.sum())
            cam, _ = reference_gradcam(model, inputs['image'], ids[:, :length], mask[:, :length], 0)
            for k, words in enumerate(sample.gt_word_indices[j]):
                rows = [w + 1 for w in words]  # word-level tokenizer: [CLS] first
                word_map = cam[0, rows].mean(0).reshape(model.image_backbone.grid_size)
                hits += pointing_hit(word_map, sample.gt_bboxes[k], inputs['image'].shape[-2:])
                total += 1
    assert metrics['pointing/total'] == total
    assert metrics['pointing/hits'] == hits
    assert metrics['pointing/acc'] == pytest.approx(100.0 * hits / total)
