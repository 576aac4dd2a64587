# The paper's method on Flickr8k (800 train / 200 held-out images), MiniLM text weights split 3 + 3:
# with 3 fusion layers, Grad-CAM runs on the second (index 1): the last one cannot be explained (its
# word rows never reach the fused [CLS]); ALBEF's choice, the 3rd of 6, is the middle of the stack too.
_base_ = ['../albef/albef_vit-s-minilm_1xb32_flickr8k-10e.py', './_base_/method.py']
model = dict(
    losses=dict(
        itc={{_base_.itc_method}},
        itm={{_base_.itm_method}},
        itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}}),
    )
)
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
