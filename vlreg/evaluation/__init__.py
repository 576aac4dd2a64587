"""Evaluation: pure ranking / scoring functions and the registered metrics."""

from __future__ import annotations

from .grounding import (
    GroundingAccuracyMetric,
    box_iou,
    grounding_hit,
    score_boxes_by_cam,
    select_box_by_cam,
)
from .metrics import RetrievalMetric, describe_protocol
from .pointing import PointingMetric, pointing_hit
from .vqa import VQAAccuracyMetric, normalize_answer, vqa_accuracy, write_vqa_results
from .retrieval import (
    ground_truth_ranks,
    image_retrieval_ranks,
    metrics_from_ranks,
    recall_at_k,
    retrieval_metrics,
    text_retrieval_ranks,
    topk_candidates,
    topk_rerank,
)

__all__ = [
    'GroundingAccuracyMetric',
    'VQAAccuracyMetric',
    'box_iou',
    'grounding_hit',
    'normalize_answer',
    'score_boxes_by_cam',
    'select_box_by_cam',
    'vqa_accuracy',
    'write_vqa_results',
    'PointingMetric',
    'RetrievalMetric',
    'describe_protocol',
    'pointing_hit',
    'ground_truth_ranks',
    'image_retrieval_ranks',
    'metrics_from_ranks',
    'recall_at_k',
    'retrieval_metrics',
    'text_retrieval_ranks',
    'topk_candidates',
    'topk_rerank',
]
from .classification import AccuracyMetric, classification_accuracy  # noqa: E402,F401
