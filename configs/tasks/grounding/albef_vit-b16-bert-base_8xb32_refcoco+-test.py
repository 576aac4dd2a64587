# Evaluate a RefCOCO+ grounding checkpoint (fine-tuned with
# albef_vit-b16-bert-base_8xb32_refcoco+-5e.py) on val / testA / testB, ALBEF's protocol (see that
# config):
#   python tools/test.py 'configs/tasks/grounding/albef_vit-b16-bert-base_8xb32_refcoco+-test.py' \
#       work_dirs/albef_vit-b16-bert-base_8xb32_refcoco+-5e/best_grounding_acc_epoch_N.pth \
#       --out work_dirs/refcoco+_test.json
# (or with --launcher pytorch under torchrun: every rank grounds its share of the expressions).
# The results hold grounding/acc, grounding/{val,testA,testB}_acc, grounding/num_samples and
# grounding/protocol. Protocol options (GradCAMGroundingLoop): layer, head_reduction, tokens
# ('all' = ALBEF, 'words', 'cls'), area_exponent, interpolation, fp16; the IoU threshold is the
# metric's thr. ALBEF's second setting, ground-truth COCO boxes as proposals: prepare with
# --proposals gt into another folder and point data_root there.
_base_ = ['./albef_vit-b16-bert-base_8xb32_refcoco+-5e.py']

# the weights come from the checkpoint given to tools/test.py
model = dict(pretrained=None)
test_dataloader = dict(batch_size=64)
test_cfg = dict(fp16=False)
