# Weakly supervised grounding on RefCOCO+ (PAPER.md "Downstream protocols"; ALBEF's Grounding.py and
# configs/Grounding.yaml), 8 GPUs x 32 = global batch 256:
#   torchrun --nproc_per_node=8 tools/train.py \
#       'configs/tasks/grounding/albef_vit-b16-bert-base_8xb32_refcoco+-5e.py' --launcher pytorch
#
# Fine-tuning sees the referring expressions and their images, never a box: ITC (image-id-aware
# targets, momentum distillation, queue 65,536) + ITM with hard negatives, no MLM; the expressions
# of one image are never negatives of each other (use_image_ids). 384 px, AdamW lr 1e-5, weight
# decay 0.02 (none on biases / norms), 5 epochs, cosine to 1e-6 (ALBEF: warm-up lr = lr, i.e. no
# warm-up), alpha 0.4 ramped over the first epoch, momentum 0.995. ALBEF's grounding transform:
# a 384 x 384 resize (no crop), flip, RandAugment(2, 7) (its flip ignores "left" / "right" in the
# expression; CaptionAwareHorizontalFlip is the caption-aware alternative).
#
# Evaluation after every epoch (ALBEF keeps the best val checkpoint) and at test time, by
# GradCAMGroundingLoop: Grad-CAM of the ITM match logit on fusion layer index 2 (= BERT layer 8,
# ALBEF's block_num), heads and text tokens averaged ('all', [CLS] included, as ALBEF's code),
# bicubic upsampling to the original image, every detector proposal scored by sum inside /
# sqrt(area), accuracy = IoU >= 0.5 (GroundingAccuracyMetric thr), per split (val, testA, testB).
#
# Weights: `pretrained_ckpt` is a LOCAL vlreg pre-training checkpoint (its 256 px position
# embeddings are interpolated to 384 px when loaded). Data: the refer toolkit's RefCOCO+
# (refs(unc).p + instances.json) and ALBEF's detections (dets.json), converted once by
#   python tools/prepare_data.py refcoco --refs data/refcoco+/refs(unc).p \
#       --instances data/refcoco+/instances.json --proposals data/refcoco+/dets.json \
#       --out-dir data/refcoco+ --image-prefix train2014
# which writes data/refcoco+/refcoco+_{train,val,testA,testB}.json and refcoco+_proposals.json;
# the COCO train2014 images are expected in data/coco/images/train2014/. Use --proposals gt for
# ALBEF's second setting (ground-truth COCO boxes of the image as proposals).
_base_ = [
    '../../_base_/models/albef_base.py',
    '../../_base_/default_runtime.py',
]

# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth'
data_root = 'data/refcoco+'
image_root = '../coco/images'  # relative to data_root; "image" entries start with train2014/
ann_prefix = 'refcoco+'
proposal_file = 'refcoco+_proposals.json'
image_size = 384
bert_path = 'data/pretrained/bert-base-uncased'  # a local BERT folder: only its vocabulary is read
tokenizer = dict(type='BertTokenizer', path=bert_path)
max_epochs = 5
lr = 1e-5
batch_size = 32
# GroundingDataset's metainfo (vlreg.datasets.downstream.GROUNDING_META_KEYS)
meta_keys = ('sample_idx', 'image_id', 'ori_image_id', 'img_path', 'caption', 'ann_index',
             'ori_shape', 'img_shape', 'flipped', 'ori_gt_bboxes', 'proposals', 'categories',
             'ref_id', 'split', 'width', 'height')
# Grad-CAM grounding protocol (GradCAMGroundingLoop's options; ALBEF's values)
grounding_protocol = dict(layer=2, head_reduction='mean', tokens='all', area_exponent=0.5,
                          interpolation='bicubic')

model = dict(
    image_backbone=dict(img_size=image_size),
    mlm_head=None,
    losses=dict(
        itc=dict(use_image_ids=True, queue_size=65536),
        itm=dict(use_image_ids=True),
        mlm=None,
    ),
    pretrained=pretrained_ckpt,
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
_grounding = dict(type='GroundingDataset', data_root=data_root, image_root=image_root,
                  skip_bad_samples=True)
_eval = dict(_grounding, proposal_file=proposal_file, pipeline=test_pipeline)
train_dataloader = dict(
    batch_size=batch_size, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'), drop_last=True,
    dataset=dict(_grounding, ann_file=f'{ann_prefix}_train.json', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(_eval, ann_file=f'{ann_prefix}_val.json'))
test_dataloader = dict(
    batch_size=batch_size, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(_eval, ann_file=f'{ann_prefix}_{split}.json') for split in ('val', 'testA', 'testB')]))
val_evaluator = dict(type='GroundingAccuracyMetric', thr=0.5)
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       bypass_duplicate=True),
)
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='GradCAMGroundingValLoop', **grounding_protocol)
test_cfg = dict(type='GradCAMGroundingLoop', **grounding_protocol)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=1,
                                     save_best='grounding/acc', rule='greater'))
auto_scale_lr = dict(base_batch_size=256, enable=False)
