# Weakly supervised grounding on RefCOCO+ (PAPER.md "Downstream protocols"; ALBEF's Grounding.py and
# configs/Grounding.yaml), 8 GPUs x 32 = global batch 256:
#   torchrun --nproc_per_node=8 tools/train.py \
#       'configs/tasks/grounding/albef_vit-b16-bert-base_8xb32_refcoco+-5e.py' --launcher pytorch
#
# Fine-tuning sees the referring expressions and their images, never a box: ITC (image-id-aware
# targets, momentum distillation, queue 65,536) + ITM with hard negatives, no MLM; the expressions
# of one image are never negatives of each other (use_image_ids). 384 px, AdamW lr 1e-5, weight
# decay 0.02 (none on biases / norms), 5 epochs, cosine to 1e-6 (ALBEF: warm-up lr = lr, i.e. no
# warm-up), alpha 0.4 ramped over the first epoch, momentum 0.995. ALBEF's grounding transform:
# a 384 x 384 resize (no crop), flip, RandAugment(2, 7) (its flip ignores "left" / "right" in the
# expression; CaptionAwareHorizontalFlip is the caption-aware alternative).
#
# Evaluation after every epoch (ALBEF keeps the best val checkpoint) and at test time, by
# GradCAMGroundingLoop: Grad-CAM of the ITM match logit on fusion layer index 2 (= BERT layer 8,
# ALBEF's block_num), heads and text tokens averaged ('all', [CLS] included, as ALBEF's code),
# bicubic upsampling to the original image, every detector proposal scored by sum inside /
# sqrt(area), accuracy = IoU >= 0.5 (GroundingAccuracyMetric thr), per split (val, testA, testB).
#
# Weights: `pretrained_ckpt` is a LOCAL vlreg pre-training checkpoint (its 256 px position
# embeddings are interpolated to 384 px when loaded). Data: the refer toolkit's RefCOCO+
# (refs(unc).p + instances.json) and ALBEF's detections (dets.json), converted once by
#   python tools/prepare_data.py refcoco --refs data/refcoco+/refs(unc).p \
#       --instances data/refcoco+/instances.json --proposals data/refcoco+/dets.json \
#       --out-dir data/refcoco+ --image-prefix train2014
# which writes data/refcoco+/refcoco+_{train,val,testA,testB}.json and refcoco+_proposals.json;
# the COCO train2014 images are expected in data/coco/images/train2014/. Use --proposals gt for
# ALBEF's second setting (ground-truth COCO boxes of the image as proposals).
# The model is ALBEF's retrieval model (ITC + ITM with image ids, no MLM, 384 px).
_base_ = [
    '../../_base_/models/albef_retrieval.py',
    '../../_base_/datasets/refcoco.py',
    '../../_base_/schedules/grounding_5e.py',
    '../../_base_/default_runtime.py',
]

# placeholder: your pre-training checkpoint
pretrained_ckpt = 'work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth'
model = dict(image_backbone=dict(img_size={{_base_.image_size}}), pretrained=pretrained_ckpt)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='grounding/acc',
        rule='greater',
    ),
)
