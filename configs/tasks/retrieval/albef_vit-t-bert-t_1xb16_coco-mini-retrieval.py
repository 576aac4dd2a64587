# Retrieval fine-tuning + evaluation on CPU in seconds: the COCO recipe (the bases of
# albef_vit-b16-bert-base_8xb32_coco-retrieval-5e.py: ITC with
# image-id-aware targets + momentum distillation, ITM with same-image-free hard negatives, no MLM;
# ITC top-k then ITM re-rank) with a tiny model on the 80 real COCO images of
# ../shared/data/coco_mini_train2017 (ALBEF json, 5 captions each). Deterministic split by file
# order: the first 60 images train (300 captions, one sample per caption), the last 20 images
# (100 captions) are the val and test set. This checks the plumbing, not retrieval quality.
# Starts from random weights; pass a tiny checkpoint of the same sizes with
# --cfg-options model.pretrained=work_dirs/.../epoch_N.pth (any resolution, any queue size).
_base_ = [
    '../../_base_/models/albef_retrieval.py',
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/schedules/retrieval_5e.py',
    '../../_base_/default_runtime.py',
    '../../_base_/tiny_task.py',
]

data_root = '../shared/data/coco_mini_train2017'
ann_file = 'captions.json'
image_size = {{_base_.tiny_image_size}}
tokenizer = {{_base_.tiny_tokenizer}}
embed_dim = 32
k_test = 8
max_epochs = 1
batch_size = 16

model = dict(
    image_backbone={{_base_.tiny_image_backbone}},
    text_backbone={{_base_.tiny_text_backbone}},
    fusion={{_base_.tiny_fusion}},
    embed_dim=embed_dim,
    losses=dict(itc=dict(embed_dim=embed_dim, queue_size=32)),  # a multiple of the batch
    pretrained=None,
)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='PackInputs'),
]
_data = dict(data_root=data_root, ann_file=ann_file, image_root='')
_loader = dict(num_workers=0, persistent_workers=False, pin_memory=False)
train_dataloader = dict(
    batch_size=batch_size,
    **_loader,
    # one sample per caption, images in file order: 300 = the first 60 images
    dataset=dict(**_data, indices=300, pipeline=train_pipeline),
)
# one sample per image: the last 20 images
_eval_set = dict(**_data, indices=list(range(60, 80)), pipeline=test_pipeline)
val_dataloader = dict(batch_size=16, **_loader, dataset=_eval_set)
test_dataloader = dict(batch_size=16, **_loader, dataset=_eval_set)
val_evaluator = dict(prefix='coco_mini_val')
test_evaluator = dict(prefix='coco_mini_test')
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
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
val_cfg = dict(k=k_test, itm_batch_size=64)
test_cfg = dict(k=k_test, itm_batch_size=64)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='coco_mini_val/r_mean',
        rule='greater',
    ),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
