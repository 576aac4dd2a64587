# ALBEF's 4M pre-training corpus (COCO + Visual Genome + SBU + CC3M) in ALBEF's json format
# ({"image": path, "caption": str or list}); download / prepare it yourself and point data_root at it.
# Evaluation during pre-training: COCO 5K Karpathy test in ALBEF's retrieval json.
data_root = 'data/albef_4m'
image_size = 256
bert_path = (
    'data/pretrained/bert-base-uncased'  # a local Hugging Face BERT folder (weights + vocab)
)
tokenizer = dict(type='BertTokenizer', path=bert_path)

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.2, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='PackInputs'),
]
ann_files = ['coco.json', 'vg.json', 'cc3m_train.json', 'cc3m_val.json', 'sbu.json']
_part = dict(
    type='CaptionDataset',
    data_root=data_root,
    max_words=30,
    skip_bad_samples=True,
    pipeline=train_pipeline,
)
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(type='ConcatDataset', datasets=[dict(_part, ann_file=f) for f in ann_files]),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='RetrievalDataset',
        data_root='data/coco',
        ann_file='coco_test.json',
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalMetric')
test_evaluator = val_evaluator

train_pipeline_softmask = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.2, 1.0)),
    dict(type='CaptionAwareHorizontalFlip', p=0.5, mode='swap'),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='ImageView', out_key='img_aug'),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='AnnotateWords', tokenizer=tokenizer, stopwords='auto'),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
train_dataset_softmask = dict(
    type='ConcatDataset',
    datasets=[dict(_part, ann_file=f, pipeline=train_pipeline_softmask) for f in ann_files],
)
