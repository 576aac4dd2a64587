# ALBEF's SNLI-VE model (ALBEFClassifier, MLP head 768-768-3 on the fused [CLS]) at the ALBEF base
# sizes; the leaf sets image_backbone.img_size from its data set's image_size. See
# configs/tasks/snli_ve/albef_vit-b16-bert-base_8xb32_snli-ve-5e.py.
# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
vocab_size = 30522
model = dict(
    type='ALBEFClassifier',
    image_backbone=dict(
        type='TimmViTBackbone', model_name='vit_base_patch16_224', drop_path_rate=0.0
    ),  # as ALBEF: none
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
    head=dict(type='MLPClassifierHead', mlp_hidden=768),
    num_classes=3,
    pretrained=pretrained_ckpt,
    # ALBEF's VE.yaml: momentum distillation (EMA copies of encoders and head, momentum 0.995),
    # loss (1 - alpha) CE + alpha soft-CE(momentum logits), alpha 0.4 from the first step
    # (warm_up: False, so no AlphaWarmupHook)
    distill=True,
    momentum=0.995,
    alpha=0.4,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)
