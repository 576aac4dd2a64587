# SNLI-VE fine-tuning of a pre-trained ALBEF / soft-mask model (PAPER.md "Downstream protocols";
# ALBEF's configs/VE.yaml): 384 px, batch 32 per GPU x 8, AdamW lr 2e-5, weight decay 0.02, 5
# epochs, cosine to 1e-6, MLP head 768-768-3 on the fused [CLS], accuracy on dev (val) and test.
#
# Weights: set `pretrained_ckpt` (below, or --cfg-options model.pretrained=...) to a LOCAL vlreg
# pre-training checkpoint (e.g. work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth).
# Only its image_backbone.* / text_backbone.* / fusion.* tensors are read (weights-only torch.load);
# the momentum copies, projections, ITM / MLM heads and queues are ignored, the head starts random.
# The ViT position embeddings are interpolated from 256 to 384 px by the backbone. `load_from` stays
# None: tools/test.py sets it to the fine-tuned checkpoint it evaluates.
#
# Data (official SNLI-VE release, https://github.com/necla-ml/SNLI-VE):
# data/snli_ve/snli_ve_{train,dev,test}.jsonl and the Flickr30K images in
# data/snli_ve/flickr30k-images/.
# SNLI-VE fine-tuning of a pre-trained ALBEF / soft-mask model (PAPER.md "Downstream protocols";
# ALBEF's configs/VE.yaml): 384 px, batch 32 per GPU x 8, AdamW lr 2e-5, weight decay 0.02, 5
# epochs, cosine to 1e-6, MLP head 768-768-3 on the fused [CLS], accuracy on dev (val) and test.
#
# Weights: set `pretrained_ckpt` (below, or --cfg-options model.pretrained=...) to a LOCAL vlreg
# pre-training checkpoint (e.g. work_dirs/softmask_vit-b16-bert-base_8xb64_4m-30e/epoch_30.pth).
# Only its image_backbone.* / text_backbone.* / fusion.* tensors are read (weights-only torch.load);
# the momentum copies, projections, ITM / MLM heads and queues are ignored, the head starts random.
# The ViT position embeddings are interpolated from 256 to 384 px by the backbone. `load_from` stays
# None: tools/test.py sets it to the fine-tuned checkpoint it evaluates.
#
# Data (official SNLI-VE release, https://github.com/necla-ml/SNLI-VE):
# data/snli_ve/snli_ve_{train,dev,test}.jsonl and the Flickr30K images in
# data/snli_ve/flickr30k-images/.
_base_ = [
    '../../_base_/models/albef_snli_ve.py',
    '../../_base_/datasets/snli_ve.py',
    '../../_base_/schedules/snli_ve_5e.py',
    '../../_base_/default_runtime.py',
]
model = dict(image_backbone=dict(img_size={{_base_.image_size}}))
# alpha is constant in ALBEF's SNLI-VE fine-tuning (warm_up: False): no AlphaWarmupHook
custom_hooks = [dict(type='RNGStateHook')]
default_hooks = dict(
    checkpoint=dict(
        type='VLCheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='accuracy/acc',
        rule='greater',
    )
)
