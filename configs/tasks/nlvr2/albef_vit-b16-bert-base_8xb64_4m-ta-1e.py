# NLVR2's text-assignment (TA) pre-training (PAPER.md: "text-assignment pre-training (1 epoch,
# 3-way) before fine-tuning"; ALBEF's Pretrain_nlvr.py): the pair fusion of ALBEFPairClassifier
# learns, on the pre-training image-caption data, whether a caption describes image 0, image 1 or
# neither of a pair made from the batch (hard negatives by image-image similarity). Its checkpoint
# then initialises albef_vit-b16-bert-base_8xb16_nlvr2-10e.py
# (model.pretrained=work_dirs/<this>/epoch_1.pth): the pair fusion is loaded as is, the 3-way head
# and vision_proj are dropped.
#
# Our reading / choices where ALBEF's yaml is not quoted in PAPER.md: 256 px (the pre-training
# resolution), batch 64 per GPU x 8, lr 2e-5 cosine to 1e-6, weight decay 0.02, TA head Linear(768,
# 3) (mlp_hidden=0). Weights: `pretrained_ckpt` is the single-image pre-training checkpoint (its
# fusion is expanded to the pair layout, layer i -> blocks 2i and 2i+1).
_base_ = ['./albef_vit-b16-bert-base_8xb16_nlvr2-10e.py']

# placeholder: the 4M (single-image) pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
data_root = 'data/albef_4m'
ann_files = ['coco.json', 'vg.json', 'cc3m_train.json', 'cc3m_val.json', 'sbu.json']
image_size = 256
max_epochs = 1

model = dict(
    type='ALBEFTextAssignmentPretrainer',
    image_backbone=dict(img_size=image_size),
    head=dict(mlp_hidden=0),
    num_classes=3,
    embed_dim=256,
    pretrained=pretrained_ckpt,
    distill=False,  # ALBEF's TA step (model_pretrain_nlvr.py) has no momentum distillation
)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='Tokenize', tokenizer={{_base_.tokenizer}}, max_length=30),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='CaptionDataset',
                data_root=data_root,
                ann_file=f,
                max_words=30,
                skip_bad_samples=True,
                pipeline=train_pipeline,
            )
            for f in ann_files
        ],
    ),
)
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs + 1
)
# TA is a pre-training step: no NLVR2 evaluation here (fine-tune, then evaluate)
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
custom_hooks = [dict(type='RNGStateHook')]  # no distillation weight to warm up
default_hooks = dict(
    checkpoint=dict(
        _delete_=True, type='VLCheckpointHook', interval=1, max_keep_ckpts=1, save_last=True
    )
)
auto_scale_lr = dict(base_batch_size=512, enable=False)
