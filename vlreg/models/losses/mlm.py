"""Masked language modelling conditioned on the image, with momentum distillation (ALBEF)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vlreg.registry import LOSSES

from ..utils.dist import all_reduce_sum, rank_and_world
from .base import BaseVLLoss
from .context import LossContext


@LOSSES.register_module()
class MLMLoss(BaseVLLoss):
    """``(1 - alpha) * CE + alpha * soft-CE(momentum predictions)`` over the masked positions.

    The masked ids and labels come from the data pipeline (``MaskText``), so a step is deterministic given
    its batch. The text and fusion encoders run on the masked ids with the image tokens; the vocabulary head
    runs on masked positions only. The mean is over the masked tokens of the *global* batch (their count is
    summed across ranks), so a multi-process step equals a single-process one even when ranks hold different
    numbers of masked tokens.

    Reads ``mlm_input_ids``, ``mlm_labels``, ``text_mask``, ``image_tokens``, ``alpha``, the encoded
    ``text_masked`` view when another loss asked for it and, for distillation, the momentum image tokens
    and the model's momentum encoders (without them it is plain CE). Returns ``loss_mlm`` and the
    diagnostic ``mlm_acc``.

    Args:
        distill: use the momentum model's predictions as soft targets (weight ``alpha``).
        loss_weight: weight of ``loss_mlm``.

    Example:
        ``dict(type='MLMLoss')``
    """

    requires = ('mlm_input_ids', 'mlm_labels', 'text_mask', 'image_tokens', 'alpha')
    needs_heads = ('mlm_head',)

    def __init__(self, distill: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.distill = distill

    def compute(self, ctx: LossContext) -> dict[str, Tensor]:
        features, model = ctx.features, ctx.need_model()
        ids, labels, mask = features.mlm_input_ids, features.mlm_labels, features.text_mask
        masked = labels != -100
        if 'text_masked' in features.views:  # encoded already when the masked text is a view
            text = features.views['text_masked'].tokens
        else:
            text = model.text_backbone(ids, mask)
        hidden = model.fuse(text, mask, **ctx.fusion_images([('image', None)])).hidden
        logits = model.mlm_head(hidden[masked])
        target = labels[masked]
        ce = F.cross_entropy(logits.float(), target, reduction='none')
        alpha = float(features.alpha)
        if (
            self.distill
            and alpha > 0
            and features.momentum is not None
            and getattr(model, 'has_momentum', False)
        ):
            with torch.no_grad():
                logits_m = model.momentum_mlm_logits(
                    ids, mask, features.momentum.image_tokens, masked
                )
            soft = -(F.log_softmax(logits.float(), dim=1) * F.softmax(logits_m.float(), dim=1)).sum(
                1
            )
            per_token = (1 - alpha) * ce + alpha * soft
        else:
            per_token = ce
        _, world = rank_and_world()
        count = all_reduce_sum(masked.sum().to(per_token.dtype)) / world
        loss = per_token.sum() / count.clamp(min=1)
        acc = (
            (logits.argmax(dim=1) == target).float().mean().detach()
            if target.numel()
            else logits.new_zeros(())
        )
        return {'loss_mlm': loss * self.loss_weight, 'mlm_acc': acc}
