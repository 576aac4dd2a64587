"""ALBEF's NLVR2 text-assignment (TA) pre-training: which image of a pair does the caption
describe?"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlreg.registry import MODELS

from ..encoders import ENCODER_PREFIXES
from .classifier import ALBEFClassifier
from .nlvr2 import pair_fused_cls, require_pair_fusion

__all__ = ['ALBEFTextAssignmentPretrainer', 'text_assignment_pairs']


def text_assignment_pairs(
    similarity: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ALBEF's TA pairs for a batch of image-caption pairs, vectorised.

    Each caption ``b`` gets a label uniformly in {0, 1, 2}: 0 = its image is image 0 of the pair
    (image 1 a negative), 1 = its image is image 1 (image 0 a negative), 2 = neither (two distinct
    negatives). Negatives are drawn from ``softmax(similarity[b])`` with the diagonal zeroed (hard
    negatives, as ALBEF draws them from in-batch image-image similarities).

    Args:
        similarity: ``[B, B]`` image-image similarities (logits), B >= 3.

    Returns:
        (index of image 0 ``[B]``, index of image 1 ``[B]``, label ``[B]``), int64.
    """
    b = similarity.shape[0]
    if b < 3:
        raise ValueError(f'text assignment needs at least 3 images per batch, got {b}')
    weights = similarity.float().softmax(-1)
    weights = weights * (1 - torch.eye(b, device=weights.device))
    # a tiny floor off the diagonal keeps rows whose softmax underflowed drawable
    weights = weights + 1e-12 * (1 - torch.eye(b, device=weights.device))
    neg = torch.multinomial(weights, 2, replacement=False, generator=generator)
    label = torch.randint(0, 3, (b,), device=similarity.device, generator=generator)
    own = torch.arange(b, device=similarity.device)
    first = torch.where(label == 0, own, neg[:, 0])
    second = torch.where(label == 1, own, neg[:, 1])
    return first, second, label


@MODELS.register_module()
class ALBEFTextAssignmentPretrainer(ALBEFClassifier):
    """NLVR2's intermediate pre-training (ALBEF, 1 epoch on the pre-training captions): 3-way
    classification of a caption against an image pair built from the batch.

    Reads ordinary image-caption batches (``image``, ``input_ids``); the pair and the label come
    from :func:`text_assignment_pairs`, with hard negatives drawn by the similarity of the images'
    projected [CLS] (``vision_proj``, loaded with the encoders from the pre-training checkpoint).
    The head (ALBEF: ``Linear(768, 3)``, ``MLPClassifierHead`` with ``mlp_hidden=0``) is dropped
    when fine-tuning: :class:`ALBEFPairClassifier` reads only the encoders of the checkpoint this
    writes. It composes the NLVR2 pair functions of :mod:`.nlvr2` (pair fusion required;
    ``tensor`` / ``predict`` read a real pair ``image`` + ``second_image_key``, as
    :class:`~.nlvr2.ALBEFPairClassifier`) rather than inheriting from that class.

    Args:
        embed_dim: width of ``vision_proj``.
        second_image_key: the batch key of image 1 in ``tensor`` / ``predict`` mode.
        **kwargs: :class:`ALBEFClassifier`'s arguments (``num_classes`` is 3; ``distill``
            defaults to False here: the TA loss is plain cross-entropy).

    Example:
        see ``configs/tasks/nlvr2/albef_vit-b16-bert-base_8xb64_4m-ta-1e.py``.
    """

    pretrained_prefixes = ENCODER_PREFIXES + ('vision_proj.',)

    def __init__(
        self, *args: Any, embed_dim: int = 256, second_image_key: str = 'image_2', **kwargs: Any
    ) -> None:
        kwargs['num_classes'] = 3
        if kwargs.setdefault('distill', False):
            raise ValueError(
                'text-assignment pre-training has no momentum distillation (ALBEF): '
                'set distill=False'
            )
        super().__init__(*args, **kwargs)
        self.second_image_key = second_image_key
        require_pair_fusion(self.fusion, 'ALBEFTextAssignmentPretrainer')
        self.vision_proj = nn.Linear(self.image_backbone.width, embed_dim)

    def fused_cls(self, inputs: dict[str, Tensor], momentum: bool = False) -> Tensor:
        return pair_fused_cls(self, inputs, self.second_image_key, momentum)

    def loss(
        self, inputs: dict[str, Tensor], data_samples: list | None = None
    ) -> dict[str, Tensor]:
        self.check_inputs(inputs)
        tokens = self.image_backbone(inputs['image'])
        with torch.no_grad():
            feat = F.normalize(self.vision_proj(tokens[:, 0]), dim=-1)
            first, second, label = text_assignment_pairs(feat @ feat.t() / 0.07)
        text = self.text_backbone(inputs['input_ids'], inputs['attention_mask'])
        cls = self.fusion(text, inputs['attention_mask'], (tokens[first], tokens[second])).cls
        logits = self.head(cls)
        acc = (logits.detach().argmax(-1) == label).float().mean() * 100
        return {'loss_ta': F.cross_entropy(logits, label), 'ta_acc': acc}
