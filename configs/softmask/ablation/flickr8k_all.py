# Ablation on flickr8k: all three components (soft-masked ITM + focal ITC + multi-modal augmentation).
_base_ = ['./flickr8k_softmask.py']
model = dict(losses=dict(itc={{_base_.itc_method}}, itm={{_base_.itm_method}}))
