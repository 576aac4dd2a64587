# Ablation on the real-photo model: baseline + the caption half of the multi-modal augmentation (the
# MLM-masked caption as an extra ITC positive, method.py's itc_views_caption), as the method config.
# The distorted image view (ImageView, and the caption-aware flip) is out: it changes the pixels on
# every step, so the frozen CNN stages could no longer be cached (cache_frozen) and would run for every
# image of every step, several times the 30-minute schedule on this CPU. Data as flickr8k-real_baseline.py.
_base_ = ['../../albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py', '../_base_/method.py']
train_dataloader = dict(dataset={{_base_.real_train_dataset_softmask}})
model = dict(losses=dict(itc=dict(views={{_base_.itc_views_caption}})))
