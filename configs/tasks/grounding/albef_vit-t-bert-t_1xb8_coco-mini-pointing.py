# The COCO pointing game (albef_vit-b16-bert-base_8xb64_coco-pointing.py) on CPU in seconds: the
# tiny model of albef_vit-t-bert-t_1xb8_coco-mini-grounding.py, the captions of 8 images of
# ../shared/data/coco_mini_train2017 (one sample per caption: 40 captions). Checks the plumbing
# (caption nouns -> categories -> boxes -> word Grad-CAM peaks -> hit rate and chance level).
#   python tools/test.py configs/tasks/grounding/albef_vit-t-bert-t_1xb8_coco-mini-pointing.py \
#       work_dirs/albef_vit-t-bert-t_1xb8_coco-mini-grounding/epoch_1.pth
_base_ = [
    './albef_vit-t-bert-t_1xb8_coco-mini-grounding.py',
    '../../_base_/datasets/coco_pointing.py',
]

image_size = {{_base_.tiny_image_size}}
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
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='GroundingDataset',
        data_root={{_base_.data_root}},
        ann_file={{_base_.ann_file}},
        expressions='captions',
        indices=list(range(200, 240)),
        pipeline=pointing_pipeline,
    ),
)
test_cfg = dict(
    _delete_=True,
    type='GradCAMPointingLoop',
    num_captions=1,
    layer={{_base_.gradcam_layer}},
    pair_batch_size=16,
    head_reduction='mean',
    tolerance=0.0,
)
test_evaluator = dict(_delete_=True, type='PointingMetric')
