# COCO retrieval, Karpathy split (113K train images, 5K val, 5K test) in ALBEF's json format, one file
# per split:
#   python tools/prepare_data.py retrieval --karpathy data/coco/dataset_coco.json \
#       --out-dir data/coco --name coco
# writes coco_train.json (train + restval, one entry per caption, with image ids), coco_val.json
# and coco_test.json (one entry per image, all its captions); ALBEF's released json files have the
# same format. Images: data/coco/images/{train2014,val2014}/. To read Karpathy's file directly
# instead, set ann_file='dataset_coco.json' and split='train' / 'val' / 'test' on the datasets.
data_root = 'data/coco'
image_root = 'images'
train_ann, val_ann, test_ann = 'coco_train.json', 'coco_val.json', 'coco_test.json'
image_size = 384  # also the model's img_size (the leaves link them)
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
batch_size = 32

# ALBEF's retrieval transforms: RandomResizedCrop(384, 0.5-1, bicubic) + flip + RandAugment(2, 7)
# without colour ops; test: resize to 384 x 384. Captions: 30 tokens in training and evaluation.
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
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(
        type='CaptionDataset',
        data_root=data_root,
        ann_file=train_ann,
        image_root=image_root,
        max_words=30,
        skip_bad_samples=True,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='RetrievalDataset',
        data_root=data_root,
        ann_file=val_ann,
        image_root=image_root,
        max_words=30,
        pipeline=test_pipeline,
    ),
)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file=test_ann))
# the metric prefixes name the data set and split: coco_5k_val/txt_r1, ...
val_evaluator = dict(type='RetrievalMetric', prefix='coco_5k_val')
test_evaluator = dict(type='RetrievalMetric', prefix='coco_5k_test')
