# ALBEF's RefCOCO+ grounding fine-tuning schedule (configs/Grounding.yaml): AdamW lr 1e-5, weight decay
# 0.02 (none on biases / norms), 5 epochs, cosine to 1e-6 (no warm-up); Grad-CAM grounding evaluation
# after every epoch (val) and at test time (val, testA, testB).
max_epochs = 5
lr = 1e-5
# Grad-CAM grounding protocol (GradCAMGroundingLoop's options; ALBEF's values). The fusion layer is the
# model's (its gradcam_layer, else ALBEF's 2 = BERT layer 8): pass layer=N to override.
grounding_protocol = dict(
    head_reduction='mean', tokens='all', area_exponent=0.5, interpolation='bicubic'
)
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
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
val_cfg = dict(type='GradCAMGroundingValLoop', **grounding_protocol)
test_cfg = dict(type='GradCAMGroundingLoop', **grounding_protocol)
auto_scale_lr = dict(base_batch_size=256, enable=False)
