# The paper's pre-training recipe (softmask_vit-b16-bert-base_8xb64_4m-30e.py) sharded with FSDP through
# MMEngine's FlexibleRunner (vlreg/engine/fsdp.py, docs/performance.md "Past one GPU"):
#   torchrun --nproc_per_node=8 tools/train.py \
#       configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-30e-fsdp.py --launcher pytorch --amp
# It is that config with what `tools/train.py --fsdp` changes written out (tests/engine/test_fsdp_train.py
# checks they agree). Sharded (FULL_SHARD): every transformer layer (ViT blocks, BERT text and fusion
# layers), online and momentum copies alike, so the EMA of the local shards is the unsharded EMA.
# Replicated: embeddings, projections, heads (the MLM decoder is tied to the word embeddings), the ITC
# temperature and the queues. Checkpoints: one ordinary, unsharded-layout file written by rank 0.
_base_ = ['../albef/albef_vit-b16-bert-base_8xb64_4m-30e.py', './_base_/method.py']
model = dict(
    # the shared image keys / values call the fusion layers' projections outside the layers'
    # forward, where FSDP has their weights sharded; False is the same arithmetic
    share_image_kv=False,
    losses=dict(
        itc={{_base_.itc_method}},
        itm={{_base_.itm_method}},
        itm_softmask={{_base_.softmask_method}},
    ),
)
train_dataloader = dict(dataset={{_base_.train_dataset_softmask}})
runner_type = 'FlexibleRunner'
# 'vlreg.': FlexibleRunner builds the strategy before it sets the default scope
strategy = dict(
    type='vlreg.VLFSDPStrategy',
    model_wrapper=dict(layer_classes=['Block', 'BertLayer'], sharding_strategy='FULL_SHARD'),
    state_dict_cfg='full',
)
# validation ranks by ITC only (k=0): the ITM re-rank projects the images' cross-attention keys /
# values outside the fusion layers' forward. The full protocol: tools/test.py on a saved checkpoint.
val_cfg = dict(k=0)
# no rank-0-only forwards (soft-mask maps, retrieval grids): one rank alone would wait forever for
# the other ranks' shards
custom_hooks = [dict(type='AlphaWarmupHook'), dict(type='RNGStateHook')]
