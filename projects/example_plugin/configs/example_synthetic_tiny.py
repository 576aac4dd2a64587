# The example plugin on the synthetic CPU demo: a ConvStem ViT image encoder, a text-uniformity loss
# next to ITC / ITM / MLM, a brightness augmentation and a median-rank metric next to recall@K, all
# registered by the `example_plugin` package (not part of vlreg). Sizes are tiny: one epoch of a few
# iterations, then retrieval on 16 images, in seconds on a CPU.
#   PYTHONPATH=projects/example_plugin python tools/train.py \
#       projects/example_plugin/configs/example_synthetic_tiny.py
_base_ = ['../../../configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py']

# Imported while the config is read; registers the components below into vlreg's registries.
custom_imports = dict(imports=['example_plugin'], allow_failed_imports=False)

model = dict(
    # `_delete_` drops the TimmViTBackbone arguments of the base instead of merging into them.
    # The width must match the fusion encoder's `encoder_width` (128 in albef_tiny.py).
    image_backbone=dict(
        _delete_=True,
        type='ConvStemViTBackbone',
        img_size={{_base_.image_size}},
        patch_size=16,
        embed_dim=128,
        depth=2,
        num_heads=4,
        mlp_ratio=2.0,
        stem_width=16,
    ),
    # Added to the base's itc / itm / mlm (losses run in name order, whatever the config's).
    losses=dict(text_uniformity=dict(type='TextUniformityLoss', t=2.0, loss_weight=0.1)),
)

tokenizer = dict(type='SyntheticTokenizer')
train_pipeline = [
    dict(type='JitterBrightness', max_delta=0.3, p=0.8),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=25),
    dict(type='MaskText', tokenizer=tokenizer, mlm_probability=0.15),
    # PackInputs' default meta keys plus the one JitterBrightness adds.
    dict(
        type='PackInputs',
        meta_keys=(
            'sample_idx',
            'image_id',
            'ori_image_id',
            'img_path',
            'caption',
            'text_index',
            'ann_index',
            'ori_shape',
            'img_shape',
            'flipped',
            'objects',
            'gt_word_indices',
            'brightness_factor',
        ),
    ),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(num_images=32, pipeline=train_pipeline),
)
val_dataloader = dict(batch_size=16, dataset=dict(num_images=16))
test_dataloader = val_dataloader
val_evaluator = [dict(type='RetrievalMetric'), dict(type='MedianRankMetric')]
test_evaluator = val_evaluator

max_epochs = 1
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='RetrievalValLoop', k=4, score='itm')
test_cfg = dict(type='RetrievalTestLoop', k=4, score='itm')
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=1),
)
