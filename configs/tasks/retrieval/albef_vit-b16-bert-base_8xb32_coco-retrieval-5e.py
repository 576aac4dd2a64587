# COCO retrieval fine-tuning (Karpathy split: 113K train images, 5K val, 5K test) of a pre-trained
# ALBEF / soft-mask model, as ALBEF's configs/Retrieval_coco.yaml + Retrieval.py (PAPER.md,
# "Downstream protocols"); each part lives in its base:
#   model (../../_base_/models/albef_retrieval.py): ITC with image-id-aware targets + momentum
#     distillation (alpha 0.4, ramped over the first epoch by the runtime's AlphaWarmupHook), ITM with
#     hard negatives that never share the image, no MLM; 384 px, queue 65,536, momentum 0.995;
#   data (../../_base_/datasets/coco_retrieval.py): batch 32 per GPU x 8 = 256, captions cleaned to
#     30 words and 30 tokens; how to prepare the json files;
#   schedule (../../_base_/schedules/retrieval_5e.py): AdamW lr 1e-5, weight decay 0.02, 5 epochs,
#     cosine to 1e-6; evaluation: ITC for every pair, ITM re-rank of each query's top k = 256, on
#     Karpathy val 5K every epoch (the best val r_mean is kept) and test 5K with tools/test.py.
# Metric names carry the split (coco_5k_val/..., coco_5k_test/...), the `protocol` string the k, the
# score and the set size.
#
# Weights: model.pretrained (the model base's `pretrained_ckpt`, or --cfg-options
# model.pretrained=...) is a LOCAL vlreg pre-training checkpoint (e.g.
# work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth; an ALBEF release converted with
# tools/convert_albef.py); the MLM heads are ignored. `load_from` stays None: tools/test.py sets it to
# the checkpoint it evaluates.
#
#   torchrun --nproc_per_node=8 tools/train.py CONFIG --launcher pytorch --amp
#   python tools/test.py CONFIG work_dirs/<config>/best_coco_5k_val_r_mean_epoch_<N>.pth
_base_ = [
    '../../_base_/models/albef_retrieval.py',
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/schedules/retrieval_5e.py',
    '../../_base_/default_runtime.py',
]
model = dict(image_backbone=dict(img_size={{_base_.image_size}}))
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='coco_5k_val/r_mean',
        rule='greater',
    ),
)
