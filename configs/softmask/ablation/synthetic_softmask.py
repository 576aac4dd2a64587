# Ablation on synthetic: baseline + soft-masked ITM.
_base_ = ['./synthetic_baseline.py']
model = dict(losses=dict(itm_softmask=dict(type='SoftMaskITMLoss', layer=0)))
