"""Every shipped config parses and builds its model (pretrained paths dropped where the files are absent)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from vlreg.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    p for p in glob.glob(str(ROOT / 'configs' / '**' / '*.py'), recursive=True) if '_base_' not in p
)


def _drop_missing_weights(cfg: dict) -> None:
    for value in cfg.values():
        if isinstance(value, dict):
            path = value.get('pretrained')
            if isinstance(path, str) and not path.startswith('pkg://') and not os.path.exists(path):
                value['pretrained'] = None
            _drop_missing_weights(value)


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'vlreg'
    for key in ('train_dataloader', 'optim_wrapper', 'train_cfg', 'val_evaluator'):
        assert key in cfg, f'{path} has no {key}'
    _drop_missing_weights(
        dict(model=cfg.model)
    )  # the model's own pretrained= too (checked at build)
    init_default_scope('vlreg')
    model = MODELS.build(cfg.model)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n > 0
    from vlreg.models import ALBEFPretrainer

    if 'vit-b16-bert-base' in path and isinstance(model, ALBEFPretrainer):  # ALBEF's sizes
        assert model.image_backbone.width == 768 and model.text_backbone.width == 768
        assert len(model.fusion.layer) == 6
        # pre-training at 256 px with a 65,536 queue; ALBEF fine-tunes its downstream tasks at 384 px
        pretraining = os.sep + 'tasks' + os.sep not in path
        side = 256 if pretraining else 384
        assert model.image_backbone.num_patches == (side // 16) ** 2, (path, side)
        if pretraining:
            assert model.losses['itc'].queue_size == 65536
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None


def _vit_configs(cfg: dict, where: str = 'model') -> list[tuple[str, dict]]:
    """Every TimmViTBackbone config nested in ``cfg``, with where it sits."""
    found = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            if value.get('type') == 'TimmViTBackbone':
                found.append((f'{where}.{key}', value))
            found += _vit_configs(value, f'{where}.{key}')
    return found


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_albef_recipes_have_no_stochastic_depth(path):
    """ALBEF's ViT (models/vit.py, built by every model_*.py without a drop_path_rate) runs with
    drop_path_rate 0, and so does every shipped config (all follow ALBEF's recipe)."""
    cfg = Config.fromfile(path)
    vits = _vit_configs(cfg.model)
    if cfg.model.get('image_backbone', {}).get('type') == 'TimmCNNBackbone':
        assert (
            not vits
        )  # the real-photo configs' image encoder is a CNN: no ViT, no stochastic depth
        assert cfg.model.image_backbone.get('drop_path_rate', 0.0) == 0.0, path
        return
    assert vits, f'{path}: no TimmViTBackbone found'
    for where, vit in vits:
        for key in ('drop_path_rate', 'drop_rate', 'attn_drop_rate', 'proj_drop_rate'):
            assert vit.get(key, 0.0) == 0.0, f'{path}: {where}.{key} = {vit[key]} (ALBEF: 0)'


def test_vit_backbone_default_has_no_stochastic_depth():
    from vlreg.models.backbones import TimmViTBackbone

    vit = TimmViTBackbone(
        model_name='vit_tiny_patch16_224', img_size=32, embed_dim=32, depth=2, num_heads=2
    ).vit
    assert all(
        isinstance(block.drop_path1, torch.nn.Identity)
        and isinstance(block.drop_path2, torch.nn.Identity)
        for block in vit.blocks
    )
