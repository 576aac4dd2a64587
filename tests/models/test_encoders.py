"""The shared ALBEF encoder base: build-time ``pretrained`` check, one momentum mechanism, one
checkpoint loader (numbers checked against plain formulas, not the code under test)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vlreg.models import ALBEFPretrainer
from vlreg.models.encoders import ALBEFEncoderModel
from vlreg.models.tasks import (
    ALBEFClassifier,
    ALBEFPairClassifier,
    ALBEFTextAssignmentPretrainer,
    ALBEFVQA,
)
from vlreg.models.utils.checkpoint import load_checkpoint_into

D = 32
ENCODERS = dict(
    image_backbone=dict(
        type='TimmViTBackbone',
        model_name='vit_tiny_patch16_224',
        img_size=32,
        embed_dim=D,
        depth=1,
        num_heads=2,
    ),
    text_backbone=dict(
        type='BertTextBackbone',
        vocab_size=60,
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
        num_layers=1,
        num_heads=2,
        intermediate_size=2 * D,
        layer_offset=1,
    ),
)


def _classifier(**kwargs) -> ALBEFClassifier:
    return ALBEFClassifier(**ENCODERS, head=dict(type='MLPClassifierHead'), num_classes=3, **kwargs)


def test_hierarchy_is_at_most_two_levels_below_the_encoder_base() -> None:
    for cls in (
        ALBEFPretrainer,
        ALBEFClassifier,
        ALBEFPairClassifier,
        ALBEFVQA,
        ALBEFTextAssignmentPretrainer,
    ):
        depth = cls.__mro__.index(ALBEFEncoderModel)
        assert 1 <= depth <= 2, (cls.__name__, depth)


@pytest.mark.parametrize(
    'build',
    [
        lambda p: ALBEFPretrainer(
            **ENCODERS,
            losses=dict(itc=dict(type='ITCLoss', embed_dim=16)),
            embed_dim=16,
            mlm_head=None,
            pretrained=p,
        ),
        lambda p: _classifier(pretrained=p),
    ],
    ids=['pretrainer', 'classifier'],
)
def test_missing_pretrained_file_fails_at_build(tmp_path: Path, build) -> None:
    missing = str(tmp_path / 'no_such_epoch_30.pth')
    with pytest.raises(
        FileNotFoundError, match=r"model\.pretrained='.*no_such_epoch_30\.pth': no such file"
    ):
        build(missing)


def test_one_momentum_mechanism_declares_copies_ema_and_restart() -> None:
    torch.manual_seed(0)
    model = _classifier(distill=True, momentum=0.9)
    assert model.momentum_pairs == (
        ('image_backbone', 'image_backbone_m'),
        ('text_backbone', 'text_backbone_m'),
        ('fusion', 'fusion_m'),
        ('head', 'head_m'),
    )
    online, shadow = model.head.mlp[-1].weight, model.head_m.mlp[-1].weight
    assert not shadow.requires_grad and torch.equal(online, shadow)
    with torch.no_grad():
        online.add_(1.0)
    before = shadow.clone()
    model.momentum_update()
    torch.testing.assert_close(shadow, 0.9 * before + 0.1 * online.detach())
    # a load whose missing keys are no momentum keys leaves the copies; one that lacks them restarts
    assert not model.restart_momentum(['head.mlp.0.weight'])
    assert not torch.equal(shadow, online)
    assert model.restart_momentum(['head_m.mlp.0.weight'])
    assert torch.equal(shadow, online)
    plain = _classifier(distill=False)
    assert not plain.has_momentum and not plain.restart_momentum()
    with pytest.raises(RuntimeError, match='no momentum copies'):
        plain.part('head', momentum=True)


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 1)


def test_load_checkpoint_into_keeps_prefixes_skips_suffixes_and_reports(tmp_path: Path) -> None:
    path = tmp_path / 'w.pth'
    state = {
        'module.a.weight': torch.full((2, 2), 3.0),
        'module.a.bias': torch.full((2,), 4.0),
        'b.weight': torch.full((1, 2), 5.0),
        'extra.x': torch.zeros(1),
    }
    torch.save({'state_dict': state}, path)
    model = _Two()
    b_bias = model.b.bias.detach().clone()
    missing, unexpected = load_checkpoint_into(
        model, str(path), skip_suffixes=('.bias',), strict=False
    )
    assert missing == [] and unexpected == ['extra.x']  # skipped keys are not reported missing
    assert torch.equal(model.a.weight, torch.full((2, 2), 3.0))
    assert not torch.equal(model.a.bias, torch.full((2,), 4.0))
    assert torch.equal(model.b.bias, b_bias) and torch.equal(
        model.b.weight, torch.full((1, 2), 5.0)
    )
    # strict: only what expect_missing allows may be missing; keep= filters by prefix first
    model = _Two()
    with pytest.raises(KeyError, match='missing from the file'):
        load_checkpoint_into(model, str(path), keep=('a.',))
    del model.b  # without b the model is exactly a.*
    assert load_checkpoint_into(model, str(path), keep=('a.',)) == ([], [])
    assert torch.equal(model.a.bias, torch.full((2,), 4.0))
    with pytest.raises(KeyError, match=r'no c\.\* tensor of this model'):
        load_checkpoint_into(model, str(path), keep=('c.',))
