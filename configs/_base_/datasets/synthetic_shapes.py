# The embedded default: coloured shapes with template captions, generated from a seed (no files).
# Train and evaluation use different seeds, so evaluation images are never seen in training.
image_size = 96
tokenizer = dict(type='SyntheticTokenizer')
vocab_size = 41  # SyntheticTokenizer().vocab_size; the text encoder's embedding table must match

train_pipeline = [
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
test_pipeline = [
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
        type='SyntheticShapesDataset',
        num_images=2000,
        image_size=image_size,
        seed=0,
        captions_per_image=2,
        mode='pretrain',
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='SyntheticShapesDataset',
        num_images=200,
        image_size=image_size,
        seed=12345,
        captions_per_image=5,
        mode='retrieval',
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalMetric')
test_evaluator = val_evaluator

# The paper's pipeline (soft-mask configs and every ablation variant, so that they see the same data):
# caption-aware flip (left/right swapped in the caption), a distorted extra image view, and word
# annotations for the soft mask's word choice. The view has no colour operations on this data set:
# colour words are most of what its captions say, so a colour-jittered view would contradict them.
view_transforms = [
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='GaussianBlur', p=0.5),
]
train_pipeline_softmask = [
    dict(type='CaptionAwareHorizontalFlip', p=0.5, mode='swap'),
    dict(type='ImageView', out_key='img_aug', transforms=view_transforms),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='AnnotateWords', tokenizer=tokenizer, stopwords='auto'),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    dict(type='PackInputs'),
]
