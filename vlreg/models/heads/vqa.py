"""VQA answer heads on the fusion output: their interface, soft scores and the classifier head.

ALBEF's answer decoder (:class:`~vlreg.models.heads.answer_decoder.AnswerDecoderHead`) and the
soft-score classifier (:class:`AnswerClassifierHead`, here) share one interface
(:class:`BaseVQAHead`), so :class:`~vlreg.models.tasks.ALBEFVQA` is the same model whichever
answers the questions:

* ``set_answer_list(answers)``: the candidate answers (ALBEF's ``answer_list.json``), given once
  by the model before the first use (the decoder tokenises them, the classifier indexes them);
* ``targets(data_samples, device) -> dict``: training targets read from the data samples;
* ``logits(states, mask, targets) -> Tensor``: teacher-forced answer-token logits (decoder) or
  answer logits (classifier); the momentum copy's logits are the distillation targets;
* ``loss(states, mask, targets, teacher=None, alpha=0.) -> {'loss_vqa': ...}``;
* ``predict(states, mask) -> (answer index [B], score [B])``; ``protocol``: how it answered.

``states`` are the fusion encoder's last hidden states of the question ``[B, L, D]`` and ``mask``
the question's attention mask ``[B, L]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import HEADS
from vlreg.structures.vqa_answers import normalize_answer

from ..utils.bert_layers import init_bert_weights

__all__ = ['AnswerClassifierHead', 'BaseVQAHead', 'sample_meta', 'soft_scores']

SOFT_SCORES = ('vqa', 'min3')


def sample_meta(sample: Any, key: str) -> Any:
    """``key`` of a data sample (metainfo or data field) or of a dict; None when absent."""
    return sample.get(key) if hasattr(sample, 'get') else getattr(sample, key, None)


def soft_scores(answers: Sequence[str], mode: str = 'vqa') -> dict[str, float]:
    """Soft target of every distinct (normalised) answer of one question.

    With ``n`` annotators of whom ``m`` gave answer ``a`` (after the official normalisation,
    :func:`~vlreg.structures.vqa_answers.normalize_answer`):

    * ``'vqa'``: the VQA accuracy ``a`` would score, i.e. ``min(#others agreeing / 3, 1)``
      averaged over the ``n`` leave-one-out subsets: ``(m * min((m - 1) / 3, 1) + (n - m) *
      min(m / 3, 1)) / n``; for ``n = 10``: 0.3, 0.6, 0.9, 1 for ``m`` = 1, 2, 3, >= 4, the
      targets of BUTD (Anderson et al. 2018) and VL-BERT;
    * ``'min3'``: ``min(m / 3, 1)`` (the original VQA formula without the subsets).

    Example:
        >>> soft_scores(['net'] * 6 + ['mesh', 'pitcher', 'orange', 'netting'])['mesh']
        0.3
    """
    if mode not in SOFT_SCORES:
        raise ValueError(f'soft score mode must be one of {SOFT_SCORES}, got {mode!r}')
    normalized = [normalize_answer(a) for a in answers]
    n = len(normalized)
    out = {}
    for answer, m in Counter(normalized).items():
        if mode == 'min3':
            out[answer] = min(m / 3.0, 1.0)
        else:
            out[answer] = (m * min((m - 1) / 3.0, 1.0) + (n - m) * min(m / 3.0, 1.0)) / n
    return out


class BaseVQAHead(BaseModule):
    """The interface of a VQA answer head (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer_list: list[str] | None = None

    def set_answer_list(self, answers: Sequence[str]) -> None:
        self.answer_list = list(answers)

    def _answers(self) -> list[str]:
        if self.answer_list is None:
            raise RuntimeError(
                f'{type(self).__name__}: no answer list; the model calls '
                'set_answer_list before the first use'
            )
        return self.answer_list

    @property
    def protocol(self) -> str:
        raise NotImplementedError

    def targets(self, data_samples: Sequence[Any], device: torch.device) -> dict[str, Tensor]:
        raise NotImplementedError

    def logits(self, states: Tensor, mask: Tensor, targets: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def loss(
        self,
        states: Tensor,
        mask: Tensor,
        targets: dict[str, Tensor],
        teacher: Tensor | None = None,
        alpha: float = 0.0,
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def predict(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


# --- the classifier alternative -------------------------------------------------------------------
@HEADS.register_module()
class AnswerClassifierHead(BaseVQAHead):
    """VQA as multi-label classification over the answer list (BUTD, VL-BERT, UNITER).

    An MLP on the fused [CLS] ``Linear(D, mlp_hidden) -> GELU -> LayerNorm -> Linear(mlp_hidden,
    num_answers)`` (UNITER's VQA head; ``mlp_hidden`` defaults to ``2 * D``) scores every
    answer of the list. Targets are soft scores (:func:`soft_scores`, default ``'vqa'``: 0.3 /
    0.6 / 0.9 / 1 for 1 / 2 / 3 / >= 4 of 10 annotators) of the annotators' raw answers (the
    ``answers`` metainfo), matched to the list after the official normalisation; answers outside
    the list get no target. ``loss_vqa`` is the binary cross-entropy with logits, summed over the
    answers and averaged over the questions (BUTD's ``mean * num_answers``); with a momentum
    teacher the target is ``(1 - alpha) * soft + alpha * sigmoid(teacher)``. The prediction is
    the highest-scoring answer (score: its sigmoid).

    Args:
        hidden_size: width of the fused [CLS].
        num_answers: length of the answer list (the model checks it when it reads the list).
        mlp_hidden: hidden width (None: ``2 * hidden_size``).
        soft_score: ``'vqa'`` or ``'min3'``, see :func:`soft_scores`.

    Example:
        >>> dict(type='AnswerClassifierHead', hidden_size=768, num_answers=3129)
    """

    def __init__(
        self,
        hidden_size: int,
        num_answers: int,
        mlp_hidden: int | None = None,
        soft_score: str = 'vqa',
        layer_norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if num_answers < 1:
            raise ValueError(f'AnswerClassifierHead needs num_answers >= 1, got {num_answers}')
        if soft_score not in SOFT_SCORES:
            raise ValueError(f'soft_score must be one of {SOFT_SCORES}, got {soft_score!r}')
        mlp_hidden = mlp_hidden or 2 * hidden_size
        self.num_answers = num_answers
        self.soft_score = soft_score
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_hidden),
            nn.GELU(),
            nn.LayerNorm(mlp_hidden, eps=layer_norm_eps),
            nn.Linear(mlp_hidden, num_answers),
        )
        init_bert_weights(self)
        self._index: dict[str, int] = {}

    def set_answer_list(self, answers: Sequence[str]) -> None:
        if len(answers) != self.num_answers:
            raise ValueError(
                f'AnswerClassifierHead: the answer list has {len(answers)} answers '
                f'but the head was built with num_answers={self.num_answers}'
            )
        super().set_answer_list(answers)
        self._index = {}
        for i, answer in enumerate(answers):
            self._index.setdefault(normalize_answer(answer), i)

    @property
    def protocol(self) -> str:
        return f'answer classifier: argmax over {self.num_answers} answers'

    def target_matrix(self, answers: Sequence[Sequence[str]]) -> Tensor:
        """Soft targets ``[B, num_answers]`` of each question's annotator answers."""
        self._answers()
        out = torch.zeros(len(answers), self.num_answers)
        for i, gts in enumerate(answers):
            for answer, score in soft_scores(list(gts), self.soft_score).items():
                j = self._index.get(answer)
                if j is not None:
                    out[i, j] = score
        return out

    def targets(self, data_samples: Sequence[Any], device: torch.device) -> dict[str, Tensor]:
        answers = []
        for i, sample in enumerate(data_samples):
            gts, qid = sample_meta(sample, 'answers'), sample_meta(sample, 'question_id')
            if not gts:
                raise KeyError(
                    f'data sample {i} (question_id {qid!r}) has no '
                    '"answers" to train on (keep "answers" in PackInputs meta_keys)'
                )
            answers.append(list(gts))
        return dict(scores=self.target_matrix(answers).to(device))

    def logits(
        self, states: Tensor, mask: Tensor, targets: dict[str, Tensor] | None = None
    ) -> Tensor:
        return self.mlp(states[:, 0])

    def loss(
        self,
        states: Tensor,
        mask: Tensor,
        targets: dict[str, Tensor],
        teacher: Tensor | None = None,
        alpha: float = 0.0,
    ) -> dict[str, Tensor]:
        logits = self.logits(states, mask).float()
        target = targets['scores']
        if teacher is not None and alpha > 0:
            target = (1.0 - alpha) * target + alpha * teacher.float().sigmoid()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        return {'loss_vqa': bce.sum(1).mean()}

    def predict(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        self._answers()
        scores, index = self.logits(states, mask).float().sigmoid().max(dim=1)
        return index, scores
