"""ALBEF for NLVR2: one statement about an image pair, fused with :class:`BertPairFusion`.

The pair logic is functions (:func:`require_pair_fusion`, :func:`encode_pair`,
:func:`pair_fused_cls`) so that the text-assignment model composes it instead of inheriting from
:class:`ALBEFPairClassifier` (the hierarchy stays at most two levels below
:class:`~vlreg.models.encoders.ALBEFEncoderModel`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vlreg.registry import MODELS

from .classifier import ALBEFClassifier

__all__ = ['ALBEFPairClassifier', 'encode_pair', 'pair_fused_cls', 'require_pair_fusion']


def require_pair_fusion(fusion: nn.Module, model: str) -> None:
    """Raise ``TypeError`` unless ``fusion`` takes a pair of image token sets (``BertPairFusion``)."""
    if not hasattr(fusion, 'convert_single_state'):
        raise TypeError(
            f'{model} needs a pair fusion (e.g. BertPairFusion), got {type(fusion).__name__}'
        )


def encode_pair(image_encoder: nn.Module, image0: Tensor, image1: Tensor) -> tuple[Tensor, Tensor]:
    """Token sets of both images from one encoder pass (concatenated along the batch, then split)."""
    if image0.shape != image1.shape:
        raise ValueError(
            f'the two images differ in shape: {tuple(image0.shape)} vs {tuple(image1.shape)}'
        )
    tokens = image_encoder(torch.cat([image0, image1], dim=0))
    return tokens[: image0.shape[0]], tokens[image0.shape[0] :]


def pair_fused_cls(
    model: ALBEFClassifier, inputs: dict[str, Tensor], second_image_key: str, momentum: bool = False
) -> Tensor:
    """The fused [CLS] ``[B, D]`` of the statement with the image pair (``image``,
    ``second_image_key``), from the momentum parts with ``momentum``."""
    model.check_inputs(
        inputs,
        ('image', second_image_key, 'input_ids', 'attention_mask'),
        hint=' (NLVR2 needs LoadImagePair)',
    )
    pair = encode_pair(
        model.part('image_backbone', momentum), inputs['image'], inputs[second_image_key]
    )
    text = model.part('text_backbone', momentum)(inputs['input_ids'], inputs['attention_mask'])
    return model.part('fusion', momentum)(text, inputs['attention_mask'], pair).cls


@MODELS.register_module()
class ALBEFPairClassifier(ALBEFClassifier):
    """NLVR2 classifier: both images through one image encoder, fusion alternating between them.

    The batch holds ``image`` (left / image 0) and ``image_2`` (right / image 1), as
    ``LoadImagePair`` + ``PackInputs`` produce them. As in ALBEF's ``model_nlvr.py`` the two images
    share one encoder pass (concatenated along the batch, then split), and the fusion must take a
    pair of token sets (``BertPairFusion``). A single-image pre-training checkpoint loads through
    ``pretrained``: its ``fusion.layer.i.*`` fill blocks ``2i`` and ``2i+1``
    (``BertPairFusion.convert_single_state``).

    Args:
        second_image_key: the batch key of image 1.
        **kwargs: :class:`ALBEFClassifier`'s arguments (``num_classes=2`` for NLVR2).

    Example:
        >>> dict(type='ALBEFPairClassifier', image_backbone=..., text_backbone=...,
        ...      fusion=dict(type='BertPairFusion', ...), head=dict(type='MLPClassifierHead'),
        ...      num_classes=2)
    """

    def __init__(self, *args: Any, second_image_key: str = 'image_2', **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.second_image_key = second_image_key
        require_pair_fusion(self.fusion, 'ALBEFPairClassifier')

    def encode_pair(
        self, image0: Tensor, image1: Tensor, momentum: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Token sets of both images from one encoder pass (the momentum encoder's with
        ``momentum``)."""
        return encode_pair(self.part('image_backbone', momentum), image0, image1)

    def fused_cls(self, inputs: dict[str, Tensor], momentum: bool = False) -> Tensor:
        return pair_fused_cls(self, inputs, self.second_image_key, momentum)
