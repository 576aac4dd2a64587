# Ablation on synthetic: baseline + multi-modal augmentation (distorted image view and masked caption as
# extra positives of ITC, the distorted view as an extra positive of ITM).
_base_ = ['./synthetic_baseline.py']
model = dict(losses=dict(itc=dict(views={{_base_.itc_views}}), itm=dict(views={{_base_.itm_views}})))
