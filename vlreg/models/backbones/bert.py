"""BERT text encoder: embeddings and the first ``num_layers`` layers of a BERT."""

from __future__ import annotations


from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import BACKBONES
from vlreg.utils.paths import check_pretrained_path

from ..utils.bert_layers import (
    BertEmbeddings,
    BertLayer,
    Packing,
    additive_mask,
    init_bert_weights,
    run_layer,
    unpack,
)
from ..utils.checkpoint import load_into, read_bert_state, select_layers


class _Encoder(nn.Module):
    def __init__(self, layers: list[BertLayer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)


@BACKBONES.register_module()
class BertTextBackbone(BaseModule):
    """The text encoder of ALBEF: BERT layers ``0 .. num_layers-1`` (self-attention only).

    Parameter names are Hugging Face's (``embeddings.*``, ``encoder.layer.N.*``), so ``pretrained`` may be a
    local BERT folder or file; its first ``num_layers`` layers are loaded, the rest is left to the fusion
    encoder (:class:`vlreg.models.fusion.BertFusion` with ``layer_offset=num_layers``).

    Args:
        vocab_size: vocabulary size (30522 for bert-base-uncased).
        hidden_size: width.
        num_layers: number of text layers.
        num_heads: attention heads.
        intermediate_size: FFN width.
        max_position_embeddings: longest text.
        layer_norm_eps: LayerNorm epsilon.
        dropout: hidden dropout; ``attn_dropout``: attention dropout.
        pretrained: local BERT checkpoint (folder or file), loaded in ``init_weights``.
        grad_checkpointing: recompute each layer's activations in the backward pass instead of
            storing them (less memory, about one more forward of compute; default off).
        packed: in training mode with an ``attention_mask``, run every layer's projections,
            LayerNorms and FFN on the real tokens only, packed without the padding (the attention
            itself on the padded layout); the output is then 0 at padding positions (every loss
            masks them). The real tokens' values and gradients are the padded path's up to float
            summation order; dropout draws only for real tokens. Evaluation mode keeps the padded
            path (outputs at every position as ALBEF's). Default True.

    Example:
        ``dict(type='BertTextBackbone', vocab_size=30522, hidden_size=768, num_layers=6, num_heads=12,
        intermediate_size=3072, pretrained='/path/to/bert-base-uncased')``
    """

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_layers: int = 6,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        pad_token_id: int = 0,
        pretrained: str | None = None,
        grad_checkpointing: bool = False,
        packed: bool = True,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.grad_checkpointing = grad_checkpointing
        self.packed = packed
        check_pretrained_path(pretrained, 'text_backbone.pretrained')
        self.pretrained = pretrained
        self.embeddings = BertEmbeddings(
            vocab_size,
            hidden_size,
            max_position_embeddings,
            type_vocab_size,
            layer_norm_eps,
            dropout,
            pad_token_id,
        )
        self.encoder = _Encoder(
            [
                BertLayer(
                    hidden_size, num_heads, intermediate_size, layer_norm_eps, dropout, attn_dropout
                )
                for _ in range(num_layers)
            ]
        )
        init_bert_weights(self)

    @property
    def width(self) -> int:
        return self.hidden_size

    def init_weights(self) -> None:
        """Load the embeddings and layers ``0 .. num_layers-1`` of ``pretrained``, strictly.

        Keys of the file that other parts read (later layers, the MLM head) or nobody does
        (:data:`~vlreg.models.utils.checkpoint.BERT_UNUSED`) are left alone; anything this module
        has and the file lacks raises (:func:`~vlreg.models.utils.checkpoint.load_into`).
        """
        if self.pretrained:
            state = read_bert_state(self.pretrained)
            keep = {k: v for k, v in state.items() if k.startswith('embeddings.')}
            keep.update(select_layers(state, 0, len(self.encoder.layer)))
            load_into(self, keep, f'text backbone <- {self.pretrained}')

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Token ids ``[B, L]`` -> hidden states ``[B, L, D]``."""
        hidden = self.embeddings(input_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        if self._packs(attention_mask):
            valid = attention_mask.bool()
            packed, packing = hidden[valid], Packing(valid, mask)  # [T, D]
            for layer in self.encoder.layer:
                packed, _ = run_layer(layer, self.grad_checkpointing, packed, packing=packing)
            return unpack(packed, valid)
        for layer in self.encoder.layer:
            hidden, _ = run_layer(layer, self.grad_checkpointing, hidden, mask)
        return hidden

    def _packs(self, attention_mask: Tensor | None) -> bool:
        """Whether :meth:`forward` takes the packed path (see ``packed``)."""
        return self.packed and self.training and attention_mask is not None
