# Ablation on synthetic, ALBEF baseline: the CPU demo's model and schedule, with the paper's data
# pipeline so that every variant sees the same data (the extra image view and word annotations are
# computed but unused here). Every variant inherits the same two configs (inheritance stays two levels
# deep) and states the pipeline line and its own components.
_base_ = ['../../albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py', '../_base_/method.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline_softmask}}))
