"""A custom metric: median and mean rank of image-text retrieval."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from vlreg.evaluation.retrieval import TIES, image_retrieval_ranks, text_retrieval_ranks
from vlreg.registry import METRICS


def _median(ranks: torch.Tensor) -> float:
    """Median of 1-based ranks; the mean of the two middle values for an even count."""
    values = ranks.double().sort().values
    n = values.numel()
    return float(values[n // 2]) if n % 2 else float((values[n // 2 - 1] + values[n // 2]) / 2)


@METRICS.register_module()
class MedianRankMetric(BaseMetric):
    """Median rank (MedR) and mean rank of text and image retrieval.

    Reads the same per-evaluation dict as ``RetrievalMetric`` (built by ``RetrievalValLoop``):
    ``scores_i2t [N_img, N_txt]``, ``scores_t2i [N_txt, N_img]``, ``img2txt`` (ground-truth texts
    of each image) and ``txt2img`` (ground-truth image of each text). Ranks are 1-based here
    (1 = ground truth on top, the MedR convention); an image's text-retrieval rank is that of its
    best-placed caption. Ties are resolved by vlreg's rule (``ties``), so MedR and recall@K agree.

    ``compute_metrics`` returns ``txt_medr``, ``img_medr`` (lower is better) and ``txt_meanr``,
    ``img_meanr``, prefixed with ``rank/`` by default. Like ``RetrievalMetric``, it keeps only the
    rank vectors and reports the first evaluation when it gets several copies.

    Args:
        ties: ``'pessimistic'`` (default) or ``'optimistic'``, see
            :mod:`vlreg.evaluation.retrieval`.
        collect_device: ``'cpu'`` or ``'gpu'``.
        prefix: key prefix, default ``'rank'``.

    Example:
        >>> val_evaluator = [dict(type='RetrievalMetric'), dict(type='MedianRankMetric')]
    """

    default_prefix = 'rank'

    def __init__(
        self, ties: str = 'pessimistic', collect_device: str = 'cpu', prefix: str | None = None
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if ties not in TIES:
            raise ValueError(f'ties must be one of {TIES}, got {ties!r}')
        self.ties = ties

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store the 1-based rank vectors of each evaluation.

        Args:
            data_batch: unused (the retrieval loop passes ``None``).
            data_samples: dicts with ``scores_i2t``, ``scores_t2i``, ``img2txt``, ``txt2img``.
        """
        for sample in data_samples:
            txt = text_retrieval_ranks(sample['scores_i2t'], sample['img2txt'], self.ties)
            img = image_retrieval_ranks(sample['scores_t2i'], sample['txt2img'], self.ties)
            self.results.append({'txt_ranks': txt.cpu() + 1, 'img_ranks': img.cpu() + 1})

    def compute_metrics(self, results: list) -> dict[str, float]:
        """MedR and mean rank of the first evaluation in ``results``.

        Args:
            results: the gathered outputs of :meth:`process`.

        Returns:
            ``txt_medr``, ``img_medr``, ``txt_meanr``, ``img_meanr`` (floats).
        """
        if not results:
            raise ValueError('MedianRankMetric got no results: did the retrieval loop run?')
        if len(results) > 1:
            print_log(
                f'MedianRankMetric got {len(results)} evaluations; reporting the first',
                logger='current',
                level=logging.WARNING,
            )
        txt, img = results[0]['txt_ranks'], results[0]['img_ranks']
        return {
            'txt_medr': _median(txt),
            'img_medr': _median(img),
            'txt_meanr': float(txt.double().mean()),
            'img_meanr': float(img.double().mean()),
        }
