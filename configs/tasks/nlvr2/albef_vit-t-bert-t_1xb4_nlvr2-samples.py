# NLVR2 on CPU in seconds: a tiny ALBEF pair classifier on the 8 real NLVR2 dev statements (4 image
# pairs) of ../shared/data/vl_task_samples. Train and evaluation read the same 8 statements: this
# checks the plumbing (LoadImagePair -> pair fusion -> AccuracyMetric), not generalisation. Random
# init unless --cfg-options model.pretrained=<a tiny pre-training checkpoint>.
_base_ = [
    './albef_vit-b16-bert-base_8xb16_nlvr2-10e.py',
    '../../_base_/tiny_task.py',
]

data_root = '../shared/data/vl_task_samples'
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
    dict(type='LoadImagePair'),
    dict(
        type='ApplyToImagePair',
        transforms=[dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0))],
    ),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = [
    dict(type='LoadImagePair'),
    dict(type='ApplyToImagePair', transforms=[dict(type='Resize', size=image_size)]),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
_dataset = dict(data_root=data_root, ann_file='nlvr2/tiny-dev.json', image_root='images/nlvr2')
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**_dataset, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=4,
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
