# The paper's three components as config fragments (PAPER.md); a leaf config merges them into an ALBEF
# config, e.g. `model = dict(losses=dict(itc={{_base_.itc_method}}, ...))` (MMEngine forbids the same
# top-level key in two bases, so this file defines fragments, not `model`). Options not listed take the
# class defaults documented in each loss.
# 1. soft-masked ITM: Grad-CAM of the ITM score on the 3rd fusion layer's cross-attention (index 2), one
#    random content word per sample, m = 1 - g_hat on the patch tokens fed to the fusion encoder, label 1.
softmask_method = dict(type='SoftMaskITMLoss', layer=2, head_reduction='mean', label=1, prob=1.0,
                       apply_to='fusion_tokens')
# 2. focal ITC: (1 - p)^gamma modulation of ALBEF's soft-target cross-entropy.
focal_method = dict(type='FocalITCLoss', gamma=2.0, modulate='all')
# 3. multi-modal augmentation: the distorted image view and the masked caption are extra positives for
#    ITC; the distorted view is an extra positive for ITM.
itc_views = [('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')]
itm_views = [('image', 'text'), ('image_aug', 'text')]
itc_method = dict(focal_method, views=itc_views)
itm_method = dict(views=itm_views)
