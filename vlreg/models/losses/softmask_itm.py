"""Soft-masked image-text matching (Park & Han, CVPR 2023): extra, harder ITM examples whose image regions
most relevant to one word of the caption are damped, not removed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

from vlreg.registry import LOSSES

from ..fusion.bert_fusion import FusionOutput
from ..utils.gradcam import cross_attention_gradcam, dropout_off
from ..utils.softmask import soft_mask_from_cam
from .base import BaseVLLoss
from .context import LossContext
from .contract import LossModel, VLFeatures


def pick_random_words(word_ids: Tensor, content_mask: Tensor) -> tuple[Tensor, Tensor]:
    """One word per sample, uniformly among its content words (the wordpieces of a word count once).

    Args:
        word_ids: ``[B, L]`` word index of each token, -1 for special / padding tokens.
        content_mask: ``[B, L]`` 1 where the token belongs to a selectable content word.

    Returns:
        ``word [B]`` (a word index) and ``valid [B]`` (False where a sample has no content word).
    """
    b = word_ids.shape[0]
    selectable = content_mask.bool() & (word_ids >= 0)
    num_words = int(word_ids.max().clamp(min=0)) + 1
    present = torch.zeros(b, num_words, dtype=torch.bool, device=word_ids.device)
    rows = torch.arange(b, device=word_ids.device)[:, None].expand_as(word_ids)
    present[rows[selectable], word_ids[selectable]] = True
    keys = torch.rand(b, num_words, device=word_ids.device).masked_fill(~present, -1.0)
    return keys.argmax(dim=1), present.any(dim=1)


def word_map(cam: Tensor, word_ids: Tensor, word: Tensor) -> Tensor:
    """Average of the Grad-CAM rows ``[B, L, N]`` of the tokens of ``word`` -> ``[B, N]``."""
    rows = (word_ids == word[:, None]).to(cam.dtype)
    return (rows[:, :, None] * cam).sum(dim=1) / rows.sum(dim=1, keepdim=True).clamp(min=1)


@LOSSES.register_module()
class SoftMaskITMLoss(BaseVLLoss):
    """ITM on soft-masked image tokens (PAPER.md, "Soft-masked ITM").

    1. Word-conditional Grad-CAM: the gradient of the positive-pair ITM "match" logit w.r.t. the
       cross-attention probabilities of fusion layer ``layer`` (``torch.autograd.grad``: parameter
       gradients are untouched), ReLU, times the probabilities, reduced over heads, image [CLS] dropped.
       ``gradcam_mode='train'`` reuses the step's shared positive-pair fusion pass and ITM logits
       (:meth:`LossContext.positive_fusion`, also the ITM loss's positive rows; training mode, dropout
       on; only that layer computes probabilities); ``'eval'`` runs a separate dropout-free
       pass of the fusion encoder and ITM head on the same (detached) unimodal tokens, in fp32 also
       under autocast, as ALBEF's Grad-CAM recipe runs in eval mode.
    2. One content word per sample at random (``word_ids`` / ``content_mask`` from ``AnnotateWords``).
    3. ``m = 1 - strength * g_hat ** sharpness`` (min-max normalised map, clamped at ``floor``), detached.
    4. The image patch tokens (not [CLS]) fed to the fusion encoder are multiplied by ``m``
       (``apply_to='fusion_tokens'``) or the image pixels are, and the ViT runs again
       (``apply_to='pixels'``); the pair is scored by the ITM head with label ``label`` (1: still a match).

    Reads ``image_tokens``, ``text_tokens``, ``text_mask``, ``word_ids``, ``content_mask`` (and
    ``image`` with ``apply_to='pixels'``); runs in any order relative to ITM. Returns
    ``loss_itm_softmask`` and diagnostics ``softmask_mean`` (mean mask value) and ``softmask_acc``.

    Args:
        layer: fusion layer (index among the fusion layers) whose cross-attention is explained; 2 = the
            third, ALBEF's Grad-CAM layer (BERT layer 8 of BERT-base).
        head_reduction: ``'mean'`` or ``'max'`` over attention heads.
        floor, sharpness, strength: shape of the mask (see :func:`soft_mask_from_cam`).
        label: ITM label of the soft-masked pairs (1 positive, 0 negative).
        prob: probability of applying the loss at a step (1.0: every step). ``SoftMaskWarmupHook``
            multiplies it by a warm-up factor (``warmup_factor``, 1 without the hook).
        gradcam_mode: ``'train'`` (reuse the ITM training pass; default) or ``'eval'`` (a separate
            dropout-free fp32 pass: one more fusion forward on B pairs and its backward to ``layer``).
        apply_to: ``'fusion_tokens'`` or ``'pixels'``.
        loss_weight: weight of ``loss_itm_softmask``.

    Example:
        ``dict(type='SoftMaskITMLoss', layer=2, label=1)``
    """

    requires = ('image_tokens', 'text_tokens', 'text_mask', 'word_ids', 'content_mask')
    needs_heads = ('itm_head',)

    def __init__(
        self,
        layer: int = 2,
        head_reduction: str = 'mean',
        floor: float = 0.0,
        sharpness: float = 1.0,
        strength: float = 1.0,
        label: int = 1,
        prob: float = 1.0,
        apply_to: str = 'fusion_tokens',
        gradcam_mode: str = 'train',
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(loss_weight)
        if label not in (0, 1):
            raise ValueError(f'label must be 0 or 1, got {label}')
        if apply_to not in ('fusion_tokens', 'pixels'):
            raise ValueError(f"apply_to must be 'fusion_tokens' or 'pixels', got {apply_to!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if gradcam_mode not in ('train', 'eval'):
            raise ValueError(f"gradcam_mode must be 'train' or 'eval', got {gradcam_mode!r}")
        self.cross_attn_layer = layer
        self.head_reduction = head_reduction
        self.floor, self.sharpness, self.strength = floor, sharpness, strength
        self.label, self.prob, self.apply_to = label, prob, apply_to
        self.gradcam_mode = gradcam_mode
        self.warmup_factor = 1.0  # set every iteration by SoftMaskWarmupHook when it is configured

    @property
    def reuses_itm_pass(self) -> bool:
        """Whether the shared positive pass must materialise this layer's probabilities."""
        return self.gradcam_mode == 'train'

    @property
    def current_prob(self) -> float:
        """The probability of applying the loss at this step: ``prob * warmup_factor``."""
        return self.prob * self.warmup_factor

    def positive_pass(self, ctx: LossContext) -> tuple[FusionOutput, Tensor]:
        """The positive pairs' fusion output (with this layer's probabilities) and ITM logits: the
        context's shared pass when it keeps this layer, else a pass of this loss's own."""
        model = ctx.need_model()
        if self.gradcam_mode == 'eval':
            return self.eval_pass(ctx.features, model)
        if ctx.attn_layer == self.cross_attn_layer:
            return ctx.positive_fusion(), ctx.positive_itm_logits()
        f = ctx.features
        pos = model.fuse(
            f.text_tokens,
            f.text_mask,
            f.image_tokens,
            attn_layer=self.cross_attn_layer,
            cls_only=True,
        )
        return pos, model.itm_head(pos.cls)

    def eval_pass(self, features: VLFeatures, model: LossModel) -> tuple[FusionOutput, Tensor]:
        """A dropout-free fp32 pass of the fusion encoder and ITM head on the detached tokens."""
        dtype = next(model.fusion.parameters()).dtype  # fp32 under autocast
        text = features.text_tokens.detach().to(dtype)
        image = features.image_tokens.detach().to(dtype)
        with (
            dropout_off(model.fusion, model.itm_head),
            torch.enable_grad(),
            torch.autocast(device_type=image.device.type, enabled=False),
        ):
            pos = model.fuse(
                text, features.text_mask, image, attn_layer=self.cross_attn_layer, cls_only=True
            )
            return pos, model.itm_head(pos.cls)

    def soft_masks(self, ctx: LossContext) -> tuple[Tensor, Tensor, Tensor]:
        """``(mask [B, N], valid [B], word [B])`` for the batch (mask detached)."""
        features = ctx.features
        pos, logits = self.positive_pass(ctx)
        with record_function('softmask/gradcam'):
            cam, _ = cross_attention_gradcam(
                logits[:, 1],
                pos.cross_attn,
                features.text_mask,
                self.head_reduction,
                retain_graph=True,
            )
        word, valid = pick_random_words(features.word_ids, features.content_mask)
        g = word_map(cam.detach(), features.word_ids, word)
        mask = soft_mask_from_cam(
            g, floor=self.floor, sharpness=self.sharpness, strength=self.strength
        )
        mask = torch.where(valid[:, None], mask, torch.ones_like(mask))
        return mask.detach(), valid, word

    def compute(self, ctx: LossContext) -> dict[str, Tensor]:
        image_tokens = ctx.features.image_tokens
        prob = self.current_prob
        if prob < 1.0 and float(torch.rand(())) >= prob:
            zero = image_tokens.sum() * 0.0  # keeps the graph (and DDP) consistent on skipped steps
            return {'loss_itm_softmask': zero, 'softmask_mean': zero.detach() + 1.0}
        mask, valid, _ = self.soft_masks(ctx)
        # the damped tokens' keys / values from the shared ones of the original image (linear)
        kv = ctx.image_kv('image') if ctx.share_image_kv else None
        with record_function('softmask/masked_itm'):
            return self._masked_itm(ctx.features, ctx.need_model(), image_tokens, mask, valid, kv)

    def _masked_itm(
        self,
        features: VLFeatures,
        model: LossModel,
        image_tokens: Tensor,
        mask: Tensor,
        valid: Tensor,
        image_kv: list[tuple[Tensor, Tensor]] | None = None,
    ) -> dict[str, Tensor]:
        text, text_mask = features.text_tokens, features.text_mask
        if self.apply_to == 'fusion_tokens' and image_kv is not None:
            scale = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)  # [CLS] undamped
            damped = model.fusion.scale_image_key_values(image_kv, scale)
            fused = model.fuse(text, text_mask, None, image_kv=damped, cls_only=True)
        else:
            if self.apply_to == 'fusion_tokens':
                masked = torch.cat(
                    [image_tokens[:, :1], image_tokens[:, 1:] * mask[:, :, None]], dim=1
                )
            else:
                gh, gw = model.image_backbone.grid_size
                image = features.image
                pix = F.interpolate(mask.view(-1, 1, gh, gw), size=image.shape[-2:], mode='nearest')
                masked, _ = model.encode_image(image * pix)
            fused = model.fuse(text, text_mask, masked, cls_only=True)
        logits = model.itm_head(fused.cls)
        labels = torch.full((logits.shape[0],), self.label, dtype=torch.long, device=logits.device)
        per_sample = F.cross_entropy(logits, labels, reduction='none')
        weight = valid.to(per_sample.dtype)
        loss = (per_sample * weight).sum() / weight.sum().clamp(min=1)
        acc = ((logits.argmax(dim=1) == labels).float() * weight).sum() / weight.sum().clamp(min=1)
        return {
            'loss_itm_softmask': loss * self.loss_weight,
            'softmask_mean': mask[valid].mean().detach() if valid.any() else mask.new_ones(()),
            'softmask_acc': acc.detach(),
        }
