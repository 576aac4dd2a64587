"""Image-text contrastive loss with momentum distillation and feature queues (ALBEF)."""

from __future__ import annotations

from collections.abc import Sequence
import torch
import torch.nn.functional as F
from torch import Tensor

from vlreg.registry import LOSSES

from ..utils.dist import gather_no_grad, gather_with_grad, rank_and_world
from .base import BaseVLLoss, check_view_weights, check_views
from .context import LossContext
from .contract import VLFeatures


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over rows of ``-sum_j targets_j * log_softmax(logits)_j``."""
    return -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()


def _scores(rows: Tensor, cols: tuple[Tensor, Tensor | None]) -> Tensor:
    """``rows @ [batch ; queue^T]^T`` ``[n, n_all + Q]``: the batch columns first, then the queue's
    (stored ``[E, Q]``, multiplied in place)."""
    batch, queue = cols
    sim = rows @ batch.t()
    return sim if queue is None else torch.cat([sim, rows @ queue.to(rows.dtype)], dim=1)


@LOSSES.register_module()
class ITCLoss(BaseVLLoss):
    """ALBEF's ITC: ``(CE(s_i2t, y_i2t) + CE(s_t2i, y_t2i)) / 2`` against [batch ; queue] features.

    Rows are this rank's online features; columns are the momentum features of the *global* batch followed
    by the queue, so a multi-process step equals a single-process step at the same global batch (DDP averages
    the per-rank gradients of per-rank means). Targets are ``alpha * softmax(momentum similarities) +
    (1 - alpha) * positives`` (PAPER.md, "ITC with momentum distillation"); positives are the diagonal, or
    every column with the same image id when ``use_image_ids`` (retrieval fine-tuning). Without a momentum
    encoder the columns are the online features gathered with gradient and there is no queue.

    Reads ``image_embed``, ``text_embed``, ``temp``, ``alpha``, the views' embeddings and, when present,
    the momentum embeddings and ``image_ids``. Returns ``loss_itc``. The in-batch similarities ITM mines
    its negatives from are the context's (:meth:`LossContext.similarities`), not written by this loss.

    Args:
        embed_dim: width of the projected features (queue rows).
        queue_size: number of queued momentum features (0 = no queue); any size (a ring buffer).
        use_image_ids: same-image-id pairs are positives (and the queue stores ids).
        views: (image view, text view) pairs whose rows are contrasted: ``('image', 'text')`` is
            ALBEF's; the multi-modal augmentation adds e.g. ``('image_aug', 'text')`` (a distorted
            image) and ``('image', 'text_masked')`` (the masked caption) as extra positives. Columns and
            distillation targets always come from the original pair's momentum features.
        view_weights: one weight per view, ``loss = sum_k w_k * L_k`` with ``L_k`` view k's two-way
            loss. None (default): ``w_k = 1 / len(views)``, the mean over views (every positive row
            weighs the same, as extra rows of one batch); e.g. ``[1, w, w]`` keeps ALBEF's ITC at full
            weight and adds the extra views on top.
        loss_weight: weight of ``loss_itc``.

    Example:
        ``dict(type='ITCLoss', embed_dim=256, queue_size=65536)``
    """

    requires = ('image_embed', 'text_embed', 'temp', 'alpha')

    def __init__(
        self,
        embed_dim: int = 256,
        queue_size: int = 65536,
        use_image_ids: bool = False,
        views: Sequence[Sequence[str]] = (('image', 'text'),),
        loss_weight: float = 1.0,
        view_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(loss_weight)
        self.views = check_views(views)
        self.view_weights = check_view_weights(view_weights, self.views, type(self).__name__)
        self.embed_dim = embed_dim
        self.queue_size = queue_size
        self.use_image_ids = use_image_ids
        # Features are columns ([embed_dim, queue_size]), as ALBEF stores them; random unit vectors at start.
        self.register_buffer('image_queue', F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer('text_queue', F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        if use_image_ids:  # ALBEF's retrieval fine-tuning also queues the image ids
            self.register_buffer('idx_queue', torch.full((1, queue_size), -100, dtype=torch.long))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))
        self._queue_copies: dict[str, Tensor] = {}  # see _queue_copy

    # -- the objective, per direction; focal variants override this ------------------------------------
    def direction_loss(
        self, sim: Tensor, targets: Tensor, pos_targets: Tensor, alpha: float
    ) -> Tensor:
        """Loss of one direction.

        Args:
            sim: logits ``[n, C]``.
            targets: ``alpha * distillation + (1 - alpha) * pos_targets``, rows sum to 1.
            pos_targets: the normalised positives (one-hot, or spread over same-id columns).
            alpha: the distillation weight used in ``targets`` (0 without a momentum model).
        """
        return soft_cross_entropy(sim, targets)

    def compute(self, ctx: LossContext) -> dict[str, Tensor]:
        features = ctx.features
        temp, alpha = features.temp, float(features.alpha)
        v, t = features.image_embed, features.text_embed
        if v.shape[1] != self.embed_dim:
            raise ValueError(
                f'ITCLoss(embed_dim={self.embed_dim}) got features of width {v.shape[1]}'
            )
        rank, _ = rank_and_world()
        n = v.shape[0]
        momentum = features.momentum is not None
        # columns: (batch features [n_all, E], queue [E, Q] or None), scored by `_scores` without
        # concatenating the queue into a [n_all + Q, E] matrix (ALBEF's transposed copy and cat);
        # backward reads the queue after the enqueue, so the products read a copy of it taken now,
        # into a buffer kept between steps (`_queue_copy`)
        if features.momentum is not None:
            v_m, t_m = features.momentum.image_embed.detach(), features.momentum.text_embed.detach()
            v_all, t_all = gather_no_grad(v_m), gather_no_grad(t_m)
            cols_t = (t_all, self._queue_copy('text_queue') if self.queue_size else None)
            cols_v = (v_all, self._queue_copy('image_queue') if self.queue_size else None)
        else:
            cols_t = (gather_with_grad(t), None)
            cols_v = (gather_with_grad(v), None)
            v_all = t_all = None
        num_cols = cols_t[0].shape[0] + (0 if cols_t[1] is None else cols_t[1].shape[1])
        positives = self._positives(features, n, rank, num_cols)
        pos_targets = positives / positives.sum(dim=1, keepdim=True)
        if momentum and alpha > 0:
            with torch.no_grad():
                tgt_i2t = (
                    alpha * F.softmax(_scores(v_m, cols_t) / temp, dim=1)
                    + (1 - alpha) * pos_targets
                )
                tgt_t2i = (
                    alpha * F.softmax(_scores(t_m, cols_v) / temp, dim=1)
                    + (1 - alpha) * pos_targets
                )
        else:
            tgt_i2t = tgt_t2i = pos_targets
            alpha = 0.0
        losses = []
        for image_view, text_view in self.views:
            rows_v = features.image_view(image_view).embed
            rows_t = features.text_view(text_view).embed
            sim_i2t = _scores(rows_v, cols_t) / temp
            sim_t2i = _scores(rows_t, cols_v) / temp
            losses.append(
                (
                    self.direction_loss(sim_i2t, tgt_i2t, pos_targets, alpha)
                    + self.direction_loss(sim_t2i, tgt_t2i, pos_targets, alpha)
                )
                / 2
            )
        if momentum and self.queue_size and ctx.model is not None and ctx.model.training:
            ids = gather_no_grad(features.image_ids) if self.use_image_ids else None
            self._enqueue(v_all, t_all, ids)
        if self.view_weights is None:
            loss = torch.stack(losses).mean()
        else:
            loss = sum(w * view_loss for w, view_loss in zip(self.view_weights, losses))
        return {'loss_itc': loss * self.loss_weight}

    def _queue_copy(self, name: str) -> Tensor:
        """The queue ``name`` as it is now, copied into a tensor this loss keeps between steps.

        The step's similarity products save the copy for backward, which runs after
        :meth:`_enqueue` has overwritten the queue's oldest columns. ALBEF clones the queue (and
        concatenates it) every step: at 65,536 x 256 a fresh 64 MB tensor per queue whose pages the
        system maps anew each time (41 ms a clone in a batch-16 CPU profile, against 4 ms for a copy
        into memory already mapped). The copy is a plain attribute, not a buffer: outside the state
        dict and outside DDP's buffer broadcast. Overwriting it while a graph that saved it still
        waits for backward (two forwards, one backward) makes autograd raise, not compute silently
        wrong gradients."""
        queue = getattr(self, name)
        copies = self._queue_copies
        buf = copies.get(name)
        if (
            buf is None
            or buf.shape != queue.shape
            or buf.dtype != queue.dtype
            or buf.device != queue.device
        ):
            buf = copies[name] = torch.empty_like(queue)
        return buf.copy_(queue)

    def _positives(self, features: VLFeatures, n: int, rank: int, num_cols: int) -> Tensor:
        device = features.image_embed.device
        if self.use_image_ids:
            if features.image_ids is None:
                raise KeyError(
                    'ITCLoss(use_image_ids=True) needs image ids in the batch (image_ids)'
                )
            ids = features.image_ids.view(-1, 1)
            cols = gather_no_grad(features.image_ids.view(-1))
            if num_cols > cols.shape[0]:
                cols = torch.cat([cols, self.idx_queue.view(-1)])
            return (ids == cols.view(1, -1)).float()
        pos = torch.zeros(n, num_cols, device=device)
        pos[torch.arange(n, device=device), rank * n + torch.arange(n, device=device)] = 1.0
        return pos

    @torch.no_grad()
    def _enqueue(self, v_all: Tensor, t_all: Tensor, ids: Tensor | None) -> None:
        """Write the batch into the queues as a ring buffer: row ``i`` goes to column
        ``(ptr + i) % queue_size``, so any queue size works (a short last batch, a size that does
        not divide by the batch); when the size divides, this is ALBEF's whole-batch overwrite."""
        batch = v_all.shape[0]
        ptr = int(self.queue_ptr)
        keep = min(batch, self.queue_size)  # a batch longer than the queue: its last rows win
        cols = (ptr + batch - keep + torch.arange(keep, device=v_all.device)) % self.queue_size
        self.image_queue[:, cols] = v_all[batch - keep :].t().to(self.image_queue.dtype)
        self.text_queue[:, cols] = t_all[batch - keep :].t().to(self.text_queue.dtype)
        if ids is not None:
            self.idx_queue[:, cols] = ids.view(1, -1)[:, batch - keep :]
        self.queue_ptr[0] = (ptr + batch) % self.queue_size
