"""ALBEF for NLVR2: one statement about an image pair, fused with :class:`BertPairFusion`."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vlreg.registry import MODELS

from .classifier import ALBEFClassifier

__all__ = ['ALBEFPairClassifier']


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
        if not hasattr(self.fusion, 'convert_single_state'):
            raise TypeError(f'ALBEFPairClassifier needs a pair fusion (e.g. BertPairFusion), got '
                            f'{type(self.fusion).__name__}')

    def encode_pair(self, image0: Tensor, image1: Tensor,
                    momentum: bool = False) -> tuple[Tensor, Tensor]:
        """Token sets of both images from one encoder pass (the momentum encoder's with
        ``momentum``)."""
        if image0.shape != image1.shape:
            raise ValueError(f'the two images differ in shape: {tuple(image0.shape)} vs '
                             f'{tuple(image1.shape)}')
        tokens = self.part('image_backbone', momentum)(torch.cat([image0, image1], dim=0))
        return tokens[: image0.shape[0]], tokens[image0.shape[0]:]

    def fused_cls(self, inputs: dict[str, Tensor], momentum: bool = False) -> Tensor:
        for key in ('image', self.second_image_key, 'input_ids', 'attention_mask'):
            if key not in inputs:
                raise KeyError(f'the batch has no {key!r}; got {sorted(inputs)} (NLVR2 needs '
                               'LoadImagePair)')
        pair = self.encode_pair(inputs['image'], inputs[self.second_image_key], momentum)
        text = self.part('text_backbone', momentum)(inputs['input_ids'], inputs['attention_mask'])
        return self.part('fusion', momentum)(text, inputs['attention_mask'], pair).cls
