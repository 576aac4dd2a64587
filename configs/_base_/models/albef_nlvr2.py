# ALBEF's NLVR2 model (ALBEFPairClassifier with the pair fusion BertPairFusion) at the ALBEF base
# sizes; the leaf sets image_backbone.img_size from its data set's image_size. See
# configs/tasks/nlvr2/albef_vit-b16-bert-base_8xb16_nlvr2-10e.py.

# placeholder: your text-assignment (or plain) pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
vocab_size = 30522
model = dict(
    type='ALBEFPairClassifier',
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
        type='BertPairFusion',
        hidden_size=768,
        encoder_width=768,
        num_layers=6,
        num_heads=12,
        intermediate_size=3072,
        layer_offset=6,
        share_key_value=True,
    ),
    head=dict(type='MLPClassifierHead', mlp_hidden=768),
    num_classes=2,
    pretrained=pretrained_ckpt,
    # ALBEF's NLVR.yaml: momentum distillation (EMA copies of encoders and head, momentum 0.995),
    # loss (1 - alpha) CE + alpha soft-CE(momentum logits), alpha 0.4 ramped from 0 over the first
    # epoch (warm_up: True; the AlphaWarmupHook of the NLVR2 configs)
    distill=True,
    momentum=0.995,
    alpha=0.4,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)
