"""BERT building blocks whose parameter names follow Hugging Face's ``BertModel``.

We keep our own layer stack (ENVIRONMENT.md: transformers v5 has no bidirectional cross-attention BERT
without patching its internals) and name every parameter as Hugging Face does, so a BERT checkpoint loads by
name: ``embeddings.*``, ``encoder.layer.N.attention.self.{query,key,value}``,
``encoder.layer.N.attention.output.{dense,LayerNorm}``, ``...intermediate.dense``, ``...output.{dense,LayerNorm}``
and, in fusion layers, ``...crossattention.*`` (ALBEF's names).

Attention runs through ``scaled_dot_product_attention``; a layer asked for its probabilities computes the
softmax explicitly (pre-dropout, in the autograd graph) so Grad-CAM can differentiate through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

# ALBEF adds -10000 to padded keys; any large negative gives the same fp32 probabilities unless a whole row
# is masked, and -10000 keeps fp16 finite.
MASK_VALUE = -10000.0


@dataclass
class Packing:
    """How a :class:`BertLayer` call's ``hidden`` is laid out when it holds only real tokens, packed
    row after row without the padding (``[T, D]``) instead of ``[B, L, D]``.

    Attributes:
        valid: ``[B, L]`` bool, the real tokens (row-major order of the packed rows).
        mask: the additive key mask ``[B, 1, 1, L]`` of ``valid``.
        query_rows: ``[B]`` packed positions of one query token per text (the [CLS]): the layer
            computes those rows only (its self-attention still takes keys / values from every
            token) and returns ``[B, D]``; None: every token.
        self_attended: the self-attention block already ran on ``hidden`` (e.g. once per text for
            many pairs); the layer starts at the cross-attention.
        runs: cross-attention to ``G`` distinct images' keys / values: ``(image, rows)`` for
            consecutive rows on one image (``grouped_cross_attention``); None: one key / value row
            per text.
    """

    valid: Tensor
    mask: Tensor
    query_rows: Tensor | None = None
    self_attended: bool = False
    runs: list[tuple[int, int]] | None = None


def additive_mask(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """[B, L] 1/0 key mask -> [B, 1, 1, L] additive mask (None if nothing is masked)."""
    if mask is None:
        return None
    return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_VALUE


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout (position ids 0..L-1, type 0)."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        pad_token_id: int = 0,
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f'text of {length} tokens exceeds max_position_embeddings='
                f'{self.position_embeddings.num_embeddings}'
            )
        pos = torch.arange(length, device=input_ids.device)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(pos)[None]
            + self.token_type_embeddings.weight[0]
        )
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention; keys/values from ``context`` (cross-attention) when given."""

    def __init__(
        self, hidden_size: int, num_heads: int, kv_width: int | None = None, dropout: float = 0.1
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(
                f'hidden_size {hidden_size} is not a multiple of num_heads {num_heads}'
            )
        kv_width = kv_width or hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(kv_width, hidden_size)
        self.value = nn.Linear(kv_width, hidden_size)
        self.dropout = nn.Dropout(dropout)

    @property
    def dropout_p(self) -> float:
        """The dropout probability on the attention probabilities: ``dropout.p`` in training,
        else 0 (what every attention product of this module passes to SDPA)."""
        return self.dropout.p if self.training else 0.0

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def key_value(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """The keys and values of ``context`` ``[B, N, D_kv]``, split in heads: 2 x ``[B, h, N, d]``.

        A cross-attention layer scoring many texts against one image computes them once and
        passes them as ``kv`` to every call (retrieval re-ranking).
        """
        return self._split(self.key(context)), self._split(self.value(context))

    def scale_key_value(self, kv: tuple[Tensor, Tensor], scale: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`key_value` of ``scale[:, :, None] * context`` from ``kv`` = :meth:`key_value` of
        ``context``: the projection is linear, ``W (s x) + b = s (W x + b - b) + b``.
        ``scale`` is ``[B, N]``, one factor per context token."""
        s = scale[:, None, :, None]
        out = []
        for x, linear in zip(kv, (self.key, self.value)):
            bias = linear.bias.view(self.num_heads, 1, self.head_dim)
            out.append((s * (x - bias) + bias).to(x.dtype))
        return out[0], out[1]

    def forward(
        self,
        hidden: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        return_probs: bool = False,
        kv: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``mask`` is additive ``[B, 1, 1, L_k]``; ``kv`` precomputed :meth:`key_value` (then
        ``context`` is unused); returns (output, probs or None)."""
        q = self._split(self.query(hidden))
        k, v = kv if kv is not None else self.key_value(hidden if context is None else context)
        if return_probs:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores + mask
            probs = scores.softmax(dim=-1)
            out = self.dropout(probs) @ v
        else:
            probs = None
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=None if mask is None else mask.to(q.dtype),
                dropout_p=self.dropout_p,
            )
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, -1), probs


class BertSelfOutput(nn.Module):
    """Dense + dropout + residual LayerNorm (named as Hugging Face's ``attention.output``)."""

    def __init__(self, hidden_size: int, layer_norm_eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    """``self`` attention + ``output`` projection."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        layer_norm_eps: float,
        dropout: float,
        attn_dropout: float,
        kv_width: int | None = None,
    ) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden_size, num_heads, kv_width, attn_dropout)
        self.output = BertSelfOutput(hidden_size, layer_norm_eps, dropout)

    def forward(
        self,
        hidden: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        return_probs: bool = False,
        kv: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        out, probs = self.self(hidden, mask, context, return_probs, kv)
        return self.output(out, hidden), probs


class BertIntermediate(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))


class BertOutput(nn.Module):
    def __init__(
        self, intermediate_size: int, hidden_size: int, layer_norm_eps: float, dropout: float
    ) -> None:
        super().__init__()
        self.dense = nn.Linear(intermediate_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertLayer(nn.Module):
    """Self-attention, then (fusion layers) cross-attention to image tokens, then the FFN."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        cross_attention_width: int | None = None,
    ) -> None:
        super().__init__()
        self.attention = BertAttention(
            hidden_size, num_heads, layer_norm_eps, dropout, attn_dropout
        )
        self.crossattention = None
        if cross_attention_width is not None:
            self.crossattention = BertAttention(
                hidden_size,
                num_heads,
                layer_norm_eps,
                dropout,
                attn_dropout,
                kv_width=cross_attention_width,
            )
        self.intermediate = BertIntermediate(hidden_size, intermediate_size)
        self.output = BertOutput(intermediate_size, hidden_size, layer_norm_eps, dropout)

    def forward(
        self,
        hidden: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        return_cross_probs: bool = False,
        context_kv: tuple[Tensor, Tensor] | None = None,
        self_context: Tensor | None = None,
        packing: Packing | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``self_context``: the tokens the self-attention takes its keys / values from when
        ``hidden`` holds only some query rows of them (e.g. the [CLS] row); default ``hidden``.
        ``packing``: ``hidden`` holds the real tokens only (:class:`Packing`; ``mask`` and
        ``context_mask`` unused, no attention probabilities), the cross-attention reads
        ``context_kv`` (or projects ``context``)."""
        if packing is not None:
            return self._packed(hidden, packing, context, context_kv), None
        hidden, _ = self.attention(hidden, mask, context=self_context)
        probs = None
        if self.crossattention is not None:
            if context is None and context_kv is None:
                raise ValueError('a fusion layer needs image tokens (context)')
            hidden, probs = self.crossattention(
                hidden, context_mask, context, return_cross_probs, context_kv
            )
        return self.output(self.intermediate(hidden), hidden), probs

    def _packed(
        self,
        hidden: Tensor,
        packing: Packing,
        context: Tensor | None,
        context_kv: tuple[Tensor, Tensor] | None,
    ) -> Tensor:
        """The layer on packed real tokens (:class:`Packing`): every projection, LayerNorm and FFN
        on those rows only."""
        rows = packing.query_rows
        if not packing.self_attended:
            out = packed_self_attention(
                self.attention.self, hidden, packing.valid, packing.mask, rows
            )
            hidden = self.attention.output(out, hidden if rows is None else hidden[rows])
        elif rows is not None:
            hidden = hidden[rows]
        if self.crossattention is not None:
            attn = self.crossattention.self
            if context_kv is None:
                if context is None:
                    raise ValueError('a fusion layer needs image tokens (context)')
                context_kv = attn.key_value(context)
            if packing.runs is not None:
                out = grouped_cross_attention(attn, hidden, context_kv, packing.runs)
            else:
                out = packed_cross_attention(
                    attn, hidden, packing.valid, context_kv, cls_only=rows is not None
                )
            hidden = self.crossattention.output(out, hidden)
        return self.output(self.intermediate(hidden), hidden)


def unpack(packed: Tensor, valid: Tensor) -> Tensor:
    """Packed rows ``packed`` ``[T, D]`` (the tokens ``valid`` ``[P, L]`` marks, row-major) back in
    the padded layout ``[P, L, D]``, zeros at the padding."""
    grid = packed.new_zeros(*valid.shape, packed.shape[-1])
    grid[valid] = packed
    return grid


def pad_heads(x: Tensor, valid: Tensor, heads: int) -> Tensor:
    """:func:`unpack` of ``x`` ``[T, h * d]``, split in heads: ``[P, h, L, d]``."""
    p, length = valid.shape
    return unpack(x, valid).view(p, length, heads, -1).transpose(1, 2)


def grouped_cross_attention(
    attn: BertSelfAttention,
    rows: Tensor,
    kv: tuple[Tensor, Tensor],
    runs: list[tuple[int, int]],
) -> Tensor:
    """Cross-attention (no mask) of token rows ``rows`` ``[R, D]`` to the precomputed keys / values
    ``kv`` (2 x ``[G, h, N, d]``) of their images; dropout on the probabilities in training mode.

    ``runs`` lists ``(image, count)`` for consecutive rows on one image (in row order, summing to
    R): the rows of a run attend to its image's keys in one call (a cross-attention query does not
    see the other queries), so the keys / values are never copied per row. Returns the attention
    output ``[R, D]`` before the output projection.
    """
    count_all, width = rows.shape
    heads, dim = attn.num_heads, attn.head_dim
    q = attn.query(rows).view(count_all, heads, dim)
    keys, values = kv
    out = torch.empty_like(q)
    start = 0
    for image, count in runs:
        block = q[start : start + count].transpose(0, 1).unsqueeze(0)  # [1, h, count, d]
        o = F.scaled_dot_product_attention(
            block,
            keys[image : image + 1],
            values[image : image + 1],
            dropout_p=attn.dropout_p,
        )
        out[start : start + count] = o[0].transpose(0, 1)
        start += count
    if start != count_all:
        raise ValueError(f'runs cover {start} rows, there are {count_all}')
    return out.view(count_all, width)


def packed_cross_attention(
    attn: BertSelfAttention,
    packed: Tensor,
    valid: Tensor,
    kv: tuple[Tensor, Tensor],
    cls_only: bool = False,
) -> Tensor:
    """Cross-attention (no mask) of texts whose real tokens are packed, each text to its own row of
    keys / values ``kv`` (2 x ``[P, h, N, d]``); dropout on the probabilities in training mode.

    Args:
        packed: ``[T, D]`` the tokens ``valid`` ``[P, L]`` marks, row-major; with ``cls_only``
            ``[P, D]``, one query row (the [CLS]) per text.

    Returns ``[T, D]`` (or ``[P, D]``) before the output projection. The query projection runs on
    the real tokens only; the attention itself on the padded layout (the padding's queries are
    dropped).
    """
    p = valid.shape[0]
    heads, dim = attn.num_heads, attn.head_dim
    q = attn.query(packed)
    if cls_only:
        q = q.view(p, 1, heads, dim).transpose(1, 2)
    else:
        q = pad_heads(q, valid, heads)
    out = F.scaled_dot_product_attention(q, kv[0], kv[1], dropout_p=attn.dropout_p)
    out = out.transpose(1, 2).reshape(p, -1, heads * dim)
    return out[:, 0] if cls_only else out[valid]


def packed_self_attention(
    attn: BertSelfAttention,
    packed: Tensor,
    valid: Tensor,
    mask: Tensor,
    query_rows: Tensor | None = None,
) -> Tensor:
    """Self-attention of texts whose real tokens are packed row after row (dropout on the
    probabilities in training mode, as :class:`BertSelfAttention`).

    Args:
        packed: ``[T, D]`` the tokens ``valid`` marks, in row-major order.
        valid: ``[P, L]`` bool, the real tokens of the P texts.
        mask: the additive key mask ``[P, 1, 1, L]`` of ``valid``.
        query_rows: ``[P]`` packed positions of one query token per text (the [CLS]); None: every
            token is a query.

    Returns:
        ``[T, D]`` (every token) or ``[P, D]`` (``query_rows``), before the output projection.
    The projections run on the real tokens only; the attention itself on the padded ``[P, L]``
    layout.
    """
    p, length = valid.shape
    heads, dim = attn.num_heads, attn.head_dim
    keys = pad_heads(attn.key(packed), valid, heads)
    values = pad_heads(attn.value(packed), valid, heads)
    mask, drop = mask.to(keys.dtype), attn.dropout_p
    if query_rows is None:
        q = pad_heads(attn.query(packed), valid, heads)
        out = F.scaled_dot_product_attention(q, keys, values, mask, dropout_p=drop)
        return out.transpose(1, 2).reshape(p, length, heads * dim)[valid]
    q = attn.query(packed[query_rows]).view(p, 1, heads, dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, keys, values, mask, dropout_p=drop)
    return out.reshape(p, heads * dim)


def run_layer(
    layer: BertLayer, checkpointed: bool, *args: object, **kwargs: object
) -> tuple[Tensor, Tensor | None]:
    """``layer(*args, **kwargs)``, under activation checkpointing when ``checkpointed`` and
    gradients are being recorded (its activations are recomputed in the backward pass, with the
    same dropout draws). The module called is the one given, so a deep-copied (momentum) encoder
    recomputes with its own weights."""
    if checkpointed and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False, **kwargs)
    return layer(*args, **kwargs)


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) for Linear / Embedding, LayerNorm to (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
