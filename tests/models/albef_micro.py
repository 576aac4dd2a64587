"""The micro ALBEF of ../shared/data/albef_reference as a vlreg model, shared by the reference tests."""

from __future__ import annotations

import torch

from vlreg.models import ALBEFPretrainer
from vlreg.models.utils.albef_convert import convert_albef_state_dict
from vlreg.models.utils.checkpoint import load_state_dict_file

ATOL = 1e-5  # the fixture README's absolute tolerance on floats


def micro_model(dropout: float = 0.1) -> ALBEFPretrainer:
    """The fixture's sizes (albef_micro_config.json) as a vlreg config; ``dropout`` of the text and
    fusion layers (0 makes a train step deterministic)."""
    return ALBEFPretrainer(
        image_backbone=dict(
            type='TimmViTBackbone',
            model_name='vit_base_patch16_224',
            img_size=64,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=4,
        ),
        text_backbone=dict(
            type='BertTextBackbone',
            vocab_size=30522,
            hidden_size=64,
            num_layers=2,
            num_heads=2,
            intermediate_size=128,
            max_position_embeddings=64,
            dropout=dropout,
            attn_dropout=dropout,
        ),
        fusion=dict(
            type='BertFusion',
            hidden_size=64,
            encoder_width=64,
            num_layers=2,
            num_heads=2,
            intermediate_size=128,
            layer_offset=2,
            dropout=dropout,
            attn_dropout=dropout,
        ),
        embed_dim=64,
        losses=dict(
            itc=dict(type='ITCLoss', embed_dim=64, queue_size=32),
            itm=dict(type='ITMLoss'),
            mlm=dict(type='MLMLoss'),
        ),
        momentum=0.995,
    )


def load_micro(model: ALBEFPretrainer, path: str) -> ALBEFPretrainer:
    """Convert ALBEF's checkpoint ``path`` and load it; only the tied MLM decoder weight may be
    absent (torch.save stored it once)."""
    state = convert_albef_state_dict(load_state_dict_file(path), fusion_layer=2)
    result = model.load_state_dict(state, strict=False)
    assert all('mlm_head' in k and k.endswith('decoder.weight') for k in result.missing_keys), (
        result.missing_keys
    )
    assert result.unexpected_keys == []
    return model


def close(x: torch.Tensor, ref: torch.Tensor, atol: float = ATOL) -> None:
    assert x.shape == ref.shape, (x.shape, ref.shape)
    diff = (x.detach().float() - ref.float()).abs().max().item()
    assert diff <= atol, f'max |diff| {diff:.3g} > {atol}'
