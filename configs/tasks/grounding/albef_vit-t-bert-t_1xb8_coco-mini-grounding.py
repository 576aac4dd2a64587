# Weakly supervised grounding on CPU in seconds: the RefCOCO+ recipe
# (albef_vit-b16-bert-base_8xb32_refcoco+-5e.py) shrunk to a tiny ALBEF on the 80 real COCO images
# of ../shared/data/coco_mini_train2017. Expressions = category names ("dog", "dining table"):
# one sample per (image, category) of grounding.json (GroundingDataset expressions='categories'),
# the category's boxes as ground truth and all the image's boxes as proposals. Fine-tuning (ITC +
# ITM, no boxes) reads 16 samples from images 0-39; evaluation grounds 16 samples of images 40-79.
# This checks the plumbing (data -> weak fine-tuning -> Grad-CAM box choice -> accuracy), not
# accuracy. Starts from random weights (model.pretrained=None).
#   python tools/train.py configs/tasks/grounding/albef_vit-t-bert-t_1xb8_coco-mini-grounding.py
#   python tools/test.py configs/tasks/grounding/albef_vit-t-bert-t_1xb8_coco-mini-grounding.py \
#       work_dirs/albef_vit-t-bert-t_1xb8_coco-mini-grounding/epoch_1.pth
# The refer-format path (tools/prepare_data.py refcoco output) is exercised by
# tests/engine/test_grounding_loops.py on a fixture built from the same images.
# the bases of albef_vit-b16-bert-base_8xb32_refcoco+-5e.py (inheritance stays two levels deep)
_base_ = [
    '../../_base_/models/albef_retrieval.py',
    '../../_base_/datasets/refcoco.py',
    '../../_base_/schedules/grounding_5e.py',
    '../../_base_/default_runtime.py',
    '../../_base_/tiny_task.py',
]

data_root = '../shared/data/coco_mini_train2017'
ann_file = 'grounding.json'
image_size = {{_base_.tiny_image_size}}
tokenizer = {{_base_.tiny_tokenizer}}
max_epochs = 1
batch_size = 8
embed_dim = 32
meta_keys = {{_base_.meta_keys}}
# a 2-layer fusion encoder: explain its first layer (the last one cannot be explained)
gradcam_layer = 0

model = dict(
    image_backbone={{_base_.tiny_image_backbone}},
    text_backbone={{_base_.tiny_text_backbone}},
    fusion={{_base_.tiny_fusion}},
    embed_dim=embed_dim,
    losses=dict(itc=dict(embed_dim=embed_dim, queue_size=64)),
    pretrained=None,
)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
# GroundingDataset lists the (image, category) samples image by image: 302 samples, the first 150
# from images 0-39. Every 9th sample spreads a batch over several images (ITM needs a negative of
# another image in every batch).
_dataset = dict(
    _delete_=True,
    type='GroundingDataset',
    data_root=data_root,
    ann_file=ann_file,
    expressions='categories',
)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(_dataset, indices=list(range(0, 144, 9)), pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_dataset, indices=list(range(150, 294, 9)), pipeline=test_pipeline),
)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    )
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(layer=gradcam_layer)  # the rest of ALBEF's protocol: the schedule base's
test_cfg = dict(layer=gradcam_layer)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='grounding/acc',
        rule='greater',
    ),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
