# Ablation on synthetic: baseline + focal ITC (ITC replaced by FocalITCLoss, gamma 2).
_base_ = ['../../albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py', '../_base_/method.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
model = dict(losses=dict(itc={{_base_.focal_method}}))
