# ALBEF on real photos on one CPU or GPU: Flickr8k (800 train / 200 held-out images), a small ViT from
# random init (no pretrained vision weights exist offline) and the offline all-MiniLM-L6-v2 BERT split
# 3 text + 3 fusion layers (cross-attention random, as in ALBEF).
_base_ = [
    '../_base_/models/albef_tiny.py',
    '../_base_/datasets/flickr8k.py',
    '../_base_/default_runtime.py',
]
bert_path = {{_base_.bert_path}}
embed_dim = 128
# 3 fusion layers: Grad-CAM (soft-masked ITM in the soft-mask and ablation configs) explains the second
gradcam_layer = 1
model = dict(
    image_backbone=dict(img_size={{_base_.image_size}}, embed_dim=192, depth=6, num_heads=3),
    text_backbone=dict(
        vocab_size=30522,
        hidden_size=384,
        num_layers=3,
        num_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        pretrained=bert_path,
    ),
    fusion=dict(
        hidden_size=384,
        encoder_width=192,
        num_layers=3,
        num_heads=12,
        intermediate_size=1536,
        layer_offset=3,
        pretrained=bert_path,
    ),
    embed_dim=embed_dim,
    # one sample per caption (5 per image; CaptionDataset's sample_per='caption'): captions of one
    # image meet in a batch and in the queue, so the losses read the image ids (which PackInputs
    # passes) and treat them as ITC positives, never as ITM negatives, as ALBEF's retrieval
    # fine-tuning does (ALBEF's pre-training reads one random caption per entry instead:
    # train_dataloader.dataset.sample_per='entry', with dataset.indices=800)
    losses=dict(
        itc=dict(embed_dim=embed_dim, queue_size=1024, use_image_ids=True),
        itm=dict(use_image_ids=True),
    ),
)
max_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.02),
    # the pretrained text layers move slower than the randomly initialised rest
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        bypass_duplicate=True,
        custom_keys={'text_backbone.': dict(lr_mult=0.3), 'fusion.layer': dict(lr_mult=1.0)},
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=2)
val_cfg = dict(type='RetrievalValLoop', k=32, score='itm')
test_cfg = dict(type='RetrievalTestLoop', k=32, score='itm')
# TensorBoard: after each validation, 4 fixed caption queries and their top-5 images (correct one in green)
custom_hooks = [
    dict(type='AlphaWarmupHook'),
    dict(type='RNGStateHook'),
    dict(type='RetrievalGridHook', num_queries=4, top=5),
]
