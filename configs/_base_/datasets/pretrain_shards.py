# ALBEF's 4M pre-training data (albef_4m.py: same pipelines, same COCO 5K evaluation) streamed from tar
# shards (docs/streaming.md). Write them with
#   python tools/prepare_data.py shards --ann-file data/albef_4m/cc3m_train.json \
#       --image-root data/albef_4m --out data/albef_4m_shards --samples-per-shard 1000
# (one --out folder per annotation file: list the shards of every folder in `shards`) and point shard_root /
# shards at them (shard_root: the folder of the shards and their index.json). Streaming trains by
# iterations: a config using this base sets
#   train_cfg = dict(type='IterBasedTrainLoop', max_iters=..., val_interval=...)
#   custom_hooks = [dict(type='AlphaWarmupHook', warmup_iters=...), dict(type='RNGStateHook'),
#                   dict(type='ShardStreamHook')]
#   log_processor = dict(by_epoch=False)
# and schedulers with by_epoch=False (configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-shards-300k.py).
# ShardStreamHook moves the stream to the next epoch at the end of each
# pass and makes --resume skip the trained samples without decoding them.
_base_ = ['./albef_4m.py']

shard_root = 'data/albef_4m_shards'
shards = 'shard-{000000..000999}.tar'  # relative to shard_root; a list or a glob work too

train_dataset = dict(
    type='ShardedCaptionDataset',
    data_root=shard_root,
    shards=shards,
    max_words=30,
    seed=0,
    shuffle_buffer=1000,  # per worker: 1000 encoded images in memory
    max_bad_fraction=0.1,  # a shard with more than 10% bad samples stops the run, naming it
    pipeline={{_base_.train_pipeline}},  # LoadImage decodes the shard member's bytes (img_bytes)
)
train_dataloader = dict(
    _delete_=True,
    batch_size=64,
    num_workers=8,  # 8 GPUs x 8 workers = 64 consumers: at least 64 shards
    persistent_workers=True,
    pin_memory=True,
    sampler=None,  # an IterableDataset: the order is the dataset's (seed, epoch, rank, worker)
    collate_fn=dict(type='pseudo_collate'),
    drop_last=True,
    dataset=train_dataset,
)
train_dataset_softmask = dict(train_dataset, pipeline={{_base_.train_pipeline_softmask}})
