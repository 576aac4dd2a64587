"""Retrieval ranking in memory linear in the number of queries: chunked ITC, sparse top-k re-rank.

:mod:`vlreg.evaluation.retrieval` works on full ``[Q, C]`` score matrices. At COCO 5K's shape
(5,000 images x 25,000 captions) each such matrix is 125 M floats (500 MB), and a re-ranked
evaluation holds several. The functions here never build one:

* :func:`chunked_topk` computes the similarity ``query @ cand.T`` ``chunk_size`` rows at a time
  and keeps each query's ``k`` best candidates (indices and similarities);
* :func:`chunked_itc_ranks` gives the ground-truth ranks of the full similarity, chunk by chunk;
* :func:`union_pairs` merges both directions' top-k lists into the distinct (image, text) pairs,
  sorted by image, so each pair is scored once and each image's pairs are contiguous;
* :func:`sparse_ground_truth_ranks` ranks from the re-ranked top-k alone, every other candidate
  holding ``fill``: exactly :func:`~vlreg.evaluation.retrieval.ground_truth_ranks` of the dense
  matrix (same tie rules).

Peak temporary memory: ``chunk_size * C`` floats for a similarity block (plus its sort), and
``O((N_img + N_txt) * k)`` for the top-k lists and pair scores; nothing grows as ``N_img * N_txt``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .retrieval import TIES, ground_truth_ranks


def _check_embeds(query: Tensor, cand: Tensor) -> None:
    if query.dim() != 2 or cand.dim() != 2 or query.shape[1] != cand.shape[1]:
        raise ValueError(
            f'embeddings must be [Q, D] and [C, D], got {tuple(query.shape)} and '
            f'{tuple(cand.shape)}'
        )


def chunked_topk(
    query: Tensor, cand: Tensor, k: int, chunk_size: int = 1024
) -> tuple[Tensor, Tensor]:
    """Each query's ``k`` most similar candidates (dot product), best first.

    Ties are broken by the lower candidate index (a stable sort), as
    :func:`~vlreg.evaluation.retrieval.topk_candidates` does on the full matrix.

    Args:
        query: ``[Q, D]`` query embeddings.
        cand: ``[C, D]`` candidate embeddings.
        k: candidates kept, ``1 <= k <= C``.
        chunk_size: queries whose similarity row is held at once.

    Returns:
        ``(indices [Q, k] int64, similarities [Q, k] float32)`` on the device of ``query``.
    """
    _check_embeds(query, cand)
    if not 1 <= k <= cand.shape[0]:
        raise ValueError(f'k must be in [1, {cand.shape[0]}], got {k}')
    idx = torch.empty(query.shape[0], k, dtype=torch.long, device=query.device)
    val = torch.empty(query.shape[0], k, dtype=torch.float32, device=query.device)
    cand_t = cand.t()
    for start in range(0, query.shape[0], chunk_size):
        block = (query[start : start + chunk_size] @ cand_t).float()
        top = block.sort(dim=1, descending=True, stable=True)
        idx[start : start + chunk_size] = top.indices[:, :k]
        val[start : start + chunk_size] = top.values[:, :k]
    return idx, val


def chunked_itc_ranks(
    query: Tensor,
    cand: Tensor,
    ground_truth: Sequence[Sequence[int]],
    ties: str = 'pessimistic',
    chunk_size: int = 1024,
) -> Tensor:
    """Ground-truth ranks of the similarity ``query @ cand.T`` without holding it whole.

    Args:
        query: ``[Q, D]``; ``cand``: ``[C, D]``.
        ground_truth: each query's ground-truth candidates.
        ties: ``'pessimistic'`` or ``'optimistic'``.
        chunk_size: queries per similarity block.

    Returns:
        ``[Q]`` int64 ranks, as :func:`~vlreg.evaluation.retrieval.ground_truth_ranks`.
    """
    _check_embeds(query, cand)
    if len(ground_truth) != query.shape[0]:
        raise ValueError(f'{query.shape[0]} queries but {len(ground_truth)} ground-truth lists')
    parts = []
    for start in range(0, query.shape[0], chunk_size):
        block = query[start : start + chunk_size] @ cand.t()
        parts.append(
            ground_truth_ranks(block, ground_truth[start : start + chunk_size], ties, chunk_size)
        )
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=query.device)


def union_pairs(cand_i2t: Tensor, cand_t2i: Tensor, num_txt: int) -> Tensor:
    """The distinct (image, text) pairs of both directions' candidate lists, as sorted keys.

    Args:
        cand_i2t: ``[N_img, k1]`` text candidates of every image.
        cand_t2i: ``[N_txt, k2]`` image candidates of every text.
        num_txt: ``N_txt``.

    Returns:
        ``[P]`` int64 keys ``image * num_txt + text``, ascending (so sorted by image, then text);
        ``P <= N_img * k1 + N_txt * k2``, fewer when a pair is wanted by both directions.
    """
    rows_i = torch.arange(cand_i2t.shape[0], device=cand_i2t.device)[:, None]
    rows_t = torch.arange(cand_t2i.shape[0], device=cand_t2i.device)[:, None]
    keys = torch.cat(
        [
            (rows_i * num_txt + cand_i2t).reshape(-1),
            (cand_t2i * num_txt + rows_t).reshape(-1).to(cand_i2t.device),
        ]
    )
    return torch.unique(keys, sorted=True)


def lookup_pairs(
    keys: Tensor, scores: Tensor, query: Tensor, num_txt: int, image_query: bool
) -> Tensor:
    """The scores of each query's candidates, read from the sorted pair keys.

    Args:
        keys: ``[P]`` sorted keys of :func:`union_pairs`; ``scores``: ``[P]`` their scores.
        query: ``[Q, k]`` candidate indices (texts of each image if ``image_query``, else
            images of each text).
        num_txt: ``N_txt``.
        image_query: whether the queries are images.

    Returns:
        ``[Q, k]`` scores.
    """
    rows = torch.arange(query.shape[0], device=query.device)[:, None]
    want = rows * num_txt + query if image_query else query * num_txt + rows
    pos = torch.searchsorted(keys, want.reshape(-1)).clamp_(max=keys.numel() - 1)
    if not bool((keys[pos] == want.reshape(-1)).all()):
        raise ValueError('a candidate pair was not scored')
    return scores[pos].reshape(query.shape)


def sparse_ground_truth_ranks(
    cand: Tensor,
    scores: Tensor,
    ground_truth: Sequence[Sequence[int]],
    num_candidates: int,
    fill: float = -100.0,
    ties: str = 'pessimistic',
) -> Tensor:
    """Ground-truth ranks when only each query's top-k candidates have a score.

    Equals :func:`~vlreg.evaluation.retrieval.ground_truth_ranks` of the dense ``[Q, C]`` matrix
    holding ``scores`` at ``cand`` and ``fill`` everywhere else, without building it:
    ``rank = #{non-GT top-k c : s_c >= best} + [fill >= best] * #{non-GT outside the top-k}``
    (``>`` for ``ties='optimistic'``), ``best`` being the best ground truth's score (``fill``
    for a ground truth outside the top-k).

    Args:
        cand: ``[Q, k]`` distinct candidate indices per query.
        scores: ``[Q, k]`` their scores.
        ground_truth: each query's (non-empty) ground-truth candidates.
        num_candidates: ``C``.
        fill: the score of every candidate outside the top-k.
        ties: ``'pessimistic'`` or ``'optimistic'``.

    Returns:
        ``[Q]`` int64 ranks, 0 = top.
    """
    if ties not in TIES:
        raise ValueError(f'ties must be one of {TIES}, got {ties!r}')
    if cand.shape != scores.shape or cand.dim() != 2:
        raise ValueError(
            f'cand {tuple(cand.shape)} and scores {tuple(scores.shape)} must be equal [Q, k]'
        )
    num_q, k = cand.shape
    if len(ground_truth) != num_q:
        raise ValueError(f'{num_q} queries but {len(ground_truth)} ground-truth lists')
    counts = torch.tensor([len(g) for g in ground_truth], dtype=torch.long, device=cand.device)
    if num_q and int(counts.min()) == 0:
        raise ValueError(f'query {int(torch.argmin(counts))} has no ground-truth candidate')
    gt_rows = torch.repeat_interleave(torch.arange(num_q, device=cand.device), counts)
    gt_keys = gt_rows * num_candidates + torch.tensor(
        [c for g in ground_truth for c in g], dtype=torch.long, device=cand.device
    )
    rows = torch.arange(num_q, device=cand.device)[:, None]
    is_gt = torch.isin(rows * num_candidates + cand, gt_keys)
    scores = scores.float()
    if torch.isnan(scores).any():
        raise ValueError('scores contain NaN')
    best = scores.masked_fill(~is_gt, float('-inf')).amax(dim=1)
    gt_outside = counts - is_gt.sum(1)
    best = torch.where(gt_outside > 0, best.clamp(min=fill), best)
    ahead = scores >= best[:, None] if ties == 'pessimistic' else scores > best[:, None]
    fill_ahead = fill >= best if ties == 'pessimistic' else fill > best
    outside_non_gt = (num_candidates - k) - gt_outside
    return (ahead & ~is_gt).sum(1) + fill_ahead.long() * outside_non_gt
