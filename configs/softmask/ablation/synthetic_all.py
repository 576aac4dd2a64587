# Ablation on synthetic: all three components (soft-masked ITM + focal ITC + multi-modal augmentation).
_base_ = ['./synthetic_softmask.py']
model = dict(losses=dict(itc={{_base_.itc_method}}, itm={{_base_.itm_method}}))
