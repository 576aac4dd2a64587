# The CPU demo (README's main job): pre-train a small ALBEF (ITC + ITM + MLM, momentum distillation,
# queue) on the embedded synthetic shapes for a few minutes, then evaluate image-text retrieval with ITC
# top-k -> ITM re-ranking on 200 unseen images (1000 captions).
_base_ = [
    '../_base_/models/albef_tiny.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/default_runtime.py',
]

model = dict(
    image_backbone=dict(img_size={{_base_.image_size}}),
    text_backbone=dict(vocab_size={{_base_.vocab_size}}),
)

max_epochs = 3
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.02),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       bypass_duplicate=True),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='RetrievalValLoop', k=16, score='itm')
test_cfg = dict(type='RetrievalTestLoop', k=16, score='itm')
default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
