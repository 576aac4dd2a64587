# SNLI-VE (official release, https://github.com/necla-ml/SNLI-VE):
# data/snli_ve/snli_ve_{train,dev,test}.jsonl and the Flickr30K images in data/snli_ve/flickr30k-images/.
data_root = 'data/snli_ve'
image_root = 'flickr30k-images'
train_ann, val_ann, test_ann = 'snli_ve_train.jsonl', 'snli_ve_dev.jsonl', 'snli_ve_test.jsonl'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
meta_keys = (
    'sample_idx',
    'image_id',
    'ori_image_id',
    'img_path',
    'caption',
    'ann_index',
    'label',
    'gold_label',
    'premise',
    'pair_id',
)
# ALBEF's VE transform: RandomResizedCrop(384, 0.5-1) + flip + RandAugment(2, 7); test: resize.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(
        type='SNLIVEDataset',
        data_root=data_root,
        ann_file=train_ann,
        image_root=image_root,
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
        type='SNLIVEDataset',
        data_root=data_root,
        ann_file=val_ann,
        image_root=image_root,
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
        type='SNLIVEDataset',
        data_root=data_root,
        ann_file=test_ann,
        image_root=image_root,
        skip_bad_samples=True,
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(type='AccuracyMetric')
test_evaluator = val_evaluator
