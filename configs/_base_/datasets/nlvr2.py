# NLVR2 (official release): data/nlvr2/{train,dev,test1}.json (json lines) and the images in
# data/nlvr2/images/{train/<directory>,dev,test1}/<identifier minus its last field>-img{0,1}.png.
data_root = 'data/nlvr2'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
meta_keys = (
    'sample_idx',
    'image_id',
    'ori_image_id',
    'img_path',
    'img_path2',
    'caption',
    'ann_index',
    'label',
    'identifier',
)
# ALBEF's NLVR2 transform, drawn independently for the two images.
train_pipeline = [
    dict(type='LoadImagePair'),
    dict(
        type='ApplyToImagePair',
        transforms=[
            dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
            dict(type='HorizontalFlip', p=0.5),
            dict(type='RandAugment', num_ops=2, magnitude=7),
        ],
    ),
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
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(
        type='NLVR2Dataset',
        data_root=data_root,
        ann_file='train.json',
        image_root='images/train',
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
        type='NLVR2Dataset',
        data_root=data_root,
        ann_file='dev.json',
        image_root='images/dev',
        skip_bad_samples=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='NLVR2Dataset',
        data_root=data_root,
        ann_file='test1.json',
        image_root='images/test1',
        skip_bad_samples=True,
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(type='AccuracyMetric')
test_evaluator = val_evaluator
