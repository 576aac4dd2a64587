# ALBEF's VQA model (ALBEFVQA: the answer decoder initialised from the fusion layers) at the ALBEF
# base sizes; the leaf sets image_backbone.img_size and the head's answer tokenizer / length from its
# data set. See configs/tasks/vqa/albef_vit-b16-bert-base_8xb32_vqa-8e.py.
# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
answer_list = 'data/vqa/answer_list.json'
vocab_size = 30522
model = dict(
    type='ALBEFVQA',
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
    head=dict(
        type='AnswerDecoderHead',
        num_layers=6,
        num_heads=12,
        intermediate_size=3072,
        k_test=128,
        label_smoothing=0.0,
        count_first_token_twice=False,
    ),
    # head.tokenizer / head.answer_max_length: the leaf's, from its data set (the answer tokens)
    answer_list=answer_list,
    distill=True,
    momentum=0.995,
    alpha=0.4,
    init_head_from_fusion=True,
    pretrained=pretrained_ckpt,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)
