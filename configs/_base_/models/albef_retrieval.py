# ALBEF's retrieval model (model_retrieval.py) at the ALBEF base sizes of ./albef_base.py, fine-tuned at
# the data set's resolution (384 px; leaves set image_backbone.img_size from the data set's image_size;
# the ViT position embedding is interpolated from the 256 px pre-training checkpoint): ITC with
# image-id-aware targets (every caption of the same image is a positive, in the batch and in the queue)
# + momentum distillation, ITM with hard negatives that never share the image; no MLM.
# Weights: `pretrained_ckpt` (or --cfg-options model.pretrained=...) is a LOCAL vlreg pre-training
# checkpoint; everything the model has is loaded (encoders, momentum copies, projections, ITM head,
# temperature, and the ITC queues as ALBEF does; model.pretrained_queues='reset' restarts them).
pretrained_ckpt = (
    'work_dirs/albef_pretrain/epoch_30.pth'  # placeholder: your pre-training checkpoint
)
embed_dim = 256
queue_size = 65536
vocab_size = 30522
model = dict(
    type='ALBEFPretrainer',
    # ALBEF's model_retrieval.py builds its ViT without stochastic depth
    image_backbone=dict(
        type='TimmViTBackbone', model_name='vit_base_patch16_224', drop_path_rate=0.0
    ),  # img_size: the leaf's, from its data set
    text_backbone=dict(
        type='BertTextBackbone',
        vocab_size=vocab_size,
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
    mlm_head=None,
    losses=dict(
        itc=dict(type='ITCLoss', embed_dim=embed_dim, queue_size=queue_size, use_image_ids=True),
        itm=dict(type='ITMLoss', use_image_ids=True),
    ),
    temp=0.07,
    momentum=0.995,
    alpha=0.4,
    pretrained=pretrained_ckpt,
    pretrained_queues='load',
    data_preprocessor=dict(type='VLDataPreprocessor'),
)
