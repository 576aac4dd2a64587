"""Downstream task models (fine-tuned ALBEF) and the fusion variants they need."""

from __future__ import annotations

from ..fusion import pair_fusion  # noqa: F401 - registers BertPairFusion in FUSION_HEADS
from .classifier import ALBEFClassifier
from .nlvr2 import ALBEFPairClassifier
from .text_assignment import ALBEFTextAssignmentPretrainer, text_assignment_pairs
from .vqa import ALBEFVQA

__all__ = [
    'ALBEFClassifier',
    'ALBEFPairClassifier',
    'ALBEFTextAssignmentPretrainer',
    'text_assignment_pairs',
]
__all__ += ['ALBEFVQA']
