# ALBEF's VQA fine-tuning schedule (the learning rate its VQA.py actually uses; see
# configs/tasks/vqa/albef_vit-b16-bert-base_8xb32_vqa-8e.py): AdamW 2e-5, weight decay 0.02, 8 epochs.
max_epochs = 8
lr = 2e-5
val_cfg = None
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0, bypass_duplicate=True
    ),
)
# ALBEF's VQA schedule (see the top): epoch 0 warms up from 1e-5 (0.5 x lr) in 4 steps of 100
# iterations, each a ConstantLR factor (MMEngine's ConstantLR restores the rate at step end - 1,
# hence end = begin + 101); the cosine then sets one rate per epoch (by_epoch, not converted to
# iterations): 2e-5 for the rest of epoch 0, then 1.93e-5 ... 1.72e-6.
warmup_factors = (0.5, 0.625, 0.75, 0.875)
param_scheduler = [
    dict(type='ConstantLR', factor=f, by_epoch=False, begin=100 * k, end=100 * k + 101)
    for k, f in enumerate(warmup_factors)
] + [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, end=max_epochs),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(base_batch_size=256, enable=False)
