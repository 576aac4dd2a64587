# SNLI-VE fine-tuning of a pre-trained ALBEF / soft-mask model (PAPER.md "Downstream protocols";
# ALBEF's configs/VE.yaml): 384 px, batch 32 per GPU x 8, AdamW lr 2e-5, weight decay 0.02, 5
# epochs, cosine to 1e-6, MLP head 768-768-3 on the fused [CLS], accuracy on dev (val) and test.
#
# Weights: set `pretrained_ckpt` (below, or --cfg-options model.pretrained=...) to a LOCAL vlreg
# pre-training checkpoint (e.g. work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth).
# Only its image_backbone.* / text_backbone.* / fusion.* tensors are read (weights-only torch.load);
# the momentum copies, projections, ITM / MLM heads and queues are ignored, the head starts random.
# The ViT position embeddings are interpolated from 256 to 384 px by the backbone. `load_from` stays
# None: tools/test.py sets it to the fine-tuned checkpoint it evaluates.
#
# Data (official SNLI-VE release, https://github.com/necla-ml/SNLI-VE):
# data/snli_ve/snli_ve_{train,dev,test}.jsonl and the Flickr30K images in
# data/snli_ve/flickr30k-images/.
_base_ = ['../../_base_/default_runtime.py']

# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
data_root = 'data/snli_ve'
image_root = 'flickr30k-images'
train_ann, val_ann, test_ann = 'snli_ve_train.jsonl', 'snli_ve_dev.jsonl', 'snli_ve_test.jsonl'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
vocab_size = 30522
max_epochs = 5
lr = 2e-5
meta_keys = ('sample_idx', 'image_id', 'ori_image_id', 'img_path', 'caption', 'ann_index', 'label',
             'gold_label', 'premise', 'pair_id')

model = dict(
    type='ALBEFClassifier',
    image_backbone=dict(type='TimmViTBackbone', model_name='vit_base_patch16_224',
                        img_size=image_size, drop_path_rate=0.0),  # as ALBEF: none
    text_backbone=dict(type='BertTextBackbone', vocab_size=vocab_size, hidden_size=768,
                       num_layers=6, num_heads=12, intermediate_size=3072),
    fusion=dict(type='BertFusion', hidden_size=768, encoder_width=768, num_layers=6, num_heads=12,
                intermediate_size=3072, layer_offset=6),
    head=dict(type='MLPClassifierHead', mlp_hidden=768),
    num_classes=3,
    pretrained=pretrained_ckpt,
    # ALBEF's VE.yaml: momentum distillation (EMA copies of encoders and head, momentum 0.995),
    # loss (1 - alpha) CE + alpha soft-CE(momentum logits), alpha 0.4 from the first step
    # (warm_up: False, so no AlphaWarmupHook)
    distill=True,
    momentum=0.995,
    alpha=0.4,
    data_preprocessor=dict(type='VLDataPreprocessor'),
)

# ALBEF's VE transform: RandomResizedCrop(384, 0.5-1) + flip + RandAugment(2, 7); test: resize.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=40),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'), drop_last=True,
    dataset=dict(type='SNLIVEDataset', data_root=data_root, ann_file=train_ann,
                 image_root=image_root, skip_bad_samples=True, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SNLIVEDataset', data_root=data_root, ann_file=val_ann,
                 image_root=image_root, skip_bad_samples=True, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SNLIVEDataset', data_root=data_root, ann_file=test_ann,
                 image_root=image_root, skip_bad_samples=True, pipeline=test_pipeline))
val_evaluator = dict(type='AccuracyMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
                       bypass_duplicate=True),
)
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# alpha is constant in ALBEF's SNLI-VE fine-tuning (warm_up: False): no AlphaWarmupHook
custom_hooks = [dict(type='RNGStateHook')]
default_hooks = dict(checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=1,
                                     save_best='accuracy/acc', rule='greater'))
auto_scale_lr = dict(base_batch_size=256, enable=False)
