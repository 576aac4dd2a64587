# Ablation on the real-photo model: baseline + focal ITC (FocalITCLoss, method.py's focal_method: gamma
# 2, all terms modulated; the base's embed_dim, queue_size, use_image_ids carry over). Data as
# flickr8k-real_baseline.py.
_base_ = ['../../albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py', '../_base_/method.py']
train_dataloader = dict(dataset={{_base_.real_train_dataset_softmask}})
model = dict(losses=dict(itc={{_base_.focal_method}}))
