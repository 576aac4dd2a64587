# Ablation on synthetic: all three components (soft-masked ITM + focal ITC + multi-modal augmentation).
_base_ = ['../../albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py', '../_base_/method.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
model = dict(
    losses=dict(
        itc={{_base_.itc_method}},
        itm={{_base_.itm_method}},
        itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}}),
    )
)
