# The paper's pre-training recipe (softmask_vit-b16-bert-base_8xb64_4m-30e.py) on the 4M corpus streamed
# from tar shards (docs/streaming.md), by iterations: 300k steps at global batch 512 are about 30 passes
# over ALBEF's 5.1M image-text pairs. Write the shards first (configs/_base_/datasets/pretrain_shards.py):
#   python tools/prepare_data.py shards --ann-file data/albef_4m/cc3m_train.json \
#       --image-root data/albef_4m --out data/albef_4m_shards --samples-per-shard 1000
#   torchrun --nproc_per_node=8 tools/train.py \
#       configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-shards-300k.py --launcher pytorch --amp
# --resume continues mid-pass: ShardStreamHook skips the trained samples without decoding them.
_base_ = [
    '../_base_/models/albef_base.py',
    '../_base_/datasets/pretrain_shards.py',
    '../_base_/schedules/albef_pretrain_30e.py',
    '../_base_/default_runtime.py',
    './_base_/method.py',
]
max_iters = 300_000
pretrained = dict(
    image='data/pretrained/deit_base_patch16_224.pth', text={{_base_.bert_path}}
)  # local files only, as the epoch-based 4M config
model = dict(
    image_backbone=dict(pretrained=pretrained['image']),
    text_backbone=dict(pretrained=pretrained['text']),
    fusion=dict(pretrained=pretrained['text']),
    mlm_head=dict(pretrained=pretrained['text']),
    losses=dict(
        itc={{_base_.itc_method}},
        itm={{_base_.itm_method}},
        itm_softmask={{_base_.softmask_method}},
    ),
)
train_dataloader = dict(dataset={{_base_.train_dataset_softmask}})
# ALBEF's schedule by iterations: warm-up over 2,000 steps, cosine to 1e-5 at the last step
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2000),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10_000)
# alpha ramps over about one pass (5.1M pairs / 512), as ALBEF's first epoch
custom_hooks = [
    dict(type='AlphaWarmupHook', warmup_iters=10_000),
    dict(type='RNGStateHook'),
    dict(type='SoftMaskVisualizationHook', interval=2000, num_samples=4),
    dict(type='ShardStreamHook'),  # epochs, checkpointed stream positions, resume mid-pass
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=10_000, max_keep_ckpts=5),
)
log_processor = dict(by_epoch=False)
