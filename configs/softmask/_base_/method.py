# The paper's three components as config fragments (PAPER.md); a leaf config merges them into an ALBEF
# config, e.g. `model = dict(losses=dict(itc={{_base_.itc_method}}, ...))` (MMEngine forbids the same
# top-level key in two bases, so this file defines fragments, not `model`). Options not listed take the
# class defaults documented in each loss.
# 1. soft-masked ITM: Grad-CAM of the ITM score on the 3rd fusion layer's cross-attention (index 2), one
#    random content word per sample, m = 1 - g_hat on the patch tokens fed to the fusion encoder, label 1.
#    gradcam_mode='train' reuses ITM's training-mode positive pass ('eval': a dropout-free fp32 pass,
#    docs/softmask.md). Warm-up (off by default): custom_hooks += [dict(type='SoftMaskWarmupHook',
#    start_iter=N, ramp_iters=M)].
softmask_method = dict(
    type='SoftMaskITMLoss',
    layer=2,
    head_reduction='mean',
    label=1,
    prob=1.0,
    apply_to='fusion_tokens',
    gradcam_mode='train',
)
# 2. focal ITC: (1 - p)^gamma modulation of ALBEF's soft-target cross-entropy.
focal_method = dict(type='FocalITCLoss', gamma=2.0, modulate='all')
# 3. multi-modal augmentation (PAPER.md): the distorted image view and the masked caption are extra
#    positives for ITC and for ITM. ITC: the views' two-way losses averaged (each 1/3: every positive
#    row weighs the same); ITM: every row of the cross-entropy weighs 1 (B + 2B positives, 2B negatives).
#    Alternatives: itc_view_weights = [1.0, w, w] keeps ALBEF's ITC at full weight; ITM without the
#    masked caption: itm_views = [('image', 'text'), ('image_aug', 'text')] (vlreg before issue 7).
itc_views = [('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')]
itc_view_weights = [1 / 3, 1 / 3, 1 / 3]
itm_views = [('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')]
itm_view_weights = [1.0, 1.0, 1.0]
itc_method = dict(focal_method, views=itc_views, view_weights=itc_view_weights)
itm_method = dict(views=itm_views, view_weights=itm_view_weights)
# 3'. the caption half of (3), for models whose image pixels must stay the same between epochs (the
#    real-photo model caches its frozen CNN stages, configs/softmask/softmask_effnet-lite0-*.py): the
#    masked caption as the one extra ITC positive (ITC: the two views' losses averaged; ITM unchanged).
itc_views_caption = [('image', 'text'), ('image', 'text_masked')]
itc_method_caption = dict(focal_method, views=itc_views_caption)
