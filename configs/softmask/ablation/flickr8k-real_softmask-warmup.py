# Ablation on the real-photo model: flickr8k-real_softmask.py with the soft mask warmed up. The choice:
# no soft mask for the first 25 % of the 472 iterations (118: the fusion cross-attention starts from
# random weights, so its early Grad-CAM is noise and masking by it teaches nothing), then its
# probability ramps linearly to 1 over the next 25 % (118); full from iteration 236 on, when the
# distillation weight alpha also reaches its value. tools/run_ablation.py --iters scales both with the
# schedule. Data as flickr8k-real_baseline.py (the hook draws from the model's torch stream only).
_base_ = ['../../albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py', '../_base_/method.py']
train_dataloader = dict(dataset={{_base_.real_train_dataset_softmask}})
model = dict(losses=dict(itm_softmask=dict(type='SoftMaskITMLoss', layer={{_base_.gradcam_layer}})))
# a list replaces the base's: its two hooks restated (warmup_iters = the base's iters_per_epoch // 2;
# tests/tools/test_run_ablation_real.py checks that they match), then the warm-up
custom_hooks = [
    dict(type='AlphaWarmupHook', warmup_iters=236),
    dict(type='RNGStateHook'),
    dict(type='SoftMaskWarmupHook', start_iter=118, ramp_iters=118),
]
