# COCO retrieval fine-tuning (Karpathy split: 113K train images, 5K val, 5K test) of a pre-trained
# ALBEF / soft-mask model, as ALBEF's configs/Retrieval_coco.yaml + Retrieval.py (PAPER.md,
# "Downstream protocols"):
#   losses: ITC with image-id-aware targets (every caption of the same image is a positive, in the
#     batch and in the queue) + momentum distillation (alpha 0.4, ramped over the first epoch by the
#     runtime's AlphaWarmupHook), and ITM with hard negatives that never share the image; no MLM;
#   384 px (the ViT position embedding is interpolated from the 256 px pre-training checkpoint),
#   batch 32 per GPU x 8 = 256, AdamW lr 1e-5, weight decay 0.02, 5 epochs, cosine to 1e-6 (ALBEF
#   steps its cosine per epoch after a one-epoch "warm-up" at the same 1e-5; ours decays per
#   iteration), queue 65,536, momentum 0.995, captions cleaned to 30 words and 30 tokens;
#   evaluation: ITC for every pair, ITM re-rank of each query's top k = 256 by the ITM logit
#   (score='itm', ALBEF; 'itm+itc' is BLIP / LAVIS's), on Karpathy val 5K every epoch (the best
#   val r_mean is kept) and test 5K with tools/test.py. Metric names carry the split
#   (coco_5k_val/..., coco_5k_test/...), the `protocol` string the k, the score and the set size.
#
# Weights: `pretrained_ckpt` (below, or --cfg-options model.pretrained=...) is a LOCAL vlreg
# pre-training checkpoint (e.g. work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth; an
# ALBEF release converted with tools/convert_albef.py). Everything the model has is loaded
# (encoders, momentum copies, projections, ITM head, temperature, and the ITC queues as ALBEF does;
# model.pretrained_queues='reset' restarts them); the MLM heads are ignored. `load_from` stays None:
# tools/test.py sets it to the checkpoint it evaluates.
#
# Data (ALBEF's json format, one file per split):
#   python tools/prepare_data.py retrieval --karpathy data/coco/dataset_coco.json \
#       --out-dir data/coco --name coco
# writes coco_train.json (train + restval, one entry per caption, with image ids), coco_val.json
# and coco_test.json (one entry per image, all its captions); ALBEF's released json files have the
# same format. Images: data/coco/images/{train2014,val2014}/. To read Karpathy's file directly
# instead, set ann_file='dataset_coco.json' and split='train' / 'val' / 'test' on the datasets.
#
#   torchrun --nproc_per_node=8 tools/train.py CONFIG --launcher pytorch --amp
#   python tools/test.py CONFIG work_dirs/<config>/best_coco_5k_val_r_mean_epoch_<N>.pth
_base_ = ['../../_base_/default_runtime.py']

# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/albef_pretrain/epoch_30.pth'
data_root = 'data/coco'
image_root = 'images'
train_ann, val_ann, test_ann = 'coco_train.json', 'coco_val.json', 'coco_test.json'
image_size = 384
# local bert-base-uncased folder: only its vocabulary is read (weights come from the checkpoint)
bert_path = 'data/bert-base-uncased'
tokenizer = dict(type='BertTokenizer', path=bert_path)
vocab_size = 30522
embed_dim = 256
queue_size = 65536
k_test = 256
max_epochs = 5
lr = 1e-5
batch_size = 32

model = dict(
    type='ALBEFPretrainer',
    # ALBEF's model_retrieval.py builds its ViT without stochastic depth
    image_backbone=dict(type='TimmViTBackbone', model_name='vit_base_patch16_224',
                        img_size=image_size, drop_path_rate=0.0),
    text_backbone=dict(type='BertTextBackbone', vocab_size=vocab_size, hidden_size=768,
                       num_layers=6, num_heads=12, intermediate_size=3072),
    fusion=dict(type='BertFusion', hidden_size=768, encoder_width=768, num_layers=6, num_heads=12,
                intermediate_size=3072, layer_offset=6),
    embed_dim=embed_dim,
    itm_head=dict(type='ITMHead'),
    mlm_head=None,
    losses=dict(
        itc=dict(type='ITCLoss', embed_dim=embed_dim, queue_size=queue_size, use_image_ids=True),
        itm=dict(type='ITMLoss', use_image_ids=True),
    ),
    temp=0.07,
    momentum=0.995,
    alpha=0.4,
    pretrained=pretrained_ckpt,
    pretrained_queues='load',
    data_preprocessor=dict(type='VLDataPreprocessor'),
)

# ALBEF's retrieval transforms: RandomResizedCrop(384, 0.5-1, bicubic) + flip + RandAugment(2, 7)
# without colour ops; test: resize to 384 x 384. Captions: 30 tokens in training and evaluation.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='RandomResizedCrop', size=image_size, scale=(0.5, 1.0)),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Resize', size=image_size),
    dict(type='Tokenize', tokenizer=tokenizer, max_length=30),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'), drop_last=True,
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file=train_ann,
                 image_root=image_root, max_words=30, skip_bad_samples=True,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RetrievalDataset', data_root=data_root, ann_file=val_ann,
                 image_root=image_root, max_words=30, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='RetrievalDataset', data_root=data_root, ann_file=test_ann,
                 image_root=image_root, max_words=30, pipeline=test_pipeline))
# the metric prefixes name the data set and split: coco_5k_val/txt_r1, ...
val_evaluator = dict(type='RetrievalMetric', prefix='coco_5k_val')
test_evaluator = dict(type='RetrievalMetric', prefix='coco_5k_test')

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
val_cfg = dict(type='RetrievalValLoop', k=k_test, score='itm', itm_batch_size=256)
test_cfg = dict(type='RetrievalTestLoop', k=k_test, score='itm', itm_batch_size=256)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(type='VLCheckpointHook', interval=1, max_keep_ckpts=1,
                                     save_best='coco_5k_val/r_mean', rule='greater'))
# ALBEF's learning rate is for a global batch of 256 (32 x 8 GPUs)
auto_scale_lr = dict(base_batch_size=256, enable=False)
