# ALBEF 4M pre-training recipe (PAPER.md), 8 GPUs x 64 = global batch 512:
#   torchrun --nproc_per_node=8 tools/train.py configs/albef/albef_vit-b16-bert-base_8xb64_4m-30e.py \
#       --launcher pytorch --amp
# Weights from local files only: a DeiT-base / ViT-B/16 state dict for the image encoder and a
# bert-base-uncased folder for the text + fusion encoders (their cross-attention starts random).
_base_ = [
    '../_base_/models/albef_base.py',
    '../_base_/datasets/albef_4m.py',
    '../_base_/schedules/albef_pretrain_30e.py',
    '../_base_/default_runtime.py',
]
bert_path = {{_base_.bert_path}}
model = dict(
    image_backbone=dict(pretrained='data/pretrained/deit_base_patch16_224.pth'),
    text_backbone=dict(pretrained=bert_path),
    fusion=dict(pretrained=bert_path),
    mlm_head=dict(pretrained=bert_path),
)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1, max_keep_ckpts=5))
