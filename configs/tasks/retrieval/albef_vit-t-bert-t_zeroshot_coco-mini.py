# Zero-shot retrieval on CPU: a tiny checkpoint (e.g. a tiny pre-training run of the same sizes,
# any resolution / queue size) evaluated on the last 20 images of coco_mini without fine-tuning:
#   python tools/test.py CONFIG CKPT --out zeroshot.json
# Same protocol as the tiny fine-tuning config it inherits (ITC top-8 -> ITM re-rank).
_base_ = ['./albef_vit-t-bert-t_1xb16_coco-mini-retrieval.py', '../../_base_/zeroshot_retrieval.py']

test_evaluator = dict(prefix='coco_mini_test_zeroshot')
