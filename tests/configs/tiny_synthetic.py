# Tiny ALBEF on a few synthetic images: for Runner integration tests (seconds per epoch on CPU).
_base_ = ['../../configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py']

image_size = 64
embed_dim = 32
model = dict(
    image_backbone=dict(img_size=image_size, embed_dim=64, depth=2, num_heads=2),
    text_backbone=dict(hidden_size=64, num_heads=2, intermediate_size=128),
    fusion=dict(hidden_size=64, encoder_width=64, num_heads=2, intermediate_size=128),
    embed_dim=embed_dim,
    losses=dict(itc=dict(embed_dim=embed_dim, queue_size=16)),
)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(num_images=8, image_size=image_size, captions_per_image=2),
)
val_dataloader = dict(
    batch_size=4, dataset=dict(num_images=6, image_size=image_size, captions_per_image=2)
)
test_dataloader = val_dataloader
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
val_cfg = dict(k=4)
test_cfg = dict(k=4)
# Per-iteration logs (window 1: scalars.json holds each iteration's losses, not running means) and a
# checkpoint inside each epoch (every 3 of its 4 iterations), for the crash / resume tests.
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(max_keep_ckpts=5, iter_interval=3, max_keep_iter_ckpts=5),
)
log_processor = dict(window_size=1)
randomness = dict(seed=42, deterministic=True)
