# Ablation on flickr8k: baseline + multi-modal augmentation (distorted image view and masked caption as
# extra positives of ITC and of ITM, as PAPER.md describes; weights in ../_base_/method.py).
_base_ = ['./flickr8k_baseline.py']
model = dict(losses=dict(
    itc=dict(views={{_base_.itc_views}}, view_weights={{_base_.itc_view_weights}}),
    itm=dict(views={{_base_.itm_views}}, view_weights={{_base_.itm_view_weights}})))
