# ALBEF's retrieval fine-tuning schedule (configs/Retrieval_coco.yaml): AdamW lr 1e-5, weight decay
# 0.02 (none on biases / norms), 5 epochs, cosine to 1e-6 (ALBEF steps its cosine per epoch after a
# one-epoch "warm-up" at the same 1e-5; ours decays per iteration), validation every epoch.
# Evaluation: ITC for every pair, ITM re-rank of each query's top k = 256 by the ITM logit
# (score='itm', ALBEF; 'itm+itc' is BLIP / LAVIS's). The metric gets each query's top-k lists and the
# ITC ranks (dense_scores=False: memory linear in the set size; RetrievalMetric's recalls are exactly
# those of the full matrices, docs/performance.md); dense_scores=True hands it the full matrices.
lr = 1e-5
max_epochs = 5
k_test = 256
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.02),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0, bypass_duplicate=True
    ),
)
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(
    type='RetrievalValLoop', k=k_test, score='itm', itm_batch_size=256, dense_scores=False
)
test_cfg = dict(
    type='RetrievalTestLoop', k=k_test, score='itm', itm_batch_size=256, dense_scores=False
)
# ALBEF's learning rate is for a global batch of 256 (32 x 8 GPUs)
auto_scale_lr = dict(base_batch_size=256, enable=False)
