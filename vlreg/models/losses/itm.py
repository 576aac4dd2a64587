"""Image-text matching with hard negatives mined from the contrastive similarities (ALBEF)."""

from __future__ import annotations

from collections.abc import Sequence
import torch
import torch.nn.functional as F
from torch import Tensor

from vlreg.registry import LOSSES

from .base import BaseVLLoss, check_view_weights, check_views
from .context import LossContext


@torch.no_grad()
def sample_hard_negatives(
    sim_i2t: Tensor, sim_t2i: Tensor, image_ids: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """One negative image per text and one negative text per image, drawn from softmax(similarity).

    The diagonal, and every pair with the same image id when ``image_ids`` is given, get probability 0
    (ALBEF adds 1e-5 before zeroing so that no row is all zero). One ``torch.multinomial`` call per
    direction on the whole matrix.

    Returns:
        ``image_neg_idx [B]`` (for text b, the index of its negative image) and ``text_neg_idx [B]``
        (for image b, the index of its negative text).
    """
    b = sim_i2t.shape[0]
    if b < 2:
        raise ValueError('ITM hard negatives need at least 2 samples per batch on each process')
    if image_ids is None:
        same = torch.eye(b, dtype=torch.bool, device=sim_i2t.device)
    else:
        ids = image_ids.view(-1)
        same = ids[:, None] == ids[None, :]
    w_t2i = (F.softmax(sim_t2i.float(), dim=1) + 1e-5).masked_fill(same, 0)
    w_i2t = (F.softmax(sim_i2t.float(), dim=1) + 1e-5).masked_fill(same, 0)
    empty = w_t2i.sum(dim=1) == 0
    if empty.any():
        raise ValueError(
            f'{int(empty.sum())} samples have no valid negative: every sample in the batch '
            'shares their image id; use larger or more varied batches'
        )
    image_neg_idx = torch.multinomial(w_t2i, 1).squeeze(1)
    text_neg_idx = torch.multinomial(w_i2t, 1).squeeze(1)
    return image_neg_idx, text_neg_idx


@LOSSES.register_module()
class ITMLoss(BaseVLLoss):
    """Binary matching on B positive pairs and 2B hard negatives: CE over 3B pairs.

    Rows, labels: the B original pairs (1), the B pairs of each extra view in ``views`` order (1), then
    the negatives in ALBEF's order: (text b, image ``image_neg_idx[b]``) then (text ``text_neg_idx[b]``,
    image b) (0). The positive rows come from the context's shared positive pass
    (:meth:`LossContext.positive_fusion` / :meth:`~LossContext.positive_itm_logits`, which the
    soft-masked ITM reuses) and the negatives from :meth:`LossContext.hard_negatives` (drawn from the
    in-batch ITC similarities), so this loss runs in any order relative to ITC and the soft-masked ITM.

    Reads ``image_tokens``, ``text_tokens``, ``text_mask``, the views' tokens and ``image_ids`` when
    ``use_image_ids``. Returns ``loss_itm`` and the diagnostic ``itm_acc``.

    Args:
        use_image_ids: never pick a negative with the same image id (fine-tuning with several captions per
            image).
        views: (image view, text view) pairs scored as positives; ``('image', 'text')`` is ALBEF's and
            must be present; e.g. ``('image_aug', 'text')`` and ``('image', 'text_masked')`` add the
            multi-modal augmentation's views as extra positive pairs (negatives stay ALBEF's 2B).
        view_weights: one weight per view for its rows of the cross-entropy (the original view's weight
            also weighs the 2B negatives): ``loss = sum_i w_i CE_i / sum_i w_i``. None (default): every
            row weighs 1, the plain mean over all rows.
        loss_weight: weight of ``loss_itm``.

    Example:
        ``dict(type='ITMLoss')``
    """

    requires = ('image_tokens', 'text_tokens', 'text_mask', 'image_embed', 'text_embed', 'temp')
    needs_heads = ('itm_head',)

    def __init__(
        self,
        use_image_ids: bool = False,
        views: Sequence[Sequence[str]] = (('image', 'text'),),
        loss_weight: float = 1.0,
        view_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(loss_weight)
        self.use_image_ids = use_image_ids
        self.views = check_views(views)
        self.view_weights = check_view_weights(view_weights, self.views, type(self).__name__)
        if ('image', 'text') not in self.views:
            raise ValueError(
                "ITMLoss views must include ('image', 'text'): hard negatives are mined "
                'for the original pairs'
            )

    def compute(self, ctx: LossContext) -> dict[str, Tensor]:
        image_neg_idx, text_neg_idx = ctx.hard_negatives(self.use_image_ids)
        return self.loss_with_negatives(ctx, image_neg_idx, text_neg_idx)

    def loss_with_negatives(
        self, ctx: LossContext, image_neg_idx: Tensor, text_neg_idx: Tensor
    ) -> dict[str, Tensor]:
        """The loss for given negative indices (used directly by tests and the ALBEF reference check)."""
        features, model = ctx.features, ctx.need_model()
        img, txt, mask = features.image_tokens, features.text_tokens, features.text_mask
        b = img.shape[0]
        pos_logits = ctx.positive_itm_logits()  # first, as ALBEF runs the positive pass first
        neg_txt, neg_mask = [txt, txt[text_neg_idx]], [mask, mask[text_neg_idx]]
        image_rows: list[tuple[str, Tensor | None]] = [('image', image_neg_idx), ('image', None)]
        extra = [v for v in self.views if v != ('image', 'text')]
        for image_view, text_view in extra:  # extra positives ride in the same fusion call
            neg_txt.append(features.text_view(text_view).tokens)
            neg_mask.append(mask)
            image_rows.append((image_view, None))
        rest = model.fuse(
            torch.cat(neg_txt), torch.cat(neg_mask), cls_only=True, **ctx.fusion_images(image_rows)
        )
        n_pos = b * (1 + len(extra))
        rest_logits = model.itm_head(torch.cat([rest.cls[2 * b :], rest.cls[: 2 * b]]))
        logits = torch.cat([pos_logits, rest_logits])
        labels = torch.cat(
            [torch.ones(n_pos, dtype=torch.long), torch.zeros(2 * b, dtype=torch.long)]
        ).to(logits.device)
        if self.view_weights is None:
            loss = F.cross_entropy(logits, labels)
        else:
            weights = dict(zip(self.views, self.view_weights))
            per_view = (
                [weights[('image', 'text')]]
                + [weights[v] for v in extra]
                + [weights[('image', 'text')]] * 2
            )
            per_row = F.cross_entropy(logits, labels, reduction='none')
            rows = torch.tensor(
                per_view, dtype=per_row.dtype, device=per_row.device
            ).repeat_interleave(b)
            loss = (rows * per_row).sum() / rows.sum()
        acc = (logits.argmax(dim=1) == labels).float().mean().detach()
        return {'loss_itm': loss * self.loss_weight, 'itm_acc': acc}
