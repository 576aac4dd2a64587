"""The multimodal (fusion) encoder: BERT layers with cross-attention from text to image tokens."""

from __future__ import annotations

from dataclasses import dataclass

from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import FUSION_HEADS

from ..utils.bert_layers import BertLayer, additive_mask, init_bert_weights, run_layer
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
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.grad_checkpointing = grad_checkpointing
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
            ``image_kv`` to :meth:`forward`, so an image's projections are computed once.
        """
        return [layer.crossattention.self.key_value(image_tokens) for layer in self.layer]

    def forward(
        self,
        text_hidden: Tensor,
        text_mask: Tensor | None,
        image_tokens: Tensor | None,
        image_mask: Tensor | None = None,
        attn_layer: int | None = None,
        image_kv: list[tuple[Tensor, Tensor]] | None = None,
    ) -> FusionOutput:
        """Fuse text ``[B, L, D]`` with image tokens ``[B, N, D_v]``.

        Args:
            attn_layer: index (within the fusion layers, may be negative) whose cross-attention
                probabilities are returned; None returns none and every layer stays on SDPA.
            image_kv: :meth:`image_key_values` of the images (one row per text), used instead of
                ``image_tokens``.
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
        mask = additive_mask(text_mask, text_hidden.dtype)
        ctx_mask = additive_mask(image_mask, text_hidden.dtype)
        hidden, probs = text_hidden, None
        for i, layer in enumerate(self.layer):
            hidden, p = run_layer(
                layer,
                self.grad_checkpointing,
                hidden,
                mask,
                image_tokens,
                ctx_mask,
                return_cross_probs=(i == want),
                context_kv=None if image_kv is None else image_kv[i],
            )
            if i == want:
                probs = p
        return FusionOutput(hidden, probs)
