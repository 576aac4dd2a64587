"""ALBEF's NLVR2 fusion encoder: each fusion layer doubled, the two blocks attend to image 0 and 1.

Reading of ALBEF (paper, Sec. 5 / Fig. 3, and its released ``model_nlvr.py`` / ``xbert.py``): "each
layer of the multimodal encoder is replicated to have two consecutive transformer blocks, where each
block contains a self-attention layer, a cross-attention layer, and a feed-forward layer ... The two
blocks within each layer are initialized using the same pre-trained weights, and the two
cross-attention layers share the same linear projection weights for keys and values." So
``num_layers`` source fusion layers become ``2 * num_layers`` blocks; block ``2i`` cross-attends
to image 0 and block ``2i + 1`` to image 1 (ALBEF:
``encoder_hidden_states[(layer_num - fusion_layer) % 2]``); the ``key`` / ``value`` Linear modules
of block ``2i + 1``'s cross-attention are the very modules of block ``2i`` (ALBEF's
``share_cross_attention``), while queries, output projections, self-attention and FFN stay separate.

Weight mapping from a single-image fusion (``BertFusion``, ALBEF's ``Pretrain_nlvr.py`` remap):
source ``layer.i.*`` fills both ``layer.{2i}.*`` and ``layer.{2i+1}.*``
(:meth:`BertPairFusion.convert_single_state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import FUSION_HEADS

from ..utils.bert_layers import BertLayer, additive_mask, init_bert_weights
from ..utils.checkpoint import load_into, read_bert_state, select_layers
from .bert_fusion import FusionOutput

__all__ = ['BertPairFusion']


@FUSION_HEADS.register_module()
class BertPairFusion(BaseModule):
    """Fusion over an image pair: ``2 * num_layers`` BERT blocks alternating image 0 / image 1.

    Args:
        hidden_size: text width; ``encoder_width``: image token width.
        num_layers: fusion layers of the single-image source (each becomes two blocks).
        num_heads, intermediate_size, layer_norm_eps, dropout, attn_dropout: BERT sizes.
        layer_offset: index of the first fusion layer in the source BERT (``pretrained`` loading).
        share_key_value: tie the cross-attention key / value projections within a pair (ALBEF).
        pretrained: local BERT checkpoint: BERT layer ``layer_offset + i`` fills blocks ``2i``
            and ``2i+1``.

    Example:
        ``dict(type='BertPairFusion', hidden_size=768, encoder_width=768, num_layers=6,
        num_heads=12, intermediate_size=3072, layer_offset=6)``
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
        share_key_value: bool = True,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.layer_offset = layer_offset
        self.pretrained = pretrained
        self.share_key_value = share_key_value
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
                for _ in range(2 * num_layers)
            ]
        )
        init_bert_weights(self)
        if share_key_value:
            for i in range(0, len(self.layer), 2):
                first = self.layer[i].crossattention.self
                second = self.layer[i + 1].crossattention.self
                second.key, second.value = first.key, first.value

    @property
    def num_layers(self) -> int:
        """Number of blocks (twice the source fusion layers)."""
        return len(self.layer)

    @staticmethod
    def image_index(block: int) -> int:
        """Which image of the pair block ``block`` cross-attends to."""
        return block % 2

    @staticmethod
    def convert_single_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map a single-image fusion state (``layer.i.*``) onto the pair blocks ``2i`` and
        ``2i+1``."""
        out: dict[str, Tensor] = {}
        for key, value in state.items():
            head, _, rest = key.partition('.')
            index, _, tail = rest.partition('.')
            if head != 'layer' or not index.isdigit():
                out[key] = value
                continue
            for block in (2 * int(index), 2 * int(index) + 1):
                out[f'layer.{block}.{tail}'] = value
        return out

    def convert_state(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A fusion state of either layout for this module: a single-image state (half as many
        layers) is expanded, a pair state (as many blocks, e.g. after text-assignment pre-training)
        is kept as is."""
        indices = {
            int(k.split('.')[1])
            for k in state
            if k.startswith('layer.') and k.split('.')[1].isdigit()
        }
        count = max(indices) + 1 if indices else 0
        if count == len(self.layer):
            return dict(state)
        if 2 * count == len(self.layer):
            return self.convert_single_state(state)
        raise ValueError(
            f'a fusion state with {count} layers fits neither {len(self.layer)} pair '
            f'blocks nor {len(self.layer) // 2} single-image layers'
        )

    def init_weights(self) -> None:
        if self.pretrained:
            single = select_layers(
                read_bert_state(self.pretrained),
                self.layer_offset,
                len(self.layer) // 2,
                prefix='layer.',
            )
            load_into(
                self,
                self.convert_single_state(single),
                f'pair fusion <- {self.pretrained}',
                expect_missing=('crossattention',),
            )

    def forward(
        self,
        text_hidden: Tensor,
        text_mask: Tensor | None,
        image_tokens: Sequence[Tensor],
        image_mask: Sequence[Tensor | None] | None = None,
        attn_layer: int | None = None,
    ) -> FusionOutput:
        """Fuse text ``[B, L, D]`` with two images' tokens ``([B, N0, D_v], [B, N1, D_v])``.

        Args:
            image_mask: None, or one ``[B, N]`` mask (or None) per image.
            attn_layer: block whose cross-attention probabilities are returned.
        """
        if isinstance(image_tokens, Tensor) or len(image_tokens) != 2:
            raise ValueError('BertPairFusion expects a pair (image_tokens_0, image_tokens_1)')
        masks = list(image_mask) if image_mask is not None else [None, None]
        if attn_layer is not None and not -len(self.layer) <= attn_layer < len(self.layer):
            raise IndexError(
                f'attn_layer {attn_layer} is out of range for {len(self.layer)} blocks'
            )
        want = None if attn_layer is None else attn_layer % len(self.layer)
        mask = additive_mask(text_mask, text_hidden.dtype)
        ctx_masks = [additive_mask(m, text_hidden.dtype) for m in masks]
        hidden, probs = text_hidden, None
        for i, layer in enumerate(self.layer):
            j = self.image_index(i)
            hidden, p = layer(
                hidden, mask, image_tokens[j], ctx_masks[j], return_cross_probs=(i == want)
            )
            if i == want:
                probs = p
        return FusionOutput(hidden, probs)
