# Ablation on synthetic: baseline + focal ITC (ITC replaced by FocalITCLoss, gamma 2).
_base_ = ['./synthetic_baseline.py']
model = dict(losses=dict(itc={{_base_.focal_method}}))
