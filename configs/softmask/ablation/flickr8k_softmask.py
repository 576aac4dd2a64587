# Ablation on flickr8k: baseline + soft-masked ITM.
_base_ = ['./flickr8k_baseline.py']
model = dict(losses=dict(itm_softmask=dict(type='SoftMaskITMLoss', layer=1)))
