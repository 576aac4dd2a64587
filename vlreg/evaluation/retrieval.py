"""Pure image-text retrieval functions: ranks, recall@K and the ITC top-k -> ITM re-rank.

Nothing here knows a model, a runner or distributed training: the inputs are score matrices,
index lists and a pair-scoring callable, so each function can be tested against a brute-force
reference.

Conventions:

* ``scores_i2t`` is ``[N_img, N_txt]`` (rows = image queries, columns = candidate texts);
  ``scores_t2i`` is ``[N_txt, N_img]``. Higher is better.
* ``img2txt[i]`` lists the ground-truth text indices of image ``i`` (COCO / Flickr30K: five or
  more); ``txt2img[t]`` is the one ground-truth image of text ``t``.
* A rank is 0-based: rank 0 means the ground truth is the top candidate. A query with several
  ground truths gets the rank of its best-placed one (ALBEF's text-retrieval protocol).

Ties are resolved without looking at a sort order, so the result never depends on a sort
algorithm. With ``ties='pessimistic'`` (the default) a ground truth is placed *after* every
non-ground-truth candidate whose score equals its own: ``rank = #{non-GT c : s_c >= s_best_gt}``;
with ``ties='optimistic'`` it is placed before them: ``rank = #{non-GT c : s_c > s_best_gt}``.
Ties among ground truths never matter, the best one is taken. The pessimistic rule matters after
a top-k re-rank: every candidate outside the top-k holds the same fill value, and a ground truth
among them must not count as retrieved at a K > k (the optimistic rule would rank it k), nor
should a constant-score model score 100 %. (ALBEF's code takes the position in an unstable
argsort, which leaves ties to the sort algorithm.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

PairScorer = Callable[[Tensor, Tensor], Tensor]
ProgressFn = Callable[[int, int], None]

TIES = ('pessimistic', 'optimistic')


def ground_truth_ranks(
    scores: Tensor,
    ground_truth: Sequence[Sequence[int]],
    ties: str = 'pessimistic',
    chunk_size: int = 1024,
) -> Tensor:
    """Rank of the best-placed ground-truth candidate of every query.

    Args:
        scores: ``[Q, C]`` scores, higher is better; NaN is rejected.
        ground_truth: for each of the ``Q`` queries, its (non-empty) list of ground-truth
            candidates.
        ties: ``'pessimistic'`` or ``'optimistic'``, see the module docstring.
        chunk_size: queries processed at once, which bounds the temporary memory to
            ``chunk_size * C`` elements.

    Returns:
        ``[Q]`` int64 ranks on the device of ``scores``, 0 = top.
    """
    if ties not in TIES:
        raise ValueError(f'ties must be one of {TIES}, got {ties!r}')
    if scores.dim() != 2:
        raise ValueError(f'scores must be 2-D [queries, candidates], got {tuple(scores.shape)}')
    num_q, num_c = scores.shape
    if len(ground_truth) != num_q:
        raise ValueError(f'{num_q} queries in scores but {len(ground_truth)} ground-truth lists')
    counts = torch.tensor([len(g) for g in ground_truth], dtype=torch.long)
    if num_q and int(counts.min()) == 0:
        raise ValueError(f'query {int(torch.argmin(counts))} has no ground-truth candidate')
    device = scores.device
    flat_cols = torch.tensor([c for g in ground_truth for c in g], dtype=torch.long)
    if flat_cols.numel() and (int(flat_cols.min()) < 0 or int(flat_cols.max()) >= num_c):
        raise ValueError(f'ground-truth index out of range [0, {num_c})')
    flat_rows = torch.repeat_interleave(torch.arange(num_q), counts)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
    flat_rows, flat_cols = flat_rows.to(device), flat_cols.to(device)

    ranks = torch.empty(num_q, dtype=torch.long, device=device)
    for start in range(0, num_q, chunk_size):
        end = min(start + chunk_size, num_q)
        block = scores[start:end].float()
        if torch.isnan(block).any():
            raise ValueError('scores contain NaN')
        is_gt = torch.zeros_like(block, dtype=torch.bool)
        lo, hi = offsets[start], offsets[end]
        is_gt[flat_rows[lo:hi] - start, flat_cols[lo:hi]] = True
        best = block.masked_fill(~is_gt, float('-inf')).amax(dim=1, keepdim=True)
        ahead = block >= best if ties == 'pessimistic' else block > best
        ranks[start:end] = (ahead & ~is_gt).sum(dim=1)
    return ranks


def text_retrieval_ranks(
    scores_i2t: Tensor,
    img2txt: Sequence[Sequence[int]],
    ties: str = 'pessimistic',
    chunk_size: int = 1024,
) -> Tensor:
    """Text-retrieval rank of each image: the best rank among its ground-truth texts.

    Args:
        scores_i2t: ``[N_img, N_txt]`` image-to-text scores.
        img2txt: ground-truth text indices of every image.
        ties: tie rule, see the module docstring.
        chunk_size: images processed at once.

    Returns:
        ``[N_img]`` int64 ranks, 0 = top.
    """
    return ground_truth_ranks(scores_i2t, img2txt, ties=ties, chunk_size=chunk_size)


def image_retrieval_ranks(
    scores_t2i: Tensor, txt2img: Sequence[int], ties: str = 'pessimistic', chunk_size: int = 1024
) -> Tensor:
    """Image-retrieval rank of each text: the rank of its one ground-truth image.

    Args:
        scores_t2i: ``[N_txt, N_img]`` text-to-image scores.
        txt2img: the ground-truth image index of every text.
        ties: tie rule, see the module docstring.
        chunk_size: texts processed at once.

    Returns:
        ``[N_txt]`` int64 ranks, 0 = top.
    """
    return ground_truth_ranks(
        scores_t2i, [[int(i)] for i in txt2img], ties=ties, chunk_size=chunk_size
    )


def recall_at_k(ranks: Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Recall@K in percent: the share of queries whose rank is below K.

    Args:
        ranks: ``[Q]`` 0-based ranks.
        ks: the cut-offs.

    Returns:
        ``{k: recall in [0, 100]}``.
    """
    if ranks.numel() == 0:
        raise ValueError('recall of an empty set of queries is undefined')
    num = ranks.numel()
    return {int(k): 100.0 * int((ranks < k).sum()) / num for k in ks}


def metrics_from_ranks(
    txt_ranks: Tensor, img_ranks: Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """ALBEF's retrieval metrics from the two rank vectors.

    Args:
        txt_ranks: ``[N_img]`` text-retrieval ranks (image queries).
        img_ranks: ``[N_txt]`` image-retrieval ranks (text queries).
        ks: the cut-offs.

    Returns:
        ``txt_r{k}``, ``txt_r_mean``, ``img_r{k}``, ``img_r_mean`` and ``r_mean`` (the mean of the
        two means), all in percent.
    """
    out: dict[str, float] = {}
    for name, ranks in (('txt', txt_ranks), ('img', img_ranks)):
        recalls = recall_at_k(ranks, ks)
        out.update({f'{name}_r{k}': v for k, v in recalls.items()})
        out[f'{name}_r_mean'] = sum(recalls.values()) / len(recalls)
    out['r_mean'] = (out['txt_r_mean'] + out['img_r_mean']) / 2
    return out


def retrieval_metrics(
    scores_i2t: Tensor,
    scores_t2i: Tensor,
    img2txt: Sequence[Sequence[int]],
    txt2img: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    ties: str = 'pessimistic',
) -> dict[str, float]:
    """Text and image retrieval R@K (percent) with ALBEF's key names.

    Args:
        scores_i2t: ``[N_img, N_txt]`` image-to-text scores.
        scores_t2i: ``[N_txt, N_img]`` text-to-image scores (not necessarily the transpose: after a
            re-rank the two directions differ).
        img2txt: ground-truth text indices of every image.
        txt2img: ground-truth image index of every text.
        ks: the cut-offs.
        ties: tie rule, see the module docstring.

    Returns:
        See :func:`metrics_from_ranks`.
    """
    return metrics_from_ranks(
        text_retrieval_ranks(scores_i2t, img2txt, ties),
        image_retrieval_ranks(scores_t2i, txt2img, ties),
        ks,
    )


def topk_candidates(
    sim: Tensor, k: int, rows: Tensor | None = None, chunk_size: int = 1024
) -> Tensor:
    """Indices of the ``k`` best candidates of each query, best first.

    A stable descending sort is used instead of :func:`torch.topk` so that equal similarities are
    always broken the same way (lower candidate index first).

    Args:
        sim: ``[Q, C]`` similarities.
        k: how many candidates, ``1 <= k <= C``.
        rows: the queries to process (default: all), on any device.
        chunk_size: queries sorted at once.

    Returns:
        ``[len(rows), k]`` int64 candidate indices on the device of ``sim``.
    """
    rows = torch.arange(sim.shape[0], device=sim.device) if rows is None else rows.to(sim.device)
    out = torch.empty(rows.numel(), k, dtype=torch.long, device=sim.device)
    for start in range(0, rows.numel(), chunk_size):
        block = sim[rows[start : start + chunk_size]].float()
        order = block.sort(dim=1, descending=True, stable=True).indices
        out[start : start + chunk_size] = order[:, :k]
    return out


def topk_rerank(
    sim: Tensor,
    k: int | None,
    pair_scores: PairScorer,
    batch_size: int,
    fill: float = -100.0,
    add_sim: bool = False,
    rows: Sequence[int] | Tensor | None = None,
    chunk_size: int = 1024,
    progress: ProgressFn | None = None,
) -> Tensor:
    """Re-score each query's top-k candidates (by ``sim``) with a pair scorer; others get ``fill``.

    The (query, candidate) pairs are flattened query-major and handed to ``pair_scores`` in batches
    of ``batch_size`` pairs: ``ceil(len(rows) * k / batch_size)`` calls in all, never one per query.

    Args:
        sim: ``[Q, C]`` first-stage similarities (ITC).
        k: candidates re-scored per query; ``None`` or ``k >= C`` re-scores all of them.
        pair_scores: ``(query_idx [P], candidate_idx [P]) -> [P]`` scores (e.g. the ITM match
            logit); the indices are int64 on the device of ``sim`` and index the full ``sim``.
        batch_size: pairs per ``pair_scores`` call.
        fill: the score of every candidate outside the top-k (ALBEF: -100).
        add_sim: score = pair score + ``sim`` (BLIP / LAVIS: ITM + ITC) instead of the pair score
            alone (ALBEF: ITM only).
        rows: the queries to process, e.g. one rank's shard (default: all ``Q``).
        chunk_size: queries sorted at once when selecting the top-k.
        progress: called as ``progress(pairs_done, pairs_total)`` after every batch.

    Returns:
        ``[len(rows), C]`` float32 scores on the device of ``sim``, row ``i`` for query ``rows[i]``
        (``[Q, C]`` when ``rows`` is None).
    """
    if sim.dim() != 2:
        raise ValueError(f'sim must be 2-D [queries, candidates], got shape {tuple(sim.shape)}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    num_q, num_c = sim.shape
    kk = num_c if k is None or k >= num_c else int(k)
    if kk < 1:
        raise ValueError(f'k must be >= 1 or None (all candidates), got {k}')
    device = sim.device
    if rows is None:
        rows_t = torch.arange(num_q, device=device)
    else:
        rows_t = torch.as_tensor(rows, dtype=torch.long).to(device).reshape(-1)
    num_rows = rows_t.numel()
    # all candidates: the candidate of pair (query, j) is j, nothing to sort or store
    cand = None if kk == num_c else topk_candidates(sim, kk, rows_t, chunk_size)

    out = torch.full((num_rows, num_c), float(fill), dtype=torch.float32, device=device)
    total = num_rows * kk
    for start in range(0, total, batch_size):
        end = min(start + batch_size, total)
        pair = torch.arange(start, end, device=device)
        local_row, slot = pair // kk, pair % kk
        c_idx = slot if cand is None else cand[local_row, slot]
        q_idx = rows_t[local_row]
        score = pair_scores(q_idx, c_idx).reshape(-1).to(device=device, dtype=torch.float32)
        if score.numel() != pair.numel():
            raise ValueError(
                f'pair_scores returned {score.numel()} scores for {pair.numel()} pairs'
            )
        if add_sim:
            score = score + sim[q_idx, c_idx].float()
        out[local_row, c_idx] = score
        if progress is not None:
            progress(end, total)
    return out


def chance_recall(num_candidates: int, num_ground_truth: Sequence[int], k: int) -> float:
    """Expected recall@k (percent) of a random ranking: the mean over queries of
    ``1 - C(N - g, k) / C(N, k)``, the probability that one of a query's ``g`` ground truths among
    ``N`` candidates lands in a uniformly random top-``k``."""
    total = 0.0
    for g in num_ground_truth:
        miss = 1.0
        for i in range(min(k, num_candidates)):
            miss *= max(0, num_candidates - g - i) / (num_candidates - i)
        total += 1.0 - miss
    return 100.0 * total / max(1, len(num_ground_truth))
