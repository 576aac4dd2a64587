# The paper's method on the CPU demo: ALBEF demo + soft-masked ITM + focal ITC + multi-modal augmentation.
# The demo's fusion encoder has 2 layers: Grad-CAM runs on the first (index 0). On the last fusion layer
# the word rows of the cross-attention cannot influence the fused [CLS] (their gradient is exactly 0).
_base_ = ['../albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py', './_base_/method.py']
model = dict(
    losses=dict(
        itc={{_base_.itc_method}},
        itm={{_base_.itm_method}},
        itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}}),
    )
)
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
custom_hooks = [
    dict(type='AlphaWarmupHook'),
    dict(type='RNGStateHook'),
    dict(type='SoftMaskVisualizationHook', interval=200, num_samples=4),
    dict(type='RetrievalGridHook', num_queries=4, top=5, k=16),
]
