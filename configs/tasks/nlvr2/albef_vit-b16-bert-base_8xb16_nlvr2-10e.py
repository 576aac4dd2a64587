# NLVR2 fine-tuning (PAPER.md "Downstream protocols"; ALBEF's configs/NLVR.yaml): 384 px, batch 16
# per GPU x 8, AdamW lr 2e-5, weight decay 0.02, 10 epochs, cosine to 1e-6, MLP head 768-768-2 on
# the fused [CLS].
#
# The fusion is ALBEF's NLVR2 encoder (BertPairFusion): each of the 6 fusion layers becomes two
# blocks, block 2i cross-attends to image 0 (left), block 2i+1 to image 1 (right); the two
# cross-attentions of a pair share their key / value projections. A single-image pre-training
# checkpoint fills both blocks of a pair from the same fusion layer
# (BertPairFusion.convert_single_state).
#
# Weights: `pretrained_ckpt` is a LOCAL checkpoint: ALBEF first runs 1 epoch of text-assignment
# pre-training (3-way: the text describes image 0, image 1, or neither) from the 4M checkpoint;
# without that step, point it at the pre-training checkpoint directly (the pair fusion is then
# remapped from the single-image fusion). Only image_backbone.* / text_backbone.* / fusion.* are
# read (weights-only).
#
# Data (official NLVR2 release): data/nlvr2/{train,dev,test1}.json (json lines) and the images in
# data/nlvr2/images/{train/<directory>,dev,test1}/<identifier minus its last field>-img{0,1}.png.
# NLVR2 fine-tuning (PAPER.md "Downstream protocols"; ALBEF's configs/NLVR.yaml): 384 px, batch 16
# per GPU x 8, AdamW lr 2e-5, weight decay 0.02, 10 epochs, cosine to 1e-6, MLP head 768-768-2 on
# the fused [CLS].
#
# The fusion is ALBEF's NLVR2 encoder (BertPairFusion): each of the 6 fusion layers becomes two
# blocks, block 2i cross-attends to image 0 (left), block 2i+1 to image 1 (right); the two
# cross-attentions of a pair share their key / value projections. A single-image pre-training
# checkpoint fills both blocks of a pair from the same fusion layer
# (BertPairFusion.convert_single_state).
#
# Weights: `pretrained_ckpt` is a LOCAL checkpoint: ALBEF first runs 1 epoch of text-assignment
# pre-training (3-way: the text describes image 0, image 1, or neither) from the 4M checkpoint;
# without that step, point it at the pre-training checkpoint directly (the pair fusion is then
# remapped from the single-image fusion). Only image_backbone.* / text_backbone.* / fusion.* are
# read (weights-only).
#
# Data (official NLVR2 release): data/nlvr2/{train,dev,test1}.json (json lines) and the images in
# data/nlvr2/images/{train/<directory>,dev,test1}/<identifier minus its last field>-img{0,1}.png.
_base_ = [
    '../../_base_/models/albef_nlvr2.py',
    '../../_base_/datasets/nlvr2.py',
    '../../_base_/schedules/nlvr2_10e.py',
    '../../_base_/default_runtime.py',
]
model = dict(image_backbone=dict(img_size={{_base_.image_size}}))
custom_hooks = [dict(type='RNGStateHook'), dict(type='AlphaWarmupHook')]
default_hooks = dict(
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='accuracy/acc',
        rule='greater',
    )
)
