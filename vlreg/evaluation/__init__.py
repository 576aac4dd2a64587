"""Evaluation: pure ranking / scoring functions and the registered metrics."""
from __future__ import annotations

from .metrics import RetrievalMetric, describe_protocol
from .pointing import PointingMetric, pointing_hit
from .retrieval import (ground_truth_ranks, image_retrieval_ranks, metrics_from_ranks, recall_at_k,
                        retrieval_metrics, text_retrieval_ranks, topk_candidates, topk_rerank)

__all__ = [
    'PointingMetric', 'RetrievalMetric', 'describe_protocol', 'pointing_hit', 'ground_truth_ranks', 'image_retrieval_ranks',
    'metrics_from_ranks', 'recall_at_k', 'retrieval_metrics', 'text_retrieval_ranks',
    'topk_candidates', 'topk_rerank',
]
