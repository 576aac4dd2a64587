# Ablation on flickr8k: baseline + soft-masked ITM (Grad-CAM on the model's gradcam_layer).
_base_ = ['../../albef/albef_vit-s-minilm_1xb32_flickr8k-10e.py', '../_base_/method.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
model = dict(losses=dict(itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}})))
