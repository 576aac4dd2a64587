# ALBEF 4M pre-training schedule (PAPER.md): 30 epochs, AdamW lr 1e-4, weight decay 0.02 (none on biases
# and norms), linear warm-up from 1e-5 over the first 2,000 iterations, then cosine to 1e-5.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.02),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0, bypass_duplicate=True
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2000),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=30,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=30, val_interval=1)
val_cfg = dict(type='RetrievalValLoop', k=256, score='itm')
test_cfg = dict(type='RetrievalTestLoop', k=256, score='itm')
# ALBEF's learning rate is for a global batch of 512 (64 x 8 GPUs).
auto_scale_lr = dict(base_batch_size=512, enable=False)
