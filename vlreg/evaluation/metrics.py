"""The registered retrieval metric: TR / IR recall@K from the score matrices of a retrieval loop."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from vlreg.registry import METRICS

from .retrieval import (
    TIES,
    chance_recall,
    image_retrieval_ranks,
    metrics_from_ranks,
    text_retrieval_ranks,
)
from .sparse_retrieval import sparse_ground_truth_ranks


def describe_protocol(k: int | None, score: str) -> str:
    """Human-readable name of a retrieval scoring protocol, e.g. ``'itc top-256 -> itm'``.

    Args:
        k: candidates re-ranked per query: ``0`` = ITC only, ``None`` = all candidates.
        score: the re-rank score, ``'itm'`` (ALBEF) or ``'itm+itc'`` (BLIP / LAVIS).
    """
    if k == 0:
        return 'itc'
    return f'itc {"all" if k is None else f"top-{k}"} -> {score}'


@METRICS.register_module()
class RetrievalMetric(BaseMetric):
    """Image-text retrieval recall@K (ALBEF's TR / IR protocol) from full score matrices.

    ``process`` receives, per evaluation, one dict (as built by
    :class:`vlreg.engine.loops.RetrievalValLoop`)::

        scores_i2t  [N_img, N_txt]   final image->text scores (e.g. ITC top-k re-ranked by ITM)
        scores_t2i  [N_txt, N_img]   final text->image scores
        img2txt     list[list[int]]  ground-truth texts of each image
        txt2img     list[int]        ground-truth image of each text
        protocol    dict(k=..., score=...) or str   (optional) how the scores were made
        itc_i2t     [N_img, N_txt]   (optional) ITC similarities, for ITC-only recalls

    or, from a loop with ``dense_scores=False`` (memory linear in N), instead of the matrices::

        topk_i2t    ([N_img, k], [N_img, k])  each image's candidate texts and their scores
        topk_t2i    ([N_txt, k], [N_txt, k])  each text's candidate images and their scores
        fill        float                     the score of every other candidate (-100)
        itc_ranks   {ties: (txt_ranks, img_ranks)}  ITC ranks under each tie rule

    (ITC only: ``itc_ranks`` alone.)

    and stores only the rank vectors (``N_img + N_txt`` integers), so the results gathered across
    ranks stay small. Every rank of a retrieval loop holds the same full matrices; the loop
    evaluates with ``size=1`` so that one copy is kept.

    ``compute_metrics`` returns ``txt_r1, txt_r5, txt_r10, txt_r_mean, img_r1, img_r5, img_r10,
    img_r_mean, r_mean`` (percent), the same with an ``itc_`` prefix when ITC similarities were
    given and the scores are re-ranked, ``protocol``: a string naming the scoring protocol,
    the numbers of images and texts and the tie rule, and ``chance``: the recalls of a random
    ranking. MMEngine logs a string metric next to the
    numbers (as runtime info, not as a scalar), so every logged result says how it was obtained.

    Args:
        ks: recall cut-offs.
        ties: tie rule of :func:`vlreg.evaluation.retrieval.ground_truth_ranks`.
        itc_metrics: also report ITC-only recalls when ``itc_i2t`` is present.
        collect_device: ``'cpu'`` or ``'gpu'``, see :class:`mmengine.evaluator.BaseMetric`.
        prefix: key prefix, default ``'retrieval'``.

    Example:
        >>> val_evaluator = dict(type='RetrievalMetric', ks=(1, 5, 10))
    """

    default_prefix = 'retrieval'

    def __init__(
        self,
        ks: Sequence[int] = (1, 5, 10),
        ties: str = 'pessimistic',
        itc_metrics: bool = True,
        collect_device: str = 'cpu',
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if ties not in TIES:
            raise ValueError(f'ties must be one of {TIES}, got {ties!r}')
        if not ks or min(ks) < 1:
            raise ValueError(f'ks must be positive cut-offs, got {ks}')
        self.ks = tuple(int(k) for k in ks)
        self.ties = ties
        self.itc_metrics = itc_metrics

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Turn each evaluation's score matrices into rank vectors.

        Args:
            data_batch: unused (the loop hands ``None``).
            data_samples: dicts with the keys listed in the class docstring.
        """
        for sample in data_samples:
            img2txt, txt2img = sample['img2txt'], sample['txt2img']
            protocol = sample.get('protocol', 'unknown')
            if isinstance(protocol, dict):
                protocol = describe_protocol(protocol.get('k'), protocol.get('score', 'itm'))
            result = {
                'protocol': f'{protocol}, {len(img2txt)} images x {len(txt2img)} texts, '
                f'ties {self.ties}',
                'chance': self._chance(img2txt, txt2img),
            }
            if 'scores_i2t' in sample:
                scores_i2t, scores_t2i = sample['scores_i2t'], sample['scores_t2i']
                txt = text_retrieval_ranks(scores_i2t, img2txt, self.ties)
                img = image_retrieval_ranks(scores_t2i, txt2img, self.ties)
                itc = sample.get('itc_i2t')
                itc_ranks = None
                if itc is not None and itc is not scores_i2t:
                    itc_ranks = (
                        text_retrieval_ranks(itc, img2txt, self.ties),
                        image_retrieval_ranks(itc.t(), txt2img, self.ties),
                    )
            else:
                txt, img, itc_ranks = self._sparse_ranks(sample)
            result.update(txt_ranks=self._ranks(txt), img_ranks=self._ranks(img))
            if self.itc_metrics and itc_ranks is not None:
                result['itc_txt_ranks'] = self._ranks(itc_ranks[0])
                result['itc_img_ranks'] = self._ranks(itc_ranks[1])
            self.results.append(result)

    def _sparse_ranks(self, sample: dict) -> tuple[Any, Any, Any]:
        """Ranks from the top-k form (``topk_i2t``, ``topk_t2i``, ``fill``, ``itc_ranks``)."""
        if 'itc_ranks' not in sample:
            raise KeyError(
                'RetrievalMetric needs scores_i2t / scores_t2i or itc_ranks (with '
                f'topk_i2t / topk_t2i when re-ranked); got {sorted(sample)}'
            )
        itc = sample['itc_ranks'][self.ties]
        if 'topk_i2t' not in sample:  # ITC only
            return itc[0], itc[1], None
        img2txt, txt2img = sample['img2txt'], sample['txt2img']
        fill = float(sample.get('fill', -100.0))
        (cand_i, score_i), (cand_t, score_t) = sample['topk_i2t'], sample['topk_t2i']
        txt = sparse_ground_truth_ranks(cand_i, score_i, img2txt, len(txt2img), fill, self.ties)
        img = sparse_ground_truth_ranks(
            cand_t, score_t, [[int(i)] for i in txt2img], len(img2txt), fill, self.ties
        )
        return txt, img, itc

    def _chance(self, img2txt: Sequence[Sequence[int]], txt2img: Sequence[int]) -> str:
        """Recall@K of a random ranking, so that every logged result can be read against it."""
        tr = '/'.join(
            f'{chance_recall(len(txt2img), [len(t) for t in img2txt], k):.2f}' for k in self.ks
        )
        ir = '/'.join(f'{chance_recall(len(img2txt), [1] * len(txt2img), k):.2f}' for k in self.ks)
        cut = '/'.join(str(k) for k in self.ks)
        return f'random ranking R@{cut}: TR {tr}, IR {ir} (percent)'

    @staticmethod
    def _ranks(ranks: torch.Tensor) -> torch.Tensor:
        return ranks.to(device='cpu', dtype=torch.int32)

    def compute_metrics(self, results: list) -> dict[str, Any]:
        """Recall@K of the (single) evaluation in ``results``.

        Args:
            results: the gathered results of :meth:`process`; one evaluation is expected (copies
                beyond the first, e.g. from several ranks, are ignored with a warning).

        Returns:
            The recall keys (float, percent) and ``protocol`` (str).
        """
        if not results:
            raise ValueError('RetrievalMetric got no results: did the retrieval loop run?')
        if len(results) > 1:
            print_log(
                f'RetrievalMetric got {len(results)} evaluations; reporting the first',
                logger='current',
                level=logging.WARNING,
            )
        res = results[0]
        metrics: dict[str, Any] = metrics_from_ranks(res['txt_ranks'], res['img_ranks'], self.ks)
        if 'itc_txt_ranks' in res:
            itc = metrics_from_ranks(res['itc_txt_ranks'], res['itc_img_ranks'], self.ks)
            metrics.update({f'itc_{key}': value for key, value in itc.items()})
        metrics['protocol'] = res['protocol']
        if 'chance' in res:
            metrics['chance'] = res['chance']
        return metrics
