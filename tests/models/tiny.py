"""A tiny ALBEF for unit tests (sizes from ENVIRONMENT.md's advice: 64 px, depth 2, width 64)."""

from __future__ import annotations

import torch

from vlreg.models import ALBEFPretrainer

VOCAB = 120


def tiny_model(
    losses: dict | None = None,
    momentum: float | None = 0.995,
    queue_size: int = 16,
    itm: bool = True,
    mlm: bool = True,
    seed: int = 0,
    dropout: float = 0.1,
    grad_checkpointing: bool = False,
    **extra,
) -> ALBEFPretrainer:
    torch.manual_seed(seed)
    if losses is None:
        losses = dict(itc=dict(type='ITCLoss', embed_dim=32, queue_size=queue_size))
        if itm:
            losses['itm'] = dict(type='ITMLoss')
        if mlm:
            losses['mlm'] = dict(type='MLMLoss')
    return ALBEFPretrainer(
        image_backbone=dict(
            type='TimmViTBackbone',
            model_name='vit_tiny_patch16_224',
            img_size=64,
            embed_dim=64,
            depth=2,
            num_heads=2,
            grad_checkpointing=grad_checkpointing,
        ),
        text_backbone=dict(
            type='BertTextBackbone',
            vocab_size=VOCAB,
            hidden_size=64,
            num_layers=2,
            num_heads=2,
            intermediate_size=128,
            max_position_embeddings=32,
            dropout=dropout,
            attn_dropout=dropout,
            grad_checkpointing=grad_checkpointing,
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
            grad_checkpointing=grad_checkpointing,
        ),
        embed_dim=32,
        losses=losses,
        momentum=momentum,
        itm_head=dict(type='ITMHead') if itm else None,
        mlm_head=dict(type='MLMHead') if mlm else None,
        **extra,
    )


def tiny_batch(batch: int = 4, length: int = 9, seed: int = 1) -> dict[str, torch.Tensor]:
    """Images, ids ([CLS]=2 first, padding 0 at the end of some rows) and fixed MLM masks."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=g)
    ids[:, 0] = 2
    lengths = torch.randint(4, length + 1, (batch,), generator=g)
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    ids = ids * mask
    chosen = (torch.rand(batch, length, generator=g) < 0.3) & mask.bool()
    chosen[:, 0] = False
    chosen[torch.arange(batch), lengths - 1] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    mlm_ids = torch.where(chosen, torch.full_like(ids, 4), ids)
    image = torch.randn(batch, 3, 64, 64, generator=g)
    return dict(
        image=image, input_ids=ids, attention_mask=mask, mlm_input_ids=mlm_ids, mlm_labels=labels
    )
