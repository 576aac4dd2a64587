# Ablation on flickr8k: baseline + focal ITC (ITC replaced by FocalITCLoss, gamma 2).
_base_ = ['./flickr8k_baseline.py']
model = dict(losses=dict(itc={{_base_.focal_method}}))
