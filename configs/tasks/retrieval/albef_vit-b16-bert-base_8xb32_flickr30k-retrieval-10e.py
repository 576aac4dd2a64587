# Flickr30K retrieval fine-tuning (Karpathy split: 29K train images, 1K val, 1K test), as ALBEF's
# configs/Retrieval_flickr.yaml: the COCO recipe (the same bases as
# albef_vit-b16-bert-base_8xb32_coco-retrieval-5e.py: ITC with image-id-aware targets + momentum
# distillation, ITM with hard negatives, no MLM, 384 px, batch 32 x 8, AdamW lr 1e-5, cosine to 1e-6)
# for 10 epochs, and an ITM re-rank of each query's top k = 128.
#
# Data: python tools/prepare_data.py retrieval --karpathy data/flickr30k/dataset_flickr30k.json \
#           --out-dir data/flickr30k --name flickr30k
# writes flickr30k_{train,val,test}.json with image paths relative to the image folder
# data/flickr30k/flickr30k-images/ (ALBEF's released files already start their paths with
# "flickr30k-images/": use them with image_root='').
_base_ = [
    '../../_base_/models/albef_retrieval.py',
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/schedules/retrieval_5e.py',
    '../../_base_/default_runtime.py',
]
model = dict(image_backbone=dict(img_size={{_base_.image_size}}))

data_root = 'data/flickr30k'
image_root = 'flickr30k-images'
train_ann, val_ann, test_ann = ('flickr30k_train.json', 'flickr30k_val.json', 'flickr30k_test.json')
k_test = 128
max_epochs = 10

_data = dict(data_root=data_root, image_root=image_root)
train_dataloader = dict(dataset=dict(**_data, ann_file=train_ann))
val_dataloader = dict(dataset=dict(**_data, ann_file=val_ann))
test_dataloader = dict(dataset=dict(**_data, ann_file=test_ann))
val_evaluator = dict(prefix='flickr30k_1k_val')
test_evaluator = dict(prefix='flickr30k_1k_test')
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
train_cfg = dict(max_epochs=max_epochs)
val_cfg = dict(k=k_test)
test_cfg = dict(k=k_test)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='flickr30k_1k_val/r_mean',
        rule='greater',
    ),
)
