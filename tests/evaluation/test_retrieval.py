"""Retrieval ranks, recall@K and the top-k re-rank, against brute-force references written here."""

from __future__ import annotations

import math
import random

import pytest
import torch

from vlreg.evaluation.retrieval import (
    ground_truth_ranks,
    image_retrieval_ranks,
    recall_at_k,
    retrieval_metrics,
    text_retrieval_ranks,
    topk_rerank,
)


# ------------------------------------------------------------------------- brute-force references
def brute_rank(row: list[float], gt: set[int], ties: str) -> int:
    """Position of the first ground truth in the candidates sorted by score (Python sort).

    Pessimistic: among equal scores the non-ground-truth candidates come first; optimistic: last.
    """
    gt_last = ties == 'pessimistic'
    order = sorted(range(len(row)), key=lambda c: (-row[c], (c in gt) == gt_last))
    return next(pos for pos, c in enumerate(order) if c in gt)


def brute_recall(ranks: list[int], k: int) -> float:
    return 100.0 * sum(1 for r in ranks if r < k) / len(ranks)


def random_problem(n_img: int, seed: int, integer_scores: bool = False):
    """A random retrieval problem: 1-5 captions per image, texts in shuffled order."""
    rng = random.Random(seed)
    owners = [i for i in range(n_img) for _ in range(rng.randint(1, 5))]
    rng.shuffle(owners)
    txt2img = owners
    img2txt = [[t for t, i in enumerate(txt2img) if i == img] for img in range(n_img)]
    g = torch.Generator().manual_seed(seed)
    if integer_scores:  # many ties
        s_i2t = torch.randint(0, 4, (n_img, len(txt2img)), generator=g).float()
        s_t2i = torch.randint(0, 4, (len(txt2img), n_img), generator=g).float()
    else:
        s_i2t = torch.randn(n_img, len(txt2img), generator=g)
        s_t2i = torch.randn(len(txt2img), n_img, generator=g)
    return s_i2t, s_t2i, img2txt, txt2img


# ------------------------------------------------------------------------------------------ ranks
@pytest.mark.parametrize('integer_scores', [False, True])
@pytest.mark.parametrize('ties', ['pessimistic', 'optimistic'])
def test_ranks_match_brute_force(integer_scores: bool, ties: str) -> None:
    s_i2t, s_t2i, img2txt, txt2img = random_problem(23, seed=1, integer_scores=integer_scores)
    txt_ranks = text_retrieval_ranks(s_i2t, img2txt, ties=ties, chunk_size=4)
    img_ranks = image_retrieval_ranks(s_t2i, txt2img, ties=ties, chunk_size=5)
    expected_txt = [
        brute_rank(s_i2t[i].tolist(), set(img2txt[i]), ties) for i in range(len(img2txt))
    ]
    expected_img = [brute_rank(s_t2i[t].tolist(), {txt2img[t]}, ties) for t in range(len(txt2img))]
    assert txt_ranks.tolist() == expected_txt
    assert img_ranks.tolist() == expected_img
    # several captions: the best-placed ground truth counts, i.e. the min over them (without ties
    # the other ground truths never compete, so the per-caption ranks agree)
    per_gt = [
        min(brute_rank(s_i2t[i].tolist(), {t}, ties) for t in img2txt[i])
        for i in range(len(img2txt))
    ]
    if ties == 'optimistic' or not integer_scores:
        assert txt_ranks.tolist() == per_gt


def test_ties_by_hand() -> None:
    scores = torch.tensor(
        [
            [1.0, 1.0, 0.5, 2.0],  # gt 0 tied with non-gt 1, below 3
            [2.0, 2.0, 3.0, 0.0],  # gt 0 and 1 tied with each other, below 2
            [-100.0, -100.0, -100.0, 5.0],
        ]
    )  # gt 1 in a fill tie
    gt = [[0], [0, 1], [1]]
    assert ground_truth_ranks(scores, gt, ties='pessimistic').tolist() == [2, 1, 3]
    assert ground_truth_ranks(scores, gt, ties='optimistic').tolist() == [1, 1, 1]
    # a constant-score model retrieves nothing at R@1 under the default rule
    flat = torch.zeros(4, 6)
    ranks = image_retrieval_ranks(flat, [0, 1, 2, 3])
    assert ranks.tolist() == [5, 5, 5, 5]


def test_ranks_reject_bad_input() -> None:
    with pytest.raises(ValueError, match='no ground-truth'):
        text_retrieval_ranks(torch.zeros(2, 3), [[0], []])
    with pytest.raises(ValueError, match='out of range'):
        text_retrieval_ranks(torch.zeros(2, 3), [[0], [3]])
    with pytest.raises(ValueError, match='NaN'):
        image_retrieval_ranks(torch.tensor([[float('nan'), 1.0]]), [0])
    with pytest.raises(ValueError, match='ties'):
        image_retrieval_ranks(torch.zeros(1, 2), [0], ties='random')


# ------------------------------------------------------------------------------------------ recall
def test_recall_at_k_values() -> None:
    ranks = torch.tensor([0, 1, 4, 9, 10])
    assert recall_at_k(ranks, (1, 5, 10)) == {1: 20.0, 5: 60.0, 10: 80.0}


def test_retrieval_metrics_match_brute_force() -> None:
    s_i2t, s_t2i, img2txt, txt2img = random_problem(31, seed=2)
    got = retrieval_metrics(s_i2t, s_t2i, img2txt, txt2img, ks=(1, 5, 10))
    txt = [brute_rank(s_i2t[i].tolist(), set(img2txt[i]), 'pessimistic') for i in range(31)]
    img = [brute_rank(s_t2i[t].tolist(), {txt2img[t]}, 'pessimistic') for t in range(len(txt2img))]
    exp = {f'txt_r{k}': brute_recall(txt, k) for k in (1, 5, 10)}
    exp.update({f'img_r{k}': brute_recall(img, k) for k in (1, 5, 10)})
    exp['txt_r_mean'] = (exp['txt_r1'] + exp['txt_r5'] + exp['txt_r10']) / 3
    exp['img_r_mean'] = (exp['img_r1'] + exp['img_r5'] + exp['img_r10']) / 3
    exp['r_mean'] = (exp['txt_r_mean'] + exp['img_r_mean']) / 2
    assert set(got) == set(exp)
    for key, value in exp.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key
    assert 0 < got['txt_r10'] < 100 and 0 < got['img_r10'] < 100  # a non-degenerate problem


# ---------------------------------------------------------------------------------- top-k re-rank
class Scorer:
    """Pair scorer backed by a fixed matrix; records every call."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table
        self.calls: list[tuple[list[int], list[int]]] = []

    def __call__(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        assert q.dtype == torch.long and c.dtype == torch.long and q.shape == c.shape
        self.calls.append((q.tolist(), c.tolist()))
        return self.table[q, c]


def brute_topk(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]


@pytest.fixture
def sim_and_table() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(9, 13, generator=g), torch.randn(9, 13, generator=g)


@pytest.mark.parametrize('k', [None, 13, 50])
def test_rerank_all_candidates_is_the_pair_score(sim_and_table, k) -> None:
    sim, table = sim_and_table
    scorer = Scorer(table)
    out = topk_rerank(sim, k, scorer, batch_size=10)
    assert torch.equal(out, table)
    assert len(scorer.calls) == math.ceil(9 * 13 / 10)
    # ranking by the re-ranked scores is ranking by the pair score
    gt = [[i % 13] for i in range(9)]
    assert torch.equal(ground_truth_ranks(out, gt), ground_truth_ranks(table, gt))


@pytest.mark.parametrize('batch_size', [1, 7, 12, 1000])
def test_rerank_topk_only_and_batched(sim_and_table, batch_size: int) -> None:
    sim, table = sim_and_table
    k, fill = 4, -7.5
    scorer = Scorer(table)
    out = topk_rerank(sim, k, scorer, batch_size=batch_size, fill=fill)
    # one call per batch of pairs, never per query
    assert len(scorer.calls) == math.ceil(9 * k / batch_size)
    sizes = [len(q) for q, _ in scorer.calls]
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    if batch_size > k:
        assert any(len(set(q)) > 1 for q, _ in scorer.calls)
    scored = [(q, c) for qs, cs in scorer.calls for q, c in zip(qs, cs)]
    assert len(scored) == 9 * k
    expected_pairs = {(q, c) for q in range(9) for c in brute_topk(sim[q].tolist(), k)}
    assert set(scored) == expected_pairs
    for q in range(9):
        for c in range(13):
            want = table[q, c].item() if (q, c) in expected_pairs else fill
            assert out[q, c].item() == want


def test_rerank_add_sim_and_rows(sim_and_table) -> None:
    sim, table = sim_and_table
    full = topk_rerank(sim, 3, Scorer(table), batch_size=5, add_sim=True)
    for q in range(9):
        top = brute_topk(sim[q].tolist(), 3)
        for c in range(13):
            want = table[q, c] + sim[q, c] if c in top else torch.tensor(-100.0)
            assert full[q, c].item() == pytest.approx(want.item(), abs=1e-6)
    scorer = Scorer(table)
    part = topk_rerank(sim, 3, scorer, batch_size=5, add_sim=True, rows=[6, 2, 7])
    assert torch.equal(part, full[[6, 2, 7]])
    assert {q for qs, _ in scorer.calls for q in qs} == {6, 2, 7}


def test_rerank_sim_ties_are_deterministic() -> None:
    sim = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]])
    scorer = Scorer(torch.arange(5.0).reshape(1, 5))
    out = topk_rerank(sim, 2, scorer, batch_size=8)
    assert out.tolist() == [[-100.0, 1.0, 2.0, -100.0, -100.0]]  # lower index wins the tie


def test_rerank_rejects_bad_arguments(sim_and_table) -> None:
    sim, table = sim_and_table
    with pytest.raises(ValueError, match='k must be'):
        topk_rerank(sim, 0, Scorer(table), batch_size=4)
    with pytest.raises(ValueError, match='batch_size'):
        topk_rerank(sim, 2, Scorer(table), batch_size=0)
    with pytest.raises(ValueError, match='returned'):
        topk_rerank(sim, 2, lambda q, c: torch.zeros(1), batch_size=4)
