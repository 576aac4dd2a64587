# Ablation on synthetic: baseline + soft-masked ITM (Grad-CAM on the model's gradcam_layer).
_base_ = ['../../albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py', '../_base_/method.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
model = dict(losses=dict(itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}})))
