"""The user-plugin story: ``projects/example_plugin`` registers components into vlreg's registries
from outside vlreg, and its config trains and evaluates through the real Runner.

The fast tests check each plugin component against a hand computation; the slow test runs
``tools/train.py``'s ``main`` in-process on the plugin config (loaded by ``custom_imports``).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from tests.models.loss_context import stub_context
from vlreg import registry as vr
from vlreg.models.losses import check_loss

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / 'projects' / 'example_plugin'
PLUGIN_CONFIG = PLUGIN_DIR / 'configs' / 'example_synthetic_tiny.py'


@pytest.fixture(scope='module')
def plugin() -> Iterator[ModuleType]:
    """The ``example_plugin`` package, imported the way a user does: its directory on sys.path."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(PLUGIN_DIR))
        yield importlib.import_module('example_plugin')


def _load_train_tool() -> ModuleType:
    """``tools/train.py`` as a module (``tools`` is not a package)."""
    spec = importlib.util.spec_from_file_location(
        '_vlreg_train_tool_projects', ROOT / 'tools' / 'train.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _brute_force_rank(scores: torch.Tensor, ground_truth: list[int]) -> int:
    """1-based rank of the best ground truth, ties placed after non-ground truths (pessimistic)."""
    order = sorted(range(scores.shape[0]), key=lambda c: (-float(scores[c]), c in ground_truth))
    return 1 + min(order.index(g) for g in ground_truth)


# --- registration ---------------------------------------------------------------------------------
def test_plugin_registers_into_vlreg_registries(plugin: ModuleType) -> None:
    expected = {
        vr.LOSSES: 'TextUniformityLoss',
        vr.BACKBONES: 'ConvStemViTBackbone',
        vr.AUGMENTATIONS: 'JitterBrightness',
        vr.METRICS: 'MedianRankMetric',
    }
    for registry, name in expected.items():
        cls = registry.get(name)
        assert cls is getattr(plugin, name), (registry.name, name)
        assert cls.__module__.startswith('example_plugin.')  # lives outside vlreg
    # the augmentation stands in a pipeline by name through TRANSFORMS' fallback
    assert vr.TRANSFORMS.get('JitterBrightness') is plugin.JitterBrightness
    assert 'JitterBrightness' not in vr.TRANSFORMS.module_dict
    assert Path(plugin.__file__).resolve().is_relative_to(PLUGIN_DIR)


# --- the components, one by one -------------------------------------------------------------------
def test_text_uniformity_loss_matches_formula(plugin: ModuleType) -> None:
    loss = vr.LOSSES.build(dict(type='TextUniformityLoss', t=2.0, loss_weight=0.5))
    assert loss.requires == ('text_embed',)
    assert [p for p in loss.parameters() if p.requires_grad] == []
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1).requires_grad_()
    out = loss(stub_context(text_embed=z))
    zd = z.detach()
    assert set(out) == {'loss_text_uniformity', 'text_mean_cos'}
    total, count, cos = 0.0, 0, 0.0
    for i in range(5):
        for j in range(5):
            if i != j:
                total += math.exp(-2.0 * float(((zd[i] - zd[j]) ** 2).sum()))
                cos += float(zd[i] @ zd[j])
                count += 1
    expected = 0.5 * math.log(total / count)
    assert float(out['loss_text_uniformity'].detach()) == pytest.approx(expected, rel=1e-5)
    assert float(out['text_mean_cos']) == pytest.approx(cos / count, rel=1e-5)
    out['loss_text_uniformity'].backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_text_uniformity_loss_extremes(plugin: ModuleType) -> None:
    loss = plugin.TextUniformityLoss(t=2.0)
    collapsed = torch.nn.functional.normalize(torch.ones(4, 3), dim=-1)
    assert float(loss(stub_context(text_embed=collapsed))['loss_text_uniformity']) == pytest.approx(
        0.0, abs=1e-6
    )
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # ||z_i - z_j||^2 = 4
    assert float(loss(stub_context(text_embed=antipodal))['loss_text_uniformity']) == pytest.approx(
        -8.0, abs=1e-5
    )
    single = loss(stub_context(text_embed=torch.tensor([[1.0, 0.0]])))
    assert float(single['loss_text_uniformity']) == 0.0
    # its declared needs pass the pretrainer's build-time check; a misspelt one fails naming it
    check_loss('uniformity', loss, heads={}, has_momentum=False)
    loss.requires = ('text_embeds',)
    with pytest.raises(
        ValueError,
        match=r'losses\.uniformity \(TextUniformityLoss\) requires '
        r"features \['text_embeds'\]",
    ):
        check_loss('uniformity', loss, heads={}, has_momentum=False)


def test_conv_stem_backbone_interface(plugin: ModuleType) -> None:
    torch.manual_seed(0)
    backbone = vr.BACKBONES.build(
        dict(
            type='ConvStemViTBackbone',
            img_size=(64, 96),
            patch_size=16,
            embed_dim=32,
            depth=1,
            num_heads=2,
            stem_width=8,
        )
    )
    assert backbone.width == 32
    assert backbone.grid_size == (4, 6)
    assert backbone.num_patches == 24
    image = torch.randn(2, 3, 64, 96)
    tokens = backbone(image)
    assert tokens.shape == (2, 1 + 24, 32)
    assert torch.isfinite(tokens).all()
    # the final LayerNorm: every token has zero mean over its features
    assert tokens.mean(-1).abs().max() < 1e-4
    # [CLS] attends to the patches: a (non-constant) function of it reaches the conv stem
    (tokens[:, 0] @ torch.randn(32)).sum().backward()
    assert backbone.stem[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='got images of size'):
        backbone(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match='power of two'):
        plugin.ConvStemViTBackbone(img_size=96, patch_size=12)


def test_conv_stem_backbone_fills_albef_image_slot(plugin: ModuleType) -> None:
    model = vr.MODELS.build(
        dict(
            type='ALBEFPretrainer',
            image_backbone=dict(
                type='ConvStemViTBackbone',
                img_size=32,
                patch_size=8,
                embed_dim=32,
                depth=1,
                num_heads=2,
                stem_width=8,
            ),
            text_backbone=dict(
                type='BertTextBackbone',
                vocab_size=50,
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
                num_layers=1,
                num_heads=2,
                intermediate_size=64,
                layer_offset=1,
            ),
            embed_dim=16,
            momentum=None,
            mlm_head=None,
            losses=dict(
                itc=dict(type='ITCLoss', embed_dim=16, queue_size=0),
                uni=dict(type='TextUniformityLoss'),
            ),
        )
    )
    tokens, embed = model.encode_image(torch.randn(3, 3, 32, 32))
    assert tokens.shape == (3, 1 + 16, 32) and embed.shape == (3, 16)
    assert torch.allclose(embed.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_jitter_brightness(plugin: ModuleType) -> None:
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    jitter = vr.TRANSFORMS.build(dict(type='JitterBrightness', max_delta=0.5, p=1.0))
    np.random.seed(3)
    out = jitter({'img': img.copy()})
    factor = out['brightness_factor']
    assert 0.5 <= factor <= 1.5 and factor != 1.0
    expected = np.clip(np.rint(img.astype(np.float32) * factor), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out['img'], expected)
    assert out['img'].dtype == np.uint8
    never = plugin.JitterBrightness(max_delta=0.5, p=0.0)({'img': img.copy()})
    assert never['brightness_factor'] == 1.0
    np.testing.assert_array_equal(never['img'], img)
    with pytest.raises(TypeError, match='uint8'):
        jitter({'img': img.astype(np.float32)})


def test_median_rank_metric_against_brute_force(plugin: ModuleType) -> None:
    # 3 images, 6 texts (two per image); -1 everywhere but a few scores, so ties occur
    scores_i2t = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.3, -1.0, -1.0],
            [0.5, 0.8, 0.1, 0.7, -1.0, -1.0],
            [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0],
        ]
    )
    scores_t2i = torch.tensor(
        [
            [0.9, 0.2, 0.1],
            [0.3, 0.1, 0.8],
            [0.1, 0.5, 0.4],
            [0.2, 0.9, 0.3],
            [0.7, 0.6, 0.5],
            [0.0, 0.0, 0.0],
        ]
    )
    img2txt, txt2img = [[0, 1], [2, 3], [4, 5]], [0, 0, 1, 1, 2, 2]
    metric = vr.METRICS.build(dict(type='MedianRankMetric'))
    metric.process(
        None,
        [
            dict(
                scores_i2t=scores_i2t,
                scores_t2i=scores_t2i,
                img2txt=img2txt,
                txt2img=txt2img,
                protocol='itc',
            )
        ],
    )
    result = metric.evaluate(1)
    txt = [_brute_force_rank(scores_i2t[i], img2txt[i]) for i in range(3)]
    img = [_brute_force_rank(scores_t2i[t], [txt2img[t]]) for t in range(6)]
    assert txt == [1, 2, 5] and img == [1, 2, 1, 1, 3, 3]  # the hand-made case is what we think
    assert result == {
        'rank/txt_medr': 2.0,
        'rank/img_medr': 1.5,
        'rank/txt_meanr': pytest.approx(8 / 3),
        'rank/img_meanr': pytest.approx(11 / 6),
    }


# --- through the Runner ---------------------------------------------------------------------------
@pytest.mark.slow
def test_example_plugin_trains_and_evaluates_through_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    train = _load_train_tool()
    runners: list[Any] = []

    build = train.build_runner

    def recording_build(cfg: Any) -> Any:
        """The real Runner, remembered so the test can look inside after ``main`` returns."""
        runner = build(cfg)
        runners.append(runner)
        return runner

    monkeypatch.setattr(train, 'build_runner', recording_build)

    from vlreg.models.data_preprocessor import VLDataPreprocessor

    factors: list[float] = []
    preprocess = VLDataPreprocessor.forward

    def spy_preprocess(self: Any, data: dict, training: bool = False) -> dict:
        out = preprocess(self, data, training)
        if training:
            factors.extend(s.metainfo.get('brightness_factor') for s in out['data_samples'])
        return out

    monkeypatch.setattr(VLDataPreprocessor, 'forward', spy_preprocess)

    plugin = importlib.import_module('example_plugin')
    evaluations: list[dict] = []
    process = plugin.MedianRankMetric.process

    def spy_process(self: Any, data_batch: Any, data_samples: list) -> None:
        evaluations.extend(data_samples)
        process(self, data_batch, data_samples)

    monkeypatch.setattr(plugin.MedianRankMetric, 'process', spy_process)

    batch, images = 4, 8  # 8 images x 2 captions / batch 4 = 4 iterations
    train.main(
        [
            str(PLUGIN_CONFIG),
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            f'train_dataloader.dataset.num_images={images}',
            f'train_dataloader.batch_size={batch}',
            'val_dataloader.dataset.num_images=6',
            'val_dataloader.batch_size=6',
            'experiment_name=example_plugin_test',
        ]
    )
    iters = images * 2 // batch
    assert len(runners) == 1
    runner = runners[0]
    assert runner.iter == iters

    # the plugin was imported by the config's custom_imports
    assert runner.cfg.custom_imports['imports'] == ['example_plugin']
    assert 'example_plugin' in sys.modules

    # the custom backbone is the one in the model (online and momentum copies)
    model = runner.model
    assert type(model.image_backbone) is plugin.ConvStemViTBackbone
    assert type(model.image_backbone_m) is plugin.ConvStemViTBackbone
    assert not any(type(m).__name__ == 'TimmViTBackbone' for m in model.modules())
    assert model.image_backbone.num_patches == 36  # 96 px / 16

    # the custom loss was computed, logged and summed into the total at every iteration
    assert list(model.losses) == ['itc', 'itm', 'mlm', 'text_uniformity']
    scalars = runner.message_hub.log_scalars
    uniformity = scalars['train/loss_text_uniformity'].data[0]
    assert len(uniformity) == iters
    assert np.isfinite(uniformity).all()
    assert (uniformity < 0).all() and (uniformity >= -0.1 * 4 * 2.0).all()  # weight 0.1, t 2
    parts = sum(scalars[f'train/loss_{k}'].data[0] for k in ('itc', 'itm', 'mlm'))
    np.testing.assert_allclose(scalars['train/loss'].data[0], parts + uniformity, rtol=1e-5)

    # the custom transform ran in the training pipeline on every sample
    assert type(runner.train_dataloader.dataset.pipeline.transforms[0]) is plugin.JitterBrightness
    assert len(factors) == iters * batch
    assert all(isinstance(f, float) and 0.7 <= f <= 1.3 for f in factors)
    assert any(f != 1.0 for f in factors)

    # the custom metric ran next to RetrievalMetric, and its numbers are right
    metrics = [type(m).__name__ for m in runner.val_loop.evaluator.metrics]
    assert metrics == ['RetrievalMetric', 'MedianRankMetric']
    assert len(evaluations) == 1
    ev = evaluations[0]
    txt = [
        _brute_force_rank(ev['scores_i2t'][i], ev['img2txt'][i]) for i in range(len(ev['img2txt']))
    ]
    img = [
        _brute_force_rank(ev['scores_t2i'][t], [ev['txt2img'][t]])
        for t in range(len(ev['txt2img']))
    ]
    assert len(txt) == 6 and len(img) == 30
    assert scalars['val/rank/txt_medr'].current() == pytest.approx(float(np.median(txt)))
    assert scalars['val/rank/img_medr'].current() == pytest.approx(float(np.median(img)))
    assert scalars['val/rank/img_meanr'].current() == pytest.approx(float(np.mean(img)))
    # consistent with RetrievalMetric's recall on the same scores
    r1 = 100.0 * sum(r == 1 for r in txt) / len(txt)
    assert scalars['val/retrieval/txt_r1'].current() == pytest.approx(r1)
