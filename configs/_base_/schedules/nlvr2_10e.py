# ALBEF's NLVR2 fine-tuning schedule (configs/NLVR.yaml): AdamW lr 2e-5, weight decay 0.02 (none on
# biases / norms), 10 epochs, cosine to 1e-6, validation every epoch.
max_epochs = 10
lr = 2e-5
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    # the key / value projections are shared within a pair of blocks: count them once
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0, bypass_duplicate=True
    ),
)
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(base_batch_size=128, enable=False)
