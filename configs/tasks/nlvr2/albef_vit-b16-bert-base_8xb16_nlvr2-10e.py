# NLVR2 fine-tuning (PAPER.md "Downstream protocols"; ALBEF's configs/NLVR.yaml): 384 px, batch 16
# per GPU x 8, AdamW lr 2e-5, weight decay 0.02, 10 epochs, cosine to 1e-6, MLP head 768-768-2 on
# the fused [CLS].
#
# The fusion is ALBEF's NLVR2 encoder (BertPairFusion): each of the 6 fusion layers becomes two
# blocks, block 2i cross-attends to image 0 (left), block 2i+1 to image 1 (right); the two
# cross-attentions of a pair share their key / value projections. A single-image pre-training
# checkpoint fills both blocks of a pair from the same fusion layer
# (BertPairFusion.convert_single_state).
#
# Weights: `pretrained_ckpt` is a LOCAL checkpoint: ALBEF first runs 1 epoch of text-assignment
# pre-training (3-way: the text describes image 0, image 1, or neither) from the 4M checkpoint;
# without that step, point it at the pre-training checkpoint directly (the pair fusion is then
# remapped from the single-image fusion). Only image_backbone.* / text_backbone.* / fusion.* are
# read (weights-only).
#
# Data (official NLVR2 release): data/nlvr2/{train,dev,test1}.json (json lines) and the images in
# data/nlvr2/images/{train/<directory>,dev,test1}/<identifier minus its last field>-img{0,1}.png.
_base_ = ['../../_base_/default_runtime.py']

# placeholder: your text-assignment (or plain) pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
data_root = 'data/nlvr2'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
vocab_size = 30522
max_epochs = 10
lr = 2e-5
meta_keys = ('sample_idx', 'image_id', 'ori_image_id', 'img_path', 'img_path2', 'caption',
             'ann_index', 'label', 'identifier')

model = dict(
    type='ALBEFPairClassifier',
    image_backbone=dict(type='TimmViTBackbone', model_name='vit_base_patch16_224',
                        img_size=image_size, drop_path_rate=0.0),  # as ALBEF: none
    text_backbone=dict(type='BertTextBackbone', vocab_size=vocab_size, hidden_size=768,
                       num_layers=6, num_heads=12, intermediate_size=3072),
    fusion=dict(type='BertPairFusion', hidden_size=768, encoder_width=768, num_layers=6,
                num_heads=12, intermediate_size=3072, layer_offset=6, share_key_value=True),
    head=dict(type='MLPClassifierHead', mlp_hidden=768),
    num_classes=2,
    pretrained=pretrained_ckpt,
    # ALBEF's NLVR.yaml: momentum distillation (EMA copies of encoders and head, momentum 0.995),
    # loss (1 - alpha) CE + alpha soft-CE(momentum logits), alpha 0.4 ramped from 0 over the first
    # epoch (warm_up: True; AlphaWarmupHook below)
    distill=True,
    momentum=0.995,
    alpha=0.4,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)

# ALBEF's NLVR2 transform, drawn independently for the two images.
train_pipeline = [
    dict(type='LoadImagePair'),
    dict(type='ApplyToImagePair', transforms=[
        dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
        dict(type='HorizontalFlip', p=0.5),
        dict(type='RandAugment', num_ops=2, magnitude=7)]),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImagePair'),
    dict(type='ApplyToImagePair', transforms=[dict(type='Resize', size=image_size)]),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'), drop_last=True,
    dataset=dict(type='NLVR2Dataset', data_root=data_root, ann_file='train.json',
                 image_root='images/train', skip_bad_samples=True, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='NLVR2Dataset', data_root=data_root, ann_file='dev.json',
                 image_root='images/dev', skip_bad_samples=True, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='NLVR2Dataset', data_root=data_root, ann_file='test1.json',
                 image_root='images/test1', skip_bad_samples=True, pipeline=test_pipeline))
val_evaluator = dict(type='AccuracyMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    # the key / value projections are shared within a pair of blocks: count them once
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       bypass_duplicate=True),
)
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
custom_hooks = [dict(type='RNGStateHook'), dict(type='AlphaWarmupHook', alpha=0.4)]
default_hooks = dict(checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=1,
                                     save_best='accuracy/acc', rule='greater'))
auto_scale_lr = dict(base_batch_size=128, enable=False)
