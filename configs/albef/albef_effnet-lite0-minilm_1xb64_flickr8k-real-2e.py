# The real-photo model of albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py (same encoders, data, losses,
# learning rates and test protocol) on a two-epoch schedule: 944 iterations at batch 64, warm-up 50
# iterations, cosine to the end, distillation weight ramped over the first half (472 iterations). It fits
# the 30-minute CPU budget since training runs on the real tokens only (BertTextBackbone / BertFusion
# packed=True: 2.2 -> 1.4 s per step at batch 64 on the 2-core machine); the frozen CNN stages still run
# once per image in the first epoch (BatchNorms folded, channels-last) and are read from the cache
# after. Measured 2026-12-04 (benchmarks/real_photo.py, quiet 2-core machine): all 944 iterations in
# 23.7 min, median step 1.48 s (first epoch) / 1.45 s (second), test 34 s.
_base_ = ['./albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py']
epochs = 2
iters_per_epoch = 30235 // 64  # 472, as the base
max_iters = epochs * iters_per_epoch  # 944
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
custom_hooks = [
    dict(type='AlphaWarmupHook', warmup_iters=max_iters // 2),
    dict(type='RNGStateHook'),
]
