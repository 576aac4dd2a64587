# The COCO pointing game for the real-photo model (configs/albef/albef_effnet-lite0-minilm_*-real-1e.py):
# the 80 COCO train2017 photos with instance boxes in ../shared/data/coco_mini_train2017 (grounding.json,
# one sample per caption: 400 captions), at the model's 224 px and with its MiniLM tokenizer (both read
# from flickr8k.py). For every caption word naming a COCO category in the image (LinkCategoryWords), is
# the peak of the word's Grad-CAM inside a box of that category? The chance level (a uniformly drawn
# peak) is reported beside it. A fragment, not a model config: tools/run_ablation.py --dataset
# flickr8k-real puts pointing_dataloader / pointing_cfg / pointing_evaluator into a variant's config as
# its test_dataloader / test_cfg / test_evaluator (the loop's layer is set there). Not in the training
# data: COCO is disjoint from Flickr8k.
_base_ = ['./flickr8k.py', './coco_pointing.py']
pointing_root = '../shared/data/coco_mini_train2017'
pointing_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size={{_base_.real_image_size}}),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer={{_base_.tokenizer}}, max_length=40),
    dict(type='AnnotateWords', tokenizer={{_base_.tokenizer}}, stopwords=None),
    dict(type='LinkCategoryWords'),
    dict(type='PackInputs', meta_keys={{_base_.pointing_meta_keys}}),
]
pointing_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='GroundingDataset',
        data_root=pointing_root,
        ann_file='grounding.json',
        expressions='captions',
        pipeline=pointing_pipeline,
    ),
)
# the first caption of every sample (one sample per caption), heads averaged, no tolerance
pointing_cfg = dict(
    type='GradCAMPointingLoop', num_captions=1, pair_batch_size=16, head_reduction='mean'
)
pointing_evaluator = dict(type='PointingMetric')
