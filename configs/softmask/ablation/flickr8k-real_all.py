# Ablation on the real-photo model: all components, the method config's set
# (softmask_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py): soft-masked ITM + focal ITC + the masked
# caption as an extra ITC positive (no image view, see flickr8k-real_augment.py). Data as
# flickr8k-real_baseline.py.
_base_ = ['../../albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py', '../_base_/method.py']
train_dataloader = dict(dataset={{_base_.real_train_dataset_softmask}})
model = dict(
    losses=dict(
        itc={{_base_.itc_method_caption}},
        itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}}),
    )
)
