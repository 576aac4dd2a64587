# COCO pointing game of a grounding (or retrieval) fine-tuned ALBEF / soft-mask model, 384 px:
#   python tools/test.py configs/tasks/grounding/albef_vit-b16-bert-base_8xb64_coco-pointing.py \
#       CHECKPOINT --out work_dirs/coco_pointing.json
# For every caption word that names a COCO category present in the image (vocabulary:
# vlreg/datasets/coco_categories.py, e.g. man / woman / people -> person, bike -> bicycle,
# multi-word names such as "teddy bear" matched first), is the peak of that word's Grad-CAM
# (ITM match logit, the loop's default fusion layer index 2, heads averaged, the mean of the word's wordpiece rows)
# inside a box of that category? Reports pointing/acc (percent), hits, total (the count of scored
# words) and pointing/chance: the accuracy of a peak drawn uniformly over the patches (the share
# of patch centres inside the category's boxes), plus pointing/protocol.
# Data: COCO val2017 captions + instances, converted once by
#   python tools/prepare_data.py refcoco --captions data/coco/annotations/captions_val2017.json \
#       --instances data/coco/annotations/instances_val2017.json --out-dir data/coco_pointing \
#       --name val2017 --image-prefix val2017
# with the images in data/coco/images/val2017/. A pre-training checkpoint (256 px) needs
# image_size=256 in a copy of this config.
_base_ = [
    './albef_vit-b16-bert-base_8xb32_refcoco+-5e.py',
    '../../_base_/datasets/coco_pointing.py',
]

model = dict(pretrained=None)  # the weights come from the checkpoint given to tools/test.py
pointing_root = 'data/coco_pointing'
pointing_ann = 'val2017.json'
image_size = 384
tokenizer = {{_base_.tokenizer}}
pointing_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='CleanCaption', max_words=30),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='AnnotateWords', tokenizer=tokenizer, stopwords=None),
    dict(type='LinkCategoryWords'),
    dict(type='PackInputs', meta_keys={{_base_.pointing_meta_keys}}),
]
test_dataloader = dict(
    _delete_=True,
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='GroundingDataset',
        data_root=pointing_root,
        ann_file=pointing_ann,
        image_root='../coco/images',
        expressions='captions',
        skip_bad_samples=True,
        pipeline=pointing_pipeline,
    ),
)
# one sample per caption (num_captions counts captions per sample); tolerance in pixels of the
# resized image (0 = the peak patch centre must be inside a box)
test_cfg = dict(
    _delete_=True,
    type='GradCAMPointingLoop',
    num_captions=1,
    pair_batch_size=64,
    head_reduction='mean',
    tolerance=0.0,
)
test_evaluator = dict(_delete_=True, type='PointingMetric')
