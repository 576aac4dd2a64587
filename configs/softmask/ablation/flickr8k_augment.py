# Ablation on flickr8k: baseline + multi-modal augmentation (distorted image view and masked caption as
# extra positives of ITC and of ITM, as PAPER.md describes; weights in ../_base_/method.py).
_base_ = ['../../albef/albef_vit-s-minilm_1xb32_flickr8k-10e.py', '../_base_/method.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
model = dict(
    losses=dict(
        itc=dict(views={{_base_.itc_views}}, view_weights={{_base_.itc_view_weights}}),
        itm=dict(views={{_base_.itm_views}}, view_weights={{_base_.itm_view_weights}}),
    )
)
