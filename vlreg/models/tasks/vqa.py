"""ALBEF fine-tuned for VQA v2, with a pluggable answer head (decoder or classifier)."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from vlreg.registry import HEADS, MODELS

from ..encoders import ENCODER_PREFIXES
from ..heads.vqa import BaseVQAHead
from .classifier import ALBEFClassifier

__all__ = ['ALBEFVQA', 'check_answer_list', 'read_answer_list']


def check_answer_list(answers: Any, source: str = 'answer_list') -> list[str]:
    """``answers`` as a list, checked: non-empty, distinct, non-empty strings."""
    if not isinstance(answers, (list, tuple)) or not answers:
        raise ValueError(f'{source!r}: expected a non-empty JSON list of answers')
    seen: set[str] = set()
    for i, answer in enumerate(answers):
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f'{source!r}: entry {i} must be a non-empty string, got {answer!r}')
        if answer in seen:
            raise ValueError(f'{source!r}: entry {i} repeats the answer {answer!r}')
        seen.add(answer)
    return list(answers)


def read_answer_list(path: str) -> list[str]:
    """ALBEF's ``answer_list.json``: a JSON list of distinct, non-empty answer strings."""
    from vlreg.utils.paths import resolve_path

    path = resolve_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'answer list {path!r} not found (tools/prepare_data.py vqa writes one)'
        )
    with open(path, encoding='utf-8') as f:
        try:
            answers = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path!r}: malformed JSON at line {err.lineno}: {err.msg}') from err
    return check_answer_list(answers, path)


def _head_defaults(head: dict, text_backbone: Any, answer_list: Any) -> dict:
    """Fill ``vocab_size`` / ``num_answers`` of the head config when the head takes them."""
    head = dict(head)
    kind = head.get('type')
    if isinstance(kind, str):
        HEADS.import_from_location()
        kind = HEADS.get(kind)
    if kind is None:
        return head  # build_from_slot names the problem
    params = inspect.signature(kind).parameters
    if 'vocab_size' in params and 'vocab_size' not in head:
        vocab = text_backbone.get('vocab_size') if isinstance(text_backbone, Mapping) else None
        if vocab is None:
            raise ValueError(
                'the answer head needs vocab_size: set it in the head config (or '
                'vocab_size in the text_backbone config)'
            )
        head['vocab_size'] = vocab
    if 'num_answers' in params and 'num_answers' not in head:
        if not isinstance(answer_list, (list, tuple)):
            raise ValueError(
                'the answer head needs num_answers when answer_list is a file (it is '
                'read at first use, not at build): set head.num_answers to the '
                'length of the list (tools/prepare_data.py vqa prints it)'
            )
        head['num_answers'] = len(answer_list)
    return head


@MODELS.register_module()
class ALBEFVQA(ALBEFClassifier):
    """ALBEF for VQA: image encoder + text encoder + fusion encoder (the question fused with the
    image) + an answer head from ``HEADS`` (:mod:`vlreg.models.heads.vqa`).

    * ``head=dict(type='AnswerDecoderHead', ...)``: ALBEF's generative approach; the decoder is
      initialised from the fusion layers (``layer.i <- fusion.layer.i``, embeddings from the text
      encoder, LM head from the pre-trained MLM head) after the encoders are loaded;
    * ``head=dict(type='AnswerClassifierHead', num_answers=...)``: soft-score classification.

    ``pretrained`` (a local vlreg / ALBEF pre-training checkpoint) fills the encoders as for
    :class:`ALBEFClassifier` (position embedding interpolated to the fine-tuning resolution) and
    maps ``mlm_head.*`` to ``head.lm_head.*`` when the head has one. With ``distill`` the model
    keeps momentum (EMA) copies of the encoders and the head (ALBEF's VQA momentum distillation):
    ``loss`` updates them first, as ALBEF's forward does, and the head distils from the momentum
    copy's logits with weight ``alpha``, as ALBEF's ``model_vqa.py`` passes ``alpha`` to its
    decoder's loss (``AlphaWarmupHook`` ramps it over the first epoch, as ALBEF's ``warm_up``). The
    momentum copies and the EMA update are :class:`ALBEFClassifier`'s; they restart from the online
    weights after loading (ALBEF loads the checkpoint's momentum encoders into them).
    ``pretrained`` is checked at build time and read by :class:`ALBEFClassifier`'s
    ``load_pretrained`` (strict: only ``head.*`` and ``*_m.*`` may be missing).

    ``loss`` returns ``loss_vqa``; ``predict`` sets on each data sample ``pred_answer`` (str, read
    by :class:`~vlreg.evaluation.VQAAccuracyMetric`), ``pred_answer_index``, ``pred_score`` and
    ``vqa_protocol`` (how the answer was chosen; the metric reports it); ``question_id`` and the
    annotations stay in the metainfo. ``tensor`` mode returns the fused question states.

    Args:
        image_backbone, text_backbone: ``BACKBONES`` configs.
        fusion: a ``FUSION_HEADS`` config.
        head: a ``HEADS`` config of a VQA head; ``hidden_size`` defaults to the text width,
            ``vocab_size`` to the text backbone's, ``num_answers`` to the length of an inline
            ``answer_list``.
        answer_list: the candidate answers: a JSON file (ALBEF's ``answer_list.json``, read at
            first use) or a list of strings.
        distill: momentum distillation (ALBEF's VQA config: True).
        momentum: EMA coefficient of the momentum copies (ALBEF: 0.995).
        alpha: distillation weight (ALBEF: 0.4, warmed up over the first epoch).
        init_head_from_fusion: initialise a decoder head from the fusion layers (ALBEF).
        pretrained: local pre-training checkpoint, loaded in ``init_weights``.
        data_preprocessor: defaults to ``VLDataPreprocessor``.

    Example:
        >>> dict(type='ALBEFVQA', image_backbone=..., text_backbone=..., fusion=...,
        ...      head=dict(type='AnswerDecoderHead', num_layers=6, tokenizer=...),
        ...      answer_list='data/vqa/answer_list.json', pretrained='albef_4m.pth')
    """

    #: the encoders, plus the MLM head that :meth:`convert_pretrained` maps onto the decoder's LM head
    pretrained_prefixes = ENCODER_PREFIXES + ('mlm_head.',)

    def __init__(
        self,
        image_backbone: dict,
        text_backbone: dict,
        fusion: dict,
        head: dict,
        answer_list: str | Sequence[str],
        distill: bool = True,
        momentum: float = 0.995,
        alpha: float = 0.4,
        init_head_from_fusion: bool = True,
        pretrained: str | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if not isinstance(answer_list, str):
            answer_list = check_answer_list(answer_list)
        head = _head_defaults(head, text_backbone, answer_list)
        super().__init__(
            image_backbone,
            text_backbone,
            fusion,
            head=head,
            num_classes=None,
            pretrained=pretrained,
            distill=distill,
            momentum=momentum,
            alpha=alpha,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
        )
        if not isinstance(self.head, BaseVQAHead):
            raise TypeError(
                f'ALBEFVQA needs a VQA answer head (AnswerDecoderHead, '
                f'AnswerClassifierHead), got {type(self.head).__name__}'
            )
        self.answer_file = answer_list if isinstance(answer_list, str) else None
        self._answers: list[str] | None = None if self.answer_file else list(answer_list)
        self.init_head_from_fusion = init_head_from_fusion
        if distill and hasattr(self.head, 'tokenizer'):
            self.head_m.tokenizer = self.head.tokenizer

    # -- answers and weights
    # --------------------------------------------------------------------------
    @property
    def answers(self) -> list[str]:
        """The candidate answers (the file is read on first access and given to the head)."""
        if self._answers is None:
            self._answers = read_answer_list(self.answer_file)
        if self.head.answer_list is not self._answers:
            self.head.set_answer_list(self._answers)
        return self._answers

    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The encoders (see :class:`ALBEFClassifier`) plus ``mlm_head.* -> head.lm_head.*`` where
        the head has that key (other ``mlm_head.*`` keys are dropped)."""
        encoders = super().convert_pretrained(
            {k: v for k, v in state.items() if not k.startswith('mlm_head.')}
        )
        own = self.state_dict()
        for key, value in state.items():
            # the vocabulary projection is tied to the word embeddings: copied with them
            if key.startswith('mlm_head.') and not key.endswith('decoder.weight'):
                target = 'head.lm_head.' + key[len('mlm_head.') :]
                if target in own:
                    encoders[target] = value
        return encoders

    def init_weights(self) -> None:
        """Parts' own weights, then ``pretrained``, then the decoder from the fusion layers, then
        the momentum copies from the online model."""
        super().init_weights()
        if self.init_head_from_fusion and hasattr(self.head, 'init_from_encoder'):
            self.head.init_from_encoder(self.text_backbone, self.fusion)
        self.restart_momentum()

    # -- forward
    # --------------------------------------------------------------------------------------
    def question_states(
        self, inputs: dict[str, Tensor], momentum: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Fusion output of the question with its image ``[B, L, D]`` and the question mask."""
        self.check_inputs(inputs)
        image = self.part('image_backbone', momentum)(inputs['image'])
        mask = inputs['attention_mask']
        text = self.part('text_backbone', momentum)(inputs['input_ids'], mask)
        return self.part('fusion', momentum)(text, mask, image).hidden, mask

    def tensor(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> Tensor:
        return self.question_states(inputs)[0]

    def loss(
        self, inputs: dict[str, Tensor], data_samples: list | None = None
    ) -> dict[str, Tensor]:
        if not data_samples:
            raise ValueError('VQA training needs data samples carrying the answers')
        self.answers  # noqa: B018 - the classifier maps the annotations onto the list
        if self.training and self.distill:
            self.momentum_update()
        states, mask = self.question_states(inputs)
        targets = self.head.targets(data_samples, states.device)
        teacher = None
        if self.distill and self.alpha > 0:
            with torch.no_grad():
                states_m, _ = self.question_states(inputs, momentum=True)
                teacher = self.head_m.logits(states_m, mask, targets)
        return self.head.loss(states, mask, targets, teacher=teacher, alpha=self.alpha)

    @torch.no_grad()
    def predict(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> list:
        from vlreg.structures import DataSample

        answers = self.answers
        states, mask = self.question_states(inputs)
        index, score = self.head.predict(states, mask)
        samples = data_samples or [DataSample() for _ in range(states.shape[0])]
        protocol = self.head.protocol
        for sample, i, s in zip(samples, index.tolist(), score):
            sample.set_field(answers[i], 'pred_answer')
            sample.set_field(i, 'pred_answer_index')
            sample.set_field(s, 'pred_score')
            sample.set_field(protocol, 'vqa_protocol')
        return samples
