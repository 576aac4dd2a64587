# RefCOCO+ for weakly supervised grounding (ALBEF's Grounding.py): the refer toolkit's RefCOCO+
# (refs(unc).p + instances.json) and ALBEF's detections (dets.json), converted once by
# tools/prepare_data.py refcoco (see configs/tasks/grounding/albef_vit-b16-bert-base_8xb32_refcoco+-5e.py).
data_root = 'data/refcoco+'
image_root = '../coco/images'  # relative to data_root; "image" entries start with train2014/
ann_prefix = 'refcoco+'
proposal_file = 'refcoco+_proposals.json'
image_size = 384
bert_path = 'data/pretrained/bert-base-uncased'  # a local BERT folder: only its vocabulary is read
tokenizer = dict(type='BertTokenizer', path=bert_path)
batch_size = 32
# GroundingDataset's metainfo (vlreg.datasets.downstream.GROUNDING_META_KEYS)
meta_keys = (
    'sample_idx',
    'image_id',
    'ori_image_id',
    'img_path',
    'caption',
    'ann_index',
    'ori_shape',
    'img_shape',
    'flipped',
    'ori_gt_bboxes',
    'proposals',
    'categories',
    'ref_id',
    'split',
    'width',
    'height',
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
_grounding = dict(
    type='GroundingDataset', data_root=data_root, image_root=image_root, skip_bad_samples=True
)
_eval = dict(_grounding, proposal_file=proposal_file, pipeline=test_pipeline)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(_grounding, ann_file=f'{ann_prefix}_train.json', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(_eval, ann_file=f'{ann_prefix}_val.json'),
)
test_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(_eval, ann_file=f'{ann_prefix}_{split}.json')
            for split in ('val', 'testA', 'testB')
        ],
    ),
)
val_evaluator = dict(type='GroundingAccuracyMetric', thr=0.5)
test_evaluator = val_evaluator
