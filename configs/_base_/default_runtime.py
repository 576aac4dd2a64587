# Runtime shared by every vlreg config: scope, hooks, logging (text + TensorBoard), environment.
default_scope = 'vlreg'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# ALBEF: the distillation weight ramps from 0 to the model's alpha (0.4) over the first epoch; random states are saved in
# every checkpoint so that --resume continues the same run.
custom_hooks = [
    dict(type='AlphaWarmupHook'),
    dict(type='RNGStateHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42, deterministic=False)
