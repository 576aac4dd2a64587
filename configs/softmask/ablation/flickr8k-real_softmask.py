# Ablation on the real-photo model: baseline + soft-masked ITM as the method config
# (softmask_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py): Grad-CAM on the base's gradcam_layer, the
# other options the class defaults, which are method.py's softmask_method values (mean over heads,
# label 1, prob 1, fusion tokens, gradcam_mode 'train'). Data as flickr8k-real_baseline.py.
_base_ = ['../../albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py', '../_base_/method.py']
train_dataloader = dict(dataset={{_base_.real_train_dataset_softmask}})
model = dict(losses=dict(itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}})))
