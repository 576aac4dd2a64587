# Zero-shot Flickr30K 1K retrieval (ALBEF's protocol, PAPER.md "Downstream protocols"): the model
# fine-tuned on COCO retrieval (configs/tasks/retrieval/*coco-retrieval-5e.py) evaluated on the
# Flickr30K Karpathy test split without any Flickr30K training: ITC for every pair, ITM re-rank of
# each query's top k = 128 by the ITM logit, 384 px, captions of 30 tokens. Evaluation only:
#
#   python tools/test.py CONFIG work_dirs/<coco config>/best_coco_5k_val_r_mean_epoch_<N>.pth \
#       --out work_dirs/zeroshot_flickr30k.json
#
# The metrics are named flickr30k_1k_test_zeroshot/...; their `protocol` string gives k, the score
# and the set size. Any vlreg checkpoint of these sizes loads (a pre-training checkpoint at 256 px
# too: its position embedding is interpolated to 384 px on load, as for fine-tuning).
# Train / val settings are inherited from the Flickr30K fine-tuning config and unused here.
_base_ = [
    './albef_vit-b16-bert-base_8xb32_flickr30k-retrieval-10e.py',
    '../../_base_/zeroshot_retrieval.py',
]

model = dict(pretrained=None)  # the evaluated weights come from tools/test.py's checkpoint
test_evaluator = dict(prefix='flickr30k_1k_test_zeroshot')
test_cfg = dict(k=128, score='itm')
