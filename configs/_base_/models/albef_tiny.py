# A small ALBEF for CPU runs: ViT (depth 4, width 128) and a 2 + 2 layer BERT of width 128.
# The vocabulary size must match the tokenizer of the dataset config (leaf configs set it).
embed_dim = 128
# The fusion layer Grad-CAM explains (soft-masked ITM, visualisation): the first of the two (the last
# one cannot be explained: its word rows never reach the fused [CLS]). Configs that widen the fusion
# encoder set their own.
gradcam_layer = 0
model = dict(
    type='ALBEFPretrainer',
    image_backbone=dict(
        type='TimmViTBackbone',
        model_name='vit_tiny_patch16_224',
        img_size=96,
        embed_dim=128,
        depth=4,
        num_heads=4,
    ),
    text_backbone=dict(
        type='BertTextBackbone',
        vocab_size=30522,
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
    ),
    fusion=dict(
        type='BertFusion',
        hidden_size=128,
        encoder_width=128,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        layer_offset=2,
    ),
    embed_dim=embed_dim,
    itm_head=dict(type='ITMHead'),
    mlm_head=dict(type='MLMHead'),
    losses=dict(
        itc=dict(type='ITCLoss', embed_dim=embed_dim, queue_size=1024),
        itm=dict(type='ITMLoss'),
        mlm=dict(type='MLMLoss'),
    ),
    temp=0.07,
    momentum=0.995,
    alpha=0.4,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)
