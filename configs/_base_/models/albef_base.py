# ALBEF base (PAPER.md): ViT-B/16 at 256 px + BERT-base split 6 text / 6 fusion layers, 256-d projections,
# 65,536-entry queues, momentum 0.995. Pretrained weights come from LOCAL paths: set
# model.image_backbone.pretrained (a DeiT-base / ViT-B/16 state dict) and model.text_backbone.pretrained /
# model.fusion.pretrained / model.mlm_head.pretrained (a bert-base-uncased folder).
embed_dim = 256
model = dict(
    type='ALBEFPretrainer',
    image_backbone=dict(
        type='TimmViTBackbone', model_name='vit_base_patch16_224', img_size=256, drop_path_rate=0.0
    ),  # ALBEF's ViT: no stochastic depth
    text_backbone=dict(
        type='BertTextBackbone',
        vocab_size=30522,
        hidden_size=768,
        num_layers=6,
        num_heads=12,
        intermediate_size=3072,
    ),
    fusion=dict(
        type='BertFusion',
        hidden_size=768,
        encoder_width=768,
        num_layers=6,
        num_heads=12,
        intermediate_size=3072,
        layer_offset=6,
    ),
    embed_dim=embed_dim,
    itm_head=dict(type='ITMHead'),
    mlm_head=dict(type='MLMHead'),
    losses=dict(
        itc=dict(type='ITCLoss', embed_dim=embed_dim, queue_size=65536),
        itm=dict(type='ITMLoss'),
        mlm=dict(type='MLMLoss'),
    ),
    temp=0.07,
    momentum=0.995,
    alpha=0.4,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)
