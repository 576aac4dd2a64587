"""ALBEF's answer decoder for VQA (the generative head of :mod:`vlreg.models.heads.vqa`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from vlreg.registry import HEADS
from vlreg.structures.batch_keys import IGNORE_LABEL
from vlreg.utils.tokenizer_cache import build_tokenizer

from ..utils.bert_layers import (
    MASK_VALUE,
    BertEmbeddings,
    BertLayer,
    additive_mask,
    init_bert_weights,
)
from .pretrain_heads import MLMHead
from .vqa import BaseVQAHead, sample_meta

__all__ = ['AnswerDecoderHead', 'causal_mask']


def causal_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Additive self-attention mask ``[N, 1, L, L]``: position i sees positions <= i that are not
    padding (``mask`` is the ``[N, L]`` 1/0 key mask)."""
    length = mask.shape[1]
    lower = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    allowed = lower[None, None] & mask[:, None, None, :].bool()
    return (~allowed).to(dtype) * MASK_VALUE


@HEADS.register_module()
class AnswerDecoderHead(BaseVQAHead):
    """ALBEF's answer decoder: a BERT decoder over the answer tokens that cross-attends to the
    question's fusion states, with an LM head, trained by teacher forcing and used to rank a list
    of candidate answers.

    Structure (parameter names as the fusion encoder's, so that weights copy by name):
    ``embeddings`` (BERT word + position embeddings), ``layer.i`` (causal self-attention ->
    cross-attention to the fusion output -> FFN; ALBEF's ``BertLMHeadModel`` with
    ``fusion_layer=0``) and ``lm_head`` (BERT's prediction head, its vocabulary projection tied to
    ``embeddings.word_embeddings``). :meth:`init_from_encoder` copies, as ALBEF's VQA fine-tuning
    does, ``embeddings <- text_backbone.embeddings`` and ``layer.i <- fusion.layer.i``; the model
    maps the pre-trained MLM head to ``lm_head`` (``mlm_head.* -> head.lm_head.*``).

    Answers are tokenised as ``[CLS] answer [SEP]`` (ALBEF appends ``[SEP]`` as end token and
    starts decoding from ``[CLS]``): ``tokenizer`` must add the trailing ``[SEP]``
    (``add_sep=True``), and the pipeline must tokenise the training answers with the same
    tokenizer and ``answer_max_length`` (``Tokenize(keys=('weighted_answers',))``, whose
    ``weighted_answers_ids`` go into the data sample's metainfo).

    **Loss** (ALBEF's ``model_vqa.py``): for every distinct answer ``a`` of question ``q`` with
    weight ``w_qa`` (its share of the annotators' answers), the teacher-forced negative
    log-likelihood ``nll(a | q) = -sum_t log p(a_t | a_<t, q)`` over the answer tokens after
    ``[CLS]`` (end token included), optionally label-smoothed (off by default, as ALBEF; BLIP uses
    0.1); with a momentum teacher each token's term is
    ``(1 - alpha) * CE(token) + alpha * CE(softmax(teacher logits))``. ``loss_vqa = sum_{q, a}
    w_qa * nll(a | q) / B`` (summed over answers, averaged over the ``B`` questions).

    **Inference** (ALBEF's ``rank_answer``): the probability of each candidate's first token after
    ``[CLS]`` picks the top ``k`` candidates; each is re-scored by its full-sequence
    log-likelihood ``sum_t log p(a_t | a_<t, q)`` and the best one is the answer. ALBEF's released
    code adds the first token's log-probability a second time (``count_first_token_twice=True``
    reproduces that); by default it is counted once, so with ``k`` = all candidates the answer is
    the exhaustive maximum-likelihood candidate.

    Args:
        hidden_size: width (the text / fusion width).
        vocab_size: tokenizer vocabulary size.
        num_layers: decoder layers (ALBEF: 6, one per fusion layer).
        num_heads, intermediate_size, max_position_embeddings, layer_norm_eps, dropout,
            attn_dropout: BERT sizes.
        tokenizer: a ``TOKENIZERS`` config (with ``add_sep=True``) for the candidate answers.
        answer_max_length: the most ids per answer, ``[CLS]`` and ``[SEP]`` included.
        k_test: candidates re-ranked per question (ALBEF: 128; clipped to the list's length).
        label_smoothing: label smoothing of the token cross-entropy (ALBEF: 0).
        count_first_token_twice: score = full log-likelihood + first-token log-probability, as
            ALBEF's released ``rank_answer`` computes it.
        rank_chunk_size: candidate sequences scored per decoder pass at inference (memory bound;
            the result does not depend on it).
        pad_token_id: the tokenizer's padding id (BERT: 0).

    Example:
        >>> dict(type='AnswerDecoderHead', hidden_size=768, vocab_size=30522, num_layers=6,
        ...      num_heads=12, intermediate_size=3072, k_test=128,
        ...      tokenizer=dict(type='BertTokenizer', path='data/bert-base-uncased', add_sep=True))
    """

    def __init__(
        self,
        hidden_size: int,
        vocab_size: int,
        tokenizer: dict | Any,
        num_layers: int = 6,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 512,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        answer_max_length: int = 10,
        k_test: int = 128,
        label_smoothing: float = 0.0,
        count_first_token_twice: bool = False,
        rank_chunk_size: int = 1024,
        pad_token_id: int = 0,
    ) -> None:
        super().__init__()
        self.tokenizer = build_tokenizer(tokenizer)
        if not getattr(self.tokenizer, 'add_sep', False):
            raise ValueError(
                'AnswerDecoderHead needs an end token: give it a tokenizer with '
                'add_sep=True (ALBEF ends every answer with [SEP])'
            )
        if k_test < 1 or rank_chunk_size < 1:
            raise ValueError(
                f'k_test and rank_chunk_size must be >= 1, got {k_test}, {rank_chunk_size}'
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.answer_max_length = answer_max_length
        self.k_test = k_test
        self.label_smoothing = label_smoothing
        self.count_first_token_twice = count_first_token_twice
        self.rank_chunk_size = rank_chunk_size
        self.pad_token_id = pad_token_id  # not read from the tokenizer: no file I/O at build
        self.embeddings = BertEmbeddings(
            vocab_size,
            hidden_size,
            max_position_embeddings,
            layer_norm_eps=layer_norm_eps,
            dropout=dropout,
            pad_token_id=pad_token_id,
        )
        self.layer = nn.ModuleList(
            [
                BertLayer(
                    hidden_size,
                    num_heads,
                    intermediate_size,
                    layer_norm_eps,
                    dropout,
                    attn_dropout,
                    cross_attention_width=hidden_size,
                )
                for _ in range(num_layers)
            ]
        )
        init_bert_weights(self)
        self.lm_head = MLMHead(hidden_size, vocab_size, layer_norm_eps)
        self.lm_head.tie_to(self.embeddings.word_embeddings)
        self._candidates: dict[torch.device, tuple[Tensor, Tensor]] = {}

    # -- weights
    def init_map(self, num_source_layers: int) -> dict[str, str]:
        """Where each decoder tensor comes from in ALBEF's initialisation (explicit mapping).

        Returns:
            ``{decoder key: source key}`` with source keys ``text_backbone.embeddings.*`` and
            ``fusion.layer.<i>.*`` (decoder layer ``i`` <- fusion layer ``i``, for ``i <
            num_source_layers``). The LM head is not listed: it comes from the pre-trained MLM
            head, mapped by the model from the checkpoint.
        """
        out = {}
        for key in self.state_dict():
            if key.startswith('embeddings.'):
                out[key] = f'text_backbone.{key}'
            elif key.startswith('layer.') and int(key.split('.')[1]) < num_source_layers:
                out[key] = f'fusion.{key}'
        return out

    @torch.no_grad()
    def init_from_encoder(self, text_backbone: nn.Module, fusion: nn.Module) -> list[str]:
        """Copy ``text_backbone.embeddings`` and the fusion layers into the decoder.

        Returns:
            The decoder keys left as they were (no source, or a shape that differs, e.g. the
            cross-attention key / value when the image width differs from the text width);
            they are logged.
        """
        layers = getattr(fusion, 'layer', None)
        if layers is None:
            raise TypeError(
                f'AnswerDecoderHead.init_from_encoder: {type(fusion).__name__} has '
                'no "layer" list to initialise the decoder from'
            )
        source = {f'text_backbone.{k}': v for k, v in text_backbone.state_dict().items()}
        source.update({f'fusion.{k}': v for k, v in fusion.state_dict().items()})
        own = self.state_dict()
        mapping = self.init_map(len(layers))
        skipped, copied = [], 0
        for key, value in own.items():
            if key.startswith('lm_head.'):
                continue  # from the pre-trained MLM head (mapped by the model), or tied
            src = source.get(mapping.get(key, ''))
            if src is None or src.shape != value.shape:
                skipped.append(key)
                continue
            value.copy_(src)
            copied += 1
        if skipped:
            print_log(
                f'AnswerDecoderHead: {copied} tensors copied from the '
                f'text embeddings and fusion layers; kept as initialised: '
                f'{skipped[:8]}{"..." if len(skipped) > 8 else ""}',
                logger='current',
                level=logging.WARNING,
            )
        return skipped

    # -- the decoder
    def decode(
        self, answer_ids: Tensor, answer_mask: Tensor, states: Tensor, states_mask: Tensor
    ) -> Tensor:
        """Logits ``[N, La, V]`` of answers ``[N, La]`` given question states ``[N, Lq, D]``."""
        hidden = self.embeddings(answer_ids)
        self_mask = causal_mask(answer_mask, hidden.dtype)
        ctx_mask = additive_mask(states_mask, hidden.dtype)
        for layer in self.layer:
            hidden, _ = layer(hidden, self_mask, states, ctx_mask)
        return self.lm_head(hidden)

    def _token_nll(
        self, logits: Tensor, ids: Tensor, mask: Tensor, smoothing: float = 0.0
    ) -> Tensor:
        """Per-token negative log-likelihood ``[N, La - 1]`` of ``ids[:, 1:]`` (0 on padding)."""
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_LABEL)
        nll = F.cross_entropy(
            logits[:, :-1].transpose(1, 2).float(),
            labels,
            ignore_index=IGNORE_LABEL,
            reduction='none',
            label_smoothing=smoothing,
        )
        return nll * mask[:, 1:]

    # -- training
    def targets(self, data_samples: Sequence[Any], device: torch.device) -> dict[str, Tensor]:
        """Answer ids ``[N, La]``, mask, owning question ``[N]`` and weight ``[N]``."""
        rows, owner, weights = [], [], []
        for i, sample in enumerate(data_samples):
            ids, w = (
                sample_meta(sample, 'weighted_answers_ids'),
                sample_meta(sample, 'answer_weights'),
            )
            qid = sample_meta(sample, 'question_id')
            if ids is None or w is None:
                raise KeyError(
                    f'data sample {i} (question_id {qid!r}) has no '
                    '"weighted_answers_ids" / "answer_weights": tokenize the answers '
                    "in the pipeline (Tokenize keys=('weighted_answers',)) and keep "
                    'both in PackInputs meta_keys'
                )
            if len(ids) != len(w) or not len(ids):
                raise ValueError(
                    f'data sample {i} (question_id {qid!r}): '
                    f'{len(ids)} answers and {len(w)} weights; a training '
                    'question needs at least one answer'
                )
            rows.extend(np.asarray(a, dtype=np.int64) for a in ids)
            owner.extend([i] * len(ids))
            weights.extend(float(x) for x in w)
        length = max(len(r) for r in rows)
        ids_np = np.full((len(rows), length), self.pad_token_id, dtype=np.int64)
        mask_np = np.zeros((len(rows), length), dtype=np.int64)
        for j, row in enumerate(rows):
            ids_np[j, : len(row)] = row
            mask_np[j, : len(row)] = 1
        return dict(
            answer_ids=torch.from_numpy(ids_np).to(device),
            answer_mask=torch.from_numpy(mask_np).to(device),
            owner=torch.tensor(owner, dtype=torch.long, device=device),
            weights=torch.tensor(weights, dtype=torch.float32, device=device),
        )

    def logits(self, states: Tensor, mask: Tensor, targets: dict[str, Tensor]) -> Tensor:
        owner = targets['owner']
        return self.decode(
            targets['answer_ids'], targets['answer_mask'], states[owner], mask[owner]
        )

    def sequence_nll(
        self,
        logits: Tensor,
        targets: dict[str, Tensor],
        teacher: Tensor | None = None,
        alpha: float = 0.0,
    ) -> Tensor:
        """``[N]``: each answer's summed token loss (distilled when ``teacher`` is given)."""
        ids, mask = targets['answer_ids'], targets['answer_mask']
        nll = self._token_nll(logits, ids, mask, self.label_smoothing)
        if teacher is not None and alpha > 0:
            soft = teacher[:, :-1].float().softmax(-1)
            distill = -(soft * logits[:, :-1].float().log_softmax(-1)).sum(-1) * mask[:, 1:]
            nll = (1.0 - alpha) * nll + alpha * distill
        return nll.sum(1)

    def loss(
        self,
        states: Tensor,
        mask: Tensor,
        targets: dict[str, Tensor],
        teacher: Tensor | None = None,
        alpha: float = 0.0,
    ) -> dict[str, Tensor]:
        per_answer = self.sequence_nll(self.logits(states, mask, targets), targets, teacher, alpha)
        loss = (targets['weights'] * per_answer).sum() / states.shape[0]
        return {'loss_vqa': loss}

    # -- inference
    def set_answer_list(self, answers: Sequence[str]) -> None:
        super().set_answer_list(answers)
        self._candidates = {}

    def candidates(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The tokenised answer list: ids ``[C, La]`` (``[CLS] answer [SEP]``, padded), mask."""
        if device not in self._candidates:
            rows = [self.tokenizer.encode(a, self.answer_max_length) for a in self._answers()]
            length = max(len(r) for r in rows)
            ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, row in enumerate(rows):
                ids[j, : len(row)] = torch.tensor(row)
                mask[j, : len(row)] = 1
            self._candidates = {device: (ids.to(device), mask.to(device))}
        return self._candidates[device]

    @property
    def protocol(self) -> str:
        twice = ' + first token again (ALBEF code)' if self.count_first_token_twice else ''
        return (
            f'answer decoder: first-token top-{self.k_test} -> full-sequence log-likelihood{twice}'
        )

    def sequence_log_likelihood(
        self, answer_ids: Tensor, answer_mask: Tensor, states: Tensor, states_mask: Tensor
    ) -> Tensor:
        """``[N]``: ``sum_t log p(a_t | a_<t, q)`` of each answer, in chunks of rows."""
        out = []
        for start in range(0, answer_ids.shape[0], self.rank_chunk_size):
            part = slice(start, start + self.rank_chunk_size)
            logits = self.decode(
                answer_ids[part], answer_mask[part], states[part], states_mask[part]
            )
            out.append(-self._token_nll(logits, answer_ids[part], answer_mask[part]).sum(1))
        return torch.cat(out)

    def rank(self, states: Tensor, mask: Tensor, k: int | None = None) -> tuple[Tensor, Tensor]:
        """Top-``k`` candidates (by first-token probability) of each question, re-ranked.

        Returns:
            ``(indices [B, k], scores [B, k])``: candidate indices into the answer list, best
            first, and their scores (log-likelihood, see the class docstring).
        """
        ids, cand_mask = self.candidates(states.device)
        b, num = states.shape[0], ids.shape[0]
        k = min(self.k_test if k is None else k, num)
        start = ids[:1, :1].expand(b, 1)  # [CLS], the start token of every answer
        first = self.decode(start, torch.ones_like(start), states, mask)[:, 0].float()
        first_logp = first.log_softmax(-1)[:, ids[:, 1]]  # [B, C]
        top_first, top = first_logp.topk(k, dim=1)
        flat = top.reshape(-1)
        seq = self.sequence_log_likelihood(
            ids[flat], cand_mask[flat], states.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        ).view(b, k)
        if self.count_first_token_twice:
            seq = seq + top_first
        scores, order = seq.sort(dim=1, descending=True)
        return top.gather(1, order), scores

    def predict(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        indices, scores = self.rank(states, mask)
        return indices[:, 0], scores[:, 0]
