# Zero-shot COCO 5K retrieval of a PRE-TRAINED model (no retrieval fine-tuning), the "COCO
# zero-shot" row of PAPER.md's results table (reported by TCL and the soft-mask paper): the
# pre-training checkpoint evaluated on the Karpathy test split with the fine-tuning protocol: ITC
# for every pair, ITM re-rank of each query's top k = 256 by the ITM logit, captions of 30 tokens.
#
# Resolution (our choice, not fixed by the papers' text): 384 px, the retrieval evaluation
# resolution of the fine-tuned models, reached by interpolating the 256 px position embedding when
# the checkpoint loads; set image_size = 256 (and the pipelines) to evaluate at the pre-training
# resolution instead.
#
#   python tools/test.py CONFIG work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth \
#       --out work_dirs/zeroshot_coco.json
#
# The pre-training checkpoint's MLM heads are ignored and its queues are not used by evaluation.
_base_ = [
    './albef_vit-b16-bert-base_8xb32_coco-retrieval-5e.py',
    '../../_base_/zeroshot_retrieval.py',
]

model = dict(pretrained=None)  # the evaluated weights come from tools/test.py's checkpoint
test_evaluator = dict(prefix='coco_5k_test_zeroshot')
test_cfg = dict(k=256, score='itm')
