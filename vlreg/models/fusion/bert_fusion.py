"""The multimodal (fusion) encoder: BERT layers with cross-attention from text to image tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import FUSION_HEADS

from ..utils.bert_layers import (
    BertLayer,
    Packing,
    additive_mask,
    init_bert_weights,
    run_layer,
    unpack,
)
from ..utils.checkpoint import load_into, read_bert_state, select_layers


@dataclass
class FusionOutput:
    """What a fusion pass returns.

    Attributes:
        hidden: ``[B, L, D]`` last hidden states (position 0 is the fused [CLS]).
        cross_attn: ``[B, heads, L, N_image]`` pre-dropout cross-attention probabilities of the layer asked
            for (in the autograd graph), else None.
    """

    hidden: Tensor
    cross_attn: Tensor | None = None

    @property
    def cls(self) -> Tensor:
        return self.hidden[:, 0]


@FUSION_HEADS.register_module()
class BertFusion(BaseModule):
    """ALBEF's fusion encoder: each layer is self-attention -> cross-attention -> FFN, bidirectional.

    The layers are BERT layers ``layer_offset .. layer_offset+num_layers-1``: ``pretrained`` (a local BERT
    folder or file) fills their self-attention and FFN by name; cross-attention starts random, as in ALBEF.
    Attention uses the fused SDPA kernel except in the one layer whose probabilities are asked for.

    Args:
        hidden_size: text width; ``encoder_width``: image token width (keys/values of cross-attention).
        num_layers, num_heads, intermediate_size, layer_norm_eps, dropout, attn_dropout: BERT sizes.
        layer_offset: index of the first fusion layer in the source BERT (for loading weights).
        pretrained: local BERT checkpoint, loaded in ``init_weights``.
        grad_checkpointing: recompute each layer's activations in the backward pass (less
            memory; the Grad-CAM layer's probabilities stay differentiable; default off).
        packed: run every projection, LayerNorm and FFN on the texts' real tokens only, packed
            without the padding (the attention itself on the padded layout), in a pass that
            reads only the [CLS] (``cls_only``: the ITM passes) and, in training mode, in every
            pass (MLM; the output is then 0 at padding positions, which the losses never read).
            Same values and gradients up to float summation order; dropout draws only for real
            tokens. Used when no attention probabilities and no image mask are asked for.
            Evaluation-mode full passes keep the padded layout (outputs at every position as
            ALBEF's). Default True; False keeps the padded layout everywhere.

    Example:
        ``dict(type='BertFusion', hidden_size=768, encoder_width=768, num_layers=6, num_heads=12,
        intermediate_size=3072, layer_offset=6)``
    """

    def __init__(
        self,
        hidden_size: int = 768,
        encoder_width: int = 768,
        num_layers: int = 6,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        layer_offset: int = 6,
        pretrained: str | None = None,
        grad_checkpointing: bool = False,
        packed: bool = True,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.grad_checkpointing = grad_checkpointing
        self.packed = packed
        self.layer_offset = layer_offset
        self.pretrained = pretrained
        self.layer = nn.ModuleList(
            [
                BertLayer(
                    hidden_size,
                    num_heads,
                    intermediate_size,
                    layer_norm_eps,
                    dropout,
                    attn_dropout,
                    cross_attention_width=encoder_width,
                )
                for _ in range(num_layers)
            ]
        )
        init_bert_weights(self)

    @property
    def num_layers(self) -> int:
        return len(self.layer)

    def init_weights(self) -> None:
        """Load BERT layers ``layer_offset ..`` of ``pretrained`` into the fusion layers, strictly
        (only the cross-attention may be absent: a plain BERT has none)."""
        if self.pretrained:
            state = select_layers(
                read_bert_state(self.pretrained),
                self.layer_offset,
                len(self.layer),
                prefix='layer.',
            )
            load_into(
                self, state, f'fusion <- {self.pretrained}', expect_missing=('crossattention',)
            )

    def image_key_values(self, image_tokens: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Every layer's cross-attention keys and values of ``image_tokens`` ``[B, N, D_v]``.

        Returns:
            one ``(keys, values)`` pair of ``[B, heads, N, head_dim]`` per layer; row ``b`` may be
            repeated (indexed) for every text scored against image ``b`` and passed as
            ``image_kv`` to :meth:`forward`, so an image's projections are computed once. Each
            is contiguous in that layout (one copy here, where the split heads are a strided view
            of the projection): the attention products of every pass that reads them would
            otherwise copy them, forward and backward, once per pass.
        """
        return [
            tuple(t.contiguous() for t in layer.crossattention.self.key_value(image_tokens))
            for layer in self.layer
        ]

    def scale_image_key_values(
        self, image_kv: list[tuple[Tensor, Tensor]], scale: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """The keys / values of image tokens multiplied by ``scale`` ``[B, N]`` (the soft mask),
        from those of the unscaled tokens: a projection ``W x + b`` of ``s x`` is
        ``s (W x + b - b) + b``, so the damped image needs no projection of its own.

        Args:
            image_kv: :meth:`image_key_values` of the unscaled tokens (``[B, h, N, d]`` per layer).
            scale: ``[B, N]`` one factor per token (1 for the [CLS]).
        """
        return [
            layer.crossattention.self.scale_key_value(kv, scale)
            for layer, kv in zip(self.layer, image_kv)
        ]

    def text_self_attention(self, text_hidden: Tensor, text_mask: Tensor | None) -> Tensor:
        """The first layer's self-attention block (attention + output LayerNorm) on the texts alone.

        It never sees the image, so a text scored against many images needs it once; pass the
        result to :meth:`pair_cls` with ``text_attended=True``.
        """
        mask = additive_mask(text_mask, text_hidden.dtype)
        return self.layer[0].attention(text_hidden, mask)[0]

    def pair_cls(
        self,
        text_hidden: Tensor,
        text_mask: Tensor,
        image_kv: list[tuple[Tensor, Tensor]],
        image_index: Tensor,
        text_attended: bool = False,
    ) -> Tensor:
        """The fused [CLS] ``[P, D]`` of P (text, image) pairs, for scoring many pairs (ITM re-rank,
        eval mode: no dropout, no image mask).

        Equal to ``forward(text_hidden, text_mask, None, image_kv=<image_kv rows image_index>).cls``
        but cheaper:

        * every projection, LayerNorm and FFN runs on the real tokens only (packed, no padding:
          only the self-attention itself sees the padded layout);
        * the images' keys / values are never copied per pair: the queries of consecutive pairs
          on one image attend to its keys in one call (pairs sorted by image: one call per image);
        * the last layer computes the [CLS] row only (the one read; its self-attention still takes
          keys / values from every token).

        Args:
            text_hidden: ``[P, L, D]`` text tokens of each pair, or with ``text_attended`` the
                output of :meth:`text_self_attention` on them.
            text_mask: ``[P, L]`` 1 for real tokens (position 0, the [CLS], always real).
            image_kv: :meth:`image_key_values` of G distinct images (``[G, h, N, d]`` per layer).
            image_index: ``[P]`` the image (0 .. G-1) of each pair.
        """
        if len(image_kv) != len(self.layer):
            raise ValueError(
                f'image_kv holds {len(image_kv)} layers, the fusion has {len(self.layer)}'
            )
        p = text_hidden.shape[0]
        if image_index.shape != (p,):
            raise ValueError(f'image_index must be [{p}], got {list(image_index.shape)}')
        valid = text_mask.bool()
        if p and not bool(valid[:, 0].all()):
            raise ValueError('pair_cls needs position 0 ([CLS]) of every text to be a real token')
        lengths = valid.sum(1)
        images, counts = torch.unique_consecutive(image_index, return_counts=True)
        images, counts = images.tolist(), counts.tolist()
        run_tokens = [int(n.sum()) for n in lengths.split(counts)]  # real tokens per run
        pair_runs, token_runs = list(zip(images, counts)), list(zip(images, run_tokens))
        runs = [token_runs] * (len(self.layer) - 1) + [pair_runs]
        return self._run_packed(text_hidden, valid, None, image_kv, runs, text_attended)

    def _run_packed(
        self,
        text_hidden: Tensor,
        valid: Tensor,
        image_tokens: Tensor | None,
        image_kv: list[tuple[Tensor, Tensor]] | None,
        runs: list[list[tuple[int, int]] | None],
        text_attended: bool = False,
        every_row: bool = False,
    ) -> Tensor:
        """The fusion layers on the real tokens only (``valid`` ``[P, L]``, position 0 real;
        :class:`~vlreg.models.utils.bert_layers.Packing`): the fused [CLS] ``[P, D]``, the last
        layer computing those rows only, or with ``every_row`` every real token, packed ``[T, D]``.
        The images: ``image_kv`` (else each layer projects ``image_tokens``); ``runs[i]``: layer
        i's ``Packing.runs`` (None: one image row per text)."""
        lengths = valid.sum(1)
        cls_rows = torch.cumsum(lengths, 0) - lengths  # packed position of each [CLS]
        mask = additive_mask(valid.long(), text_hidden.dtype)
        hidden = text_hidden[valid]  # [T, D]
        last = len(self.layer) - 1
        for i, layer in enumerate(self.layer):
            packing = Packing(
                valid,
                mask,
                query_rows=cls_rows if i == last and not every_row else None,
                self_attended=text_attended and i == 0,
                runs=runs[i],
            )
            hidden, _ = run_layer(
                layer,
                self.grad_checkpointing,
                hidden,
                context=image_tokens,
                context_kv=None if image_kv is None else image_kv[i],
                packing=packing,
            )
        return hidden

    def forward(
        self,
        text_hidden: Tensor,
        text_mask: Tensor | None,
        image_tokens: Tensor | None,
        image_mask: Tensor | None = None,
        attn_layer: int | None = None,
        image_kv: list[tuple[Tensor, Tensor]] | None = None,
        cls_only: bool = False,
    ) -> FusionOutput:
        """Fuse text ``[B, L, D]`` with image tokens ``[B, N, D_v]``.

        Args:
            attn_layer: index (within the fusion layers, may be negative) whose cross-attention
                probabilities are returned; None returns none and every layer stays on SDPA.
            image_kv: :meth:`image_key_values` of the images (one row per text), used instead of
                ``image_tokens``.
            cls_only: the caller reads only the [CLS] row (ITM): the last layer computes that row
                alone (its self-attention still takes keys / values from every token), and
                ``hidden`` is ``[B, 1, D]``. Values and gradients of the [CLS] row are unchanged.
                Ignored when the last layer is ``attn_layer`` (its probabilities of every row are
                wanted).
        """
        if image_kv is not None and len(image_kv) != len(self.layer):
            raise ValueError(
                f'image_kv holds {len(image_kv)} layers, the fusion has {len(self.layer)}'
            )
        if attn_layer is not None and not -len(self.layer) <= attn_layer < len(self.layer):
            raise IndexError(
                f'attn_layer {attn_layer} is out of range for {len(self.layer)} fusion layers'
            )
        want = None if attn_layer is None else attn_layer % len(self.layer)
        if self._packs(cls_only, want, image_mask, text_mask):
            valid, runs = text_mask.bool(), [None] * len(self.layer)
            out = self._run_packed(
                text_hidden, valid, image_tokens, image_kv, runs, every_row=not cls_only
            )
            return FusionOutput(out[:, None] if cls_only else unpack(out, valid))
        mask = additive_mask(text_mask, text_hidden.dtype)
        ctx_mask = additive_mask(image_mask, text_hidden.dtype)
        hidden, probs = text_hidden, None
        last = len(self.layer) - 1
        for i, layer in enumerate(self.layer):
            rows_only = cls_only and i == last and want != last
            hidden, p = run_layer(
                layer,
                self.grad_checkpointing,
                hidden[:, :1] if rows_only else hidden,
                mask,
                image_tokens,
                ctx_mask,
                return_cross_probs=(i == want),
                context_kv=None if image_kv is None else image_kv[i],
                self_context=hidden if rows_only else None,
            )
            if i == want:
                probs = p
        return FusionOutput(hidden, probs)

    def _packs(
        self, cls_only: bool, want: int | None, image_mask: Tensor | None, text_mask: Tensor | None
    ) -> bool:
        """Whether :meth:`forward` takes the packed path (see ``packed``)."""
        if not (self.packed and want is None and image_mask is None):
            return False
        if not (cls_only or self.training):
            return False
        return text_mask is not None and bool(text_mask[:, 0].all())
