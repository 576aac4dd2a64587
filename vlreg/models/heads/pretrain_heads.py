"""Heads of pre-training: image-text matching and masked language modelling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import HEADS

from ..utils.checkpoint import load_into, read_bert_state, strip_prefix


@HEADS.register_module()
class ITMHead(BaseModule):
    """Linear classifier on the fused [CLS]: column 1 = "the pair matches".

    Example:
        ``dict(type='ITMHead', hidden_size=768)``
    """

    def __init__(self, hidden_size: int = 768) -> None:
        super().__init__()
        self.fc = nn.Linear(hidden_size, 2)

    def forward(self, cls: Tensor) -> Tensor:
        return self.fc(cls)


class _Transform(nn.Module):
    def __init__(self, hidden_size: int, layer_norm_eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


@HEADS.register_module()
class MLMHead(BaseModule):
    """BERT's prediction head (dense, GELU, LayerNorm, vocabulary decoder tied to the word embeddings).

    Call it on the hidden states of the masked positions only: the vocabulary projection is the most
    expensive part of a small model's step. Names follow Hugging Face's ``cls.predictions`` so a BERT
    checkpoint's head loads by name (``pretrained``). The decoder weight is tied by the model that owns the
    word embeddings (:meth:`tie_to`).

    Example:
        ``dict(type='MLMHead', hidden_size=768, vocab_size=30522)``
    """

    def __init__(
        self,
        hidden_size: int = 768,
        vocab_size: int = 30522,
        layer_norm_eps: float = 1e-12,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.pretrained = pretrained
        self.transform = _Transform(hidden_size, layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.transform.dense.weight, std=0.02)
        nn.init.zeros_(self.transform.dense.bias)

    def tie_to(self, word_embeddings: nn.Embedding) -> None:
        if word_embeddings.weight.shape != self.decoder.weight.shape:
            raise ValueError(
                f'MLM head vocabulary {tuple(self.decoder.weight.shape)} does not match the '
                f'word embeddings {tuple(word_embeddings.weight.shape)}'
            )
        self.decoder.weight = word_embeddings.weight

    def init_weights(self) -> None:
        """Load ``cls.predictions.*`` of the BERT file ``pretrained``, strictly (the decoder weight
        is tied to the word embeddings and loads with them)."""
        if self.pretrained:
            state = strip_prefix(read_bert_state(self.pretrained), 'cls.predictions.')
            if not state:
                raise KeyError(
                    f'MLM head <- {self.pretrained}: the file has no cls.predictions.* '
                    '(an MLM head); drop mlm_head.pretrained to start it random'
                )
            state.pop('decoder.weight', None)  # tied to the word embeddings
            if 'decoder.bias' in state:
                # Hugging Face ties decoder.bias to bias; files hold one or both
                bias = state.pop('decoder.bias')
                state.setdefault('bias', bias)
            load_into(
                self, state, f'MLM head <- {self.pretrained}', expect_missing=('decoder.weight',)
            )

    def forward(self, hidden: Tensor) -> Tensor:
        """Hidden states ``[..., D]`` -> vocabulary logits ``[..., V]``."""
        return self.decoder(self.transform(hidden)) + self.bias
