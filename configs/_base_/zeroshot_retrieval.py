# Zero-shot retrieval evaluation of a checkpoint trained for another purpose: a pre-training checkpoint
# carries the MLM heads, which retrieval does not use: the only keys it may bring that the model lacks
# (any other misfit is an error; see docs/architecture.md, checkpoints).
load_allow_unexpected = ['*num_batches_tracked', 'mlm_head.*', 'mlm_head_m.*']
