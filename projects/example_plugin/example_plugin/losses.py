"""A custom loss: uniformity of the text embeddings on the unit sphere."""

from __future__ import annotations

import math
import torch
from torch import Tensor

from vlreg.models.losses import BaseVLLoss, LossContext
from vlreg.registry import LOSSES


@LOSSES.register_module()
class TextUniformityLoss(BaseVLLoss):
    r"""Uniformity of the L2-normalised text embeddings (Wang & Isola, ICML 2020).

    For the ``B`` text embeddings ``z_1 .. z_B`` of the batch (``ctx.features.text_embed``, unit
    norm)::

        L_uniform = log( 1 / (B (B - 1)) * sum_{i != j} exp(-t * ||z_i - z_j||^2) )

    computed with ``logsumexp`` for stability; ``||z_i - z_j||^2 = 2 - 2 z_i . z_j`` for unit
    vectors. The value lies in ``[-4 t, 0]``: it is 0 when every caption maps to the same point
    (collapse) and decreases as the embeddings spread over the sphere, so adding it with a small
    weight discourages a collapsed text space. The sum runs over this process's batch only. A batch
    of one sample has no pair and gives 0 (still connected to the graph).

    Reads ``text_embed``. Returns ``loss_text_uniformity`` (times ``loss_weight``) and the
    diagnostic ``text_mean_cos`` (mean cosine similarity of distinct pairs, detached).

    Args:
        t: the temperature ``t`` of the Gaussian potential (Wang & Isola use 2).
        loss_weight: weight of ``loss_text_uniformity``.

    Example:
        >>> dict(type='TextUniformityLoss', t=2.0, loss_weight=0.1)
    """

    requires = ('text_embed',)

    def __init__(self, t: float = 2.0, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        if t <= 0:
            raise ValueError(f'TextUniformityLoss: t must be positive, got {t}')
        self.t = float(t)

    def compute(self, ctx: LossContext) -> dict[str, Tensor]:
        """The loss of one batch.

        Args:
            ctx: the step's context; only ``ctx.features.text_embed`` ``[B, E]`` is read.

        Returns:
            ``{'loss_text_uniformity': scalar, 'text_mean_cos': scalar}``.
        """
        z = ctx.features.text_embed.float()
        b = z.shape[0]
        if b < 2:
            zero = z.sum() * 0.0
            return {'loss_text_uniformity': zero, 'text_mean_cos': zero.detach()}
        cos = z @ z.t()
        sq_dist = (2.0 - 2.0 * cos).clamp(min=0.0)
        off_diag = ~torch.eye(b, dtype=torch.bool, device=z.device)
        log_kernel = (-self.t * sq_dist)[off_diag]
        loss = torch.logsumexp(log_kernel, dim=0) - math.log(b * (b - 1))
        return {
            'loss_text_uniformity': loss * self.loss_weight,
            'text_mean_cos': cos[off_diag].mean().detach(),
        }
