# SNLI-VE on CPU in seconds: a tiny ALBEF classifier on the 16 real SNLI-VE pairs of
# ../shared/data/vl_task_samples (4 Flickr30K images). Train and evaluation read the same 16 pairs:
# this checks the plumbing (dataset -> pipeline -> model -> AccuracyMetric), not generalisation.
# Starts from random weights (model.pretrained=None); pass a tiny pre-training checkpoint with
# --cfg-options model.pretrained=work_dirs/.../epoch_N.pth (e.g. from
# configs/albef/*synthetic-demo.py, whose sizes match except the vocabulary: that one uses the
# synthetic tokenizer).
_base_ = [
    './albef_vit-b16-bert-base_8xb32_snli-ve-5e.py',
    '../../_base_/tiny_task.py',
]

data_root = '../shared/data/vl_task_samples'
image_root = 'images/visual_entailment'
ann_file = 'visual_entailment/sample_pairs.jsonl'
image_size = {{_base_.tiny_image_size}}
tokenizer = {{_base_.tiny_tokenizer}}
max_epochs = 1

model = dict(
    image_backbone={{_base_.tiny_image_backbone}},
    text_backbone={{_base_.tiny_text_backbone}},
    fusion={{_base_.tiny_fusion}},
    head=dict(mlp_hidden=64),
    pretrained=None,
)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
_dataset = dict(data_root=data_root, ann_file=ann_file, image_root=image_root)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**_dataset, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**_dataset, pipeline=test_pipeline),
)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    )
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=1))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
