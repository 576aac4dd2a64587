"""RetrievalMetric: registry, compact results, compute_metrics and the logged protocol."""

from __future__ import annotations

import pytest
import torch
from mmengine.evaluator import Evaluator

from vlreg.evaluation import RetrievalMetric, describe_protocol
from vlreg.registry import METRICS


def problem() -> dict:
    """4 images, 9 texts; scores chosen so that every rank is known by hand."""
    img2txt = [[0, 1], [2, 3, 4], [5], [6, 7, 8]]
    txt2img = [0, 0, 1, 1, 1, 2, 3, 3, 3]
    scores_i2t = torch.full((4, 9), -100.0)
    scores_i2t[0, [1, 5]] = torch.tensor([0.5, 0.9])  # gt 1 behind text 5: rank 1
    scores_i2t[1, [3, 0]] = torch.tensor([0.8, 0.1])  # gt 3 first: rank 0
    scores_i2t[2, [0, 1, 2, 3, 4, 6]] = 1.0  # gt 5 in the fill: rank 8 (pessimistic)
    scores_i2t[3, [8]] = 2.0  # rank 0
    # text queries: ground truth at rank t % 4
    scores_t2i = torch.zeros(9, 4)
    for t, img in enumerate(txt2img):
        order = [img] + [i for i in range(4) if i != img]
        pos = t % 4
        order.insert(pos, order.pop(0))
        scores_t2i[t, order] = torch.tensor([4.0, 3.0, 2.0, 1.0])
    itc = torch.eye(4, 9)
    return dict(
        scores_i2t=scores_i2t,
        scores_t2i=scores_t2i,
        img2txt=img2txt,
        txt2img=txt2img,
        protocol=dict(k=2, score='itm+itc'),
        itc_i2t=itc,
    )


def expected_recalls() -> dict[str, float]:
    txt_ranks = [1, 0, 8, 0]
    img_ranks = [t % 4 for t in range(9)]  # 0,1,2,3,0,1,2,3,0
    exp = {}
    for name, ranks in (('txt', txt_ranks), ('img', img_ranks)):
        for k in (1, 5, 10):
            exp[f'{name}_r{k}'] = 100.0 * sum(r < k for r in ranks) / len(ranks)
        exp[f'{name}_r_mean'] = sum(exp[f'{name}_r{k}'] for k in (1, 5, 10)) / 3
    exp['r_mean'] = (exp['txt_r_mean'] + exp['img_r_mean']) / 2
    return exp


def test_registered_and_built_by_name() -> None:
    metric = METRICS.build(dict(type='RetrievalMetric', ks=(1, 5)))
    assert isinstance(metric, RetrievalMetric) and metric.ks == (1, 5)


def test_process_stores_compact_ranks() -> None:
    metric = RetrievalMetric()
    metric.process(None, [problem()])
    (res,) = metric.results
    assert res['txt_ranks'].tolist() == [1, 0, 8, 0]
    assert res['img_ranks'].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert res['txt_ranks'].dtype == torch.int32
    assert not any(isinstance(v, torch.Tensor) and v.dim() > 1 for v in res.values())


def test_compute_metrics_values_and_protocol() -> None:
    metric = RetrievalMetric()
    metric.process(None, [problem()])
    got = metric.compute_metrics(metric.results)
    exp = expected_recalls()
    assert exp['txt_r1'] == 50.0 and exp['img_r1'] == pytest.approx(100 * 3 / 9)
    for key, value in exp.items():
        assert got[key] == pytest.approx(value), key
    # ITC-only recalls of itc = eye(4, 9), pessimistic ties: text ranks [0, 6, 8, 6], image ranks
    # [0, 3, 3, 3, 3, 3, 3, 3, 3]
    assert (got['itc_txt_r1'], got['itc_txt_r5'], got['itc_txt_r10']) == (25.0, 25.0, 100.0)
    assert got['itc_img_r1'] == pytest.approx(100 / 9) and got['itc_img_r5'] == 100.0
    assert got['protocol'] == 'itc top-2 -> itm+itc, 4 images x 9 texts, ties pessimistic'


def test_itc_only_protocol_and_evaluator_prefix() -> None:
    data = problem()
    data.pop('itc_i2t')
    data['protocol'] = dict(k=0, score='itm')
    evaluator = Evaluator(RetrievalMetric())
    evaluator.process(data_samples=[data], data_batch=None)
    got = evaluator.evaluate(1)
    assert got['retrieval/protocol'].startswith('itc, 4 images x 9 texts')
    assert got['retrieval/txt_r1'] == pytest.approx(50.0)
    assert not any('itc_' in key for key in got)


def test_describe_protocol() -> None:
    assert describe_protocol(0, 'itm') == 'itc'
    assert describe_protocol(None, 'itm') == 'itc all -> itm'
    assert describe_protocol(128, 'itm+itc') == 'itc top-128 -> itm+itc'


def test_compute_metrics_without_results_fails() -> None:
    with pytest.raises(ValueError, match='no results'):
        RetrievalMetric().compute_metrics([])


def test_chance_recall_against_enumeration():
    """Random-ranking recall, checked by averaging over every permutation of a small case."""
    import itertools

    from vlreg.evaluation.retrieval import chance_recall

    n, gts, k = 6, [0, 1], 2
    hits = [any(p.index(g) < k for g in gts) for p in itertools.permutations(range(n))]
    assert abs(chance_recall(n, [len(gts)], k) - 100 * sum(hits) / len(hits)) < 1e-9
    assert abs(chance_recall(200, [1], 10) - 5.0) < 1e-9
