"""The chunked / sparse ranking functions against dense brute force written here."""

from __future__ import annotations

import pytest
import torch

from vlreg.evaluation.sparse_retrieval import (
    chunked_itc_ranks,
    chunked_topk,
    lookup_pairs,
    sparse_ground_truth_ranks,
    union_pairs,
)


def brute_rank(row: list[float], gt: list[int], ties: str) -> int:
    best = max(row[g] for g in gt)
    return sum(
        1
        for c, s in enumerate(row)
        if c not in gt and (s >= best if ties == 'pessimistic' else s > best)
    )


@pytest.mark.parametrize('chunk', [1, 3, 100])
def test_chunked_topk_is_the_stable_sorted_prefix(chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-2, 3, (7, 4), generator=g).float()  # integer features: many ties
    c = torch.randint(-2, 3, (11, 4), generator=g).float()
    idx, val = chunked_topk(q, c, 5, chunk_size=chunk)
    sim = (q @ c.t()).tolist()
    for i, row in enumerate(sim):
        want = sorted(range(11), key=lambda j: (-row[j], j))[:5]
        assert idx[i].tolist() == want
        assert val[i].tolist() == [row[j] for j in want]
    with pytest.raises(ValueError, match='k must be'):
        chunked_topk(q, c, 12)


@pytest.mark.parametrize('ties', ['pessimistic', 'optimistic'])
def test_chunked_itc_ranks_equal_brute_force(ties: str) -> None:
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-1, 2, (9, 3), generator=g).float()
    c = torch.randint(-1, 2, (6, 3), generator=g).float()
    gt = [[i % 6, (i + 2) % 6] if i % 2 else [i % 6] for i in range(9)]
    got = chunked_itc_ranks(q, c, gt, ties, chunk_size=2)
    sim = (q @ c.t()).tolist()
    assert got.tolist() == [brute_rank(sim[i], gt[i], ties) for i in range(9)]


def test_union_pairs_and_lookup() -> None:
    cand_i2t = torch.tensor([[2, 0], [1, 2], [0, 1]])  # 3 images, 3 texts, k = 2
    cand_t2i = torch.tensor([[2], [1], [0]])  # each text's top image
    keys = union_pairs(cand_i2t, cand_t2i, num_txt=3)
    want = {(0, 2), (0, 0), (1, 1), (1, 2), (2, 0), (2, 1)} | {(2, 0), (1, 1), (0, 2)}
    assert keys.tolist() == sorted(i * 3 + t for i, t in want)  # 6 distinct out of 9 wanted
    scores = keys.float() * 10  # a score that identifies the pair
    assert lookup_pairs(keys, scores, cand_i2t, 3, True).tolist() == [
        [20.0, 0.0],
        [40.0, 50.0],
        [60.0, 70.0],
    ]
    assert lookup_pairs(keys, scores, cand_t2i, 3, False).tolist() == [[60.0], [40.0], [20.0]]
    with pytest.raises(ValueError, match='not scored'):
        lookup_pairs(keys[:-1], scores[:-1], cand_i2t, 3, True)


@pytest.mark.parametrize('ties', ['pessimistic', 'optimistic'])
@pytest.mark.parametrize('k', [1, 3, 8])
def test_sparse_ranks_equal_dense_ranks(ties: str, k: int) -> None:
    g = torch.Generator().manual_seed(k)
    num_q, num_c, fill = 40, 8, -100.0
    cand = torch.stack([torch.randperm(num_c, generator=g)[:k] for _ in range(num_q)])
    scores = torch.randint(-3, 3, (num_q, k), generator=g).float()  # ties among scores
    scores[::7] = fill  # some re-ranked scores equal to the fill value
    gt = [torch.randperm(num_c, generator=g)[: 1 + q % 3].tolist() for q in range(num_q)]
    dense = torch.full((num_q, num_c), fill)
    dense.scatter_(1, cand, scores)
    want = [brute_rank(dense[q].tolist(), gt[q], ties) for q in range(num_q)]
    got = sparse_ground_truth_ranks(cand, scores, gt, num_c, fill, ties)
    assert got.tolist() == want


def test_sparse_ranks_by_hand() -> None:
    # 5 candidates, top-2 re-ranked, fill -100
    cand = torch.tensor([[3, 1], [3, 1], [3, 1]])
    scores = torch.tensor([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])
    gt = [[1], [4], [3]]
    # gt 1 behind 3: 1; gt 4 outside: behind 3, 1 and (pessimistic) candidates 0, 2: 4; gt 3: 0
    assert sparse_ground_truth_ranks(cand, scores, gt, 5).tolist() == [1, 4, 0]
    assert sparse_ground_truth_ranks(cand, scores, gt, 5, ties='optimistic').tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match='no ground-truth'):
        sparse_ground_truth_ranks(cand, scores, [[1], [], [3]], 5)
