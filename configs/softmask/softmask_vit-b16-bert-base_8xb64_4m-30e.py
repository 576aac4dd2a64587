# The paper's pre-training recipe at ALBEF 4M scale on 8 GPUs (global batch 512, 30 epochs):
#   torchrun --nproc_per_node=8 tools/train.py configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-30e.py \
#       --launcher pytorch --amp
_base_ = ['../albef/albef_vit-b16-bert-base_8xb64_4m-30e.py', './_base_/method.py']
model = dict(
    losses=dict(
        itc={{_base_.itc_method}},
        itm={{_base_.itm_method}},
        itm_softmask={{_base_.softmask_method}},
    )
)
train_dataloader = dict(dataset={{_base_.train_dataset_softmask}})
custom_hooks = [
    dict(type='AlphaWarmupHook'),
    dict(type='RNGStateHook'),
    dict(type='SoftMaskVisualizationHook', interval=2000, num_samples=4),
]
