"""ALBEF fine-tuned as a classifier over the fused [CLS] token (SNLI-VE; the base of NLVR2)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from vlreg.registry import BACKBONES, FUSION_HEADS, HEADS, MODELS, build_from_slot

from ..backbones.vit import resize_pos_embed
from ..base import VLBaseModel
from ..utils.checkpoint import load_into, load_state_dict_file

__all__ = ['ALBEFClassifier', 'labels_from_samples']

#: parts of a vlreg / ALBEF checkpoint that a classifier keeps (everything else is pre-training
#: only: momentum copies ``*_m``, projections, ITM / MLM heads, queues, temperature)
ENCODER_PREFIXES = ('image_backbone.', 'text_backbone.', 'fusion.')


def labels_from_samples(data_samples: list | None, device: torch.device) -> Tensor:
    """The ``label`` metainfo of each data sample as an int64 tensor."""
    if not data_samples:
        raise ValueError('classification needs data samples carrying a "label"')
    labels = []
    for i, sample in enumerate(data_samples):
        label = sample.get('label') if hasattr(sample, 'get') else None
        if label is None:
            raise KeyError(f'data sample {i} has no "label" (add it to PackInputs meta_keys)')
        labels.append(int(label))
    return torch.tensor(labels, dtype=torch.long, device=device)


@MODELS.register_module()
class ALBEFClassifier(VLBaseModel):
    """Image encoder + text encoder + fusion encoder + a classification head on the fused [CLS].

    The encoders are built exactly as :class:`~vlreg.models.ALBEFPretrainer` builds them and carry
    the same names (``image_backbone.*``, ``text_backbone.*``, ``fusion.*``), so a vlreg
    pre-training checkpoint loads by name, either with
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (MMEngine, same resolution only,
    non-strict: pre-training-only keys are reported as unexpected) or, preferred, with
    ``pretrained=<path>``, which keeps only the encoder keys, interpolates the ViT position
    embedding to the model's resolution, lets the fusion remap its keys
    (:meth:`convert_pretrained`) and reads the file with ``torch.load(weights_only=True)``.

    ``loss`` returns ``loss_cls`` (cross-entropy on the ``label`` metainfo) and ``acc`` (batch
    accuracy, a diagnostic); ``predict`` sets ``pred_label`` (int64 scalar tensor) and
    ``pred_score`` (softmax probabilities ``[num_classes]``) on each data sample.

    Args:
        image_backbone, text_backbone: ``BACKBONES`` configs.
        fusion: a ``FUSION_HEADS`` config.
        head: a ``HEADS`` config; ``hidden_size`` defaults to the text width.
        num_classes: set on the head config when given (ALBEF: 3 for SNLI-VE, 2 for NLVR2).
        pretrained: a local vlreg / ALBEF checkpoint loaded in ``init_weights`` (after the
            parts' own ``pretrained`` weights, which it overrides).
        data_preprocessor: defaults to ``VLDataPreprocessor``.

    Example:
        >>> dict(type='ALBEFClassifier', image_backbone=..., text_backbone=..., fusion=...,
        ...      head=dict(type='MLPClassifierHead'), num_classes=3, pretrained='albef_4m.pth')
    """

    #: key prefixes read from a pre-training checkpoint by ``pretrained``
    pretrained_prefixes: tuple[str, ...] = ENCODER_PREFIXES

    def __init__(self, image_backbone: dict, text_backbone: dict, fusion: dict,
                 head: dict = dict(type='MLPClassifierHead'), num_classes: int | None = None,
                 pretrained: str | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='VLDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = build_from_slot(MODELS, data_preprocessor, 'data_preprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.image_backbone = build_from_slot(BACKBONES, image_backbone, 'image_backbone')
        self.text_backbone = build_from_slot(BACKBONES, text_backbone, 'text_backbone')
        self.fusion = build_from_slot(FUSION_HEADS, fusion, 'fusion')
        head = dict(head)
        head.setdefault('hidden_size', self.text_backbone.width)
        if num_classes is not None:
            head['num_classes'] = num_classes
        self.head = build_from_slot(HEADS, head, 'head')
        self.pretrained = pretrained

    # -- weights
    # --------------------------------------------------------------------------------------
    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Keep the encoder keys of a pre-training state dict, remapped by the fusion when it
        can."""
        state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
        keep = {k: v for k, v in state.items() if k.startswith(self.pretrained_prefixes)}
        own = self.state_dict()
        for key in [k for k in keep if k.startswith('image_backbone.') and k.endswith('pos_embed')]:
            if key in own and keep[key].shape != own[key].shape:
                # fine-tuning resolution (ALBEF: 384 px) differs from pre-training (256 px)
                keep[key] = resize_pos_embed(keep[key], own[key].shape[1] - 1)
        convert = getattr(self.fusion, 'convert_state', None)
        if convert is not None:
            fusion = {k[len('fusion.'):]: v for k, v in keep.items() if k.startswith('fusion.')}
            keep = {k: v for k, v in keep.items() if not k.startswith('fusion.')}
            keep.update({f'fusion.{k}': v for k, v in convert(fusion).items()})
        return keep

    def load_pretrained(self, path: str) -> tuple[list[str], list[str]]:
        """Load the encoders from a local pre-training checkpoint; returns (missing, unexpected)."""
        state = self.convert_pretrained(load_state_dict_file(path))
        if not state:
            wanted = ' / '.join(p + '*' for p in self.pretrained_prefixes)
            raise KeyError(f'{path}: no {wanted} keys')
        missing, unexpected = load_into(self, state, f'{type(self).__name__} <- {path}',
                                        expect_missing=('head.',))
        print_log(f'{type(self).__name__}: {len(state)} encoder tensors from {path}',
                  logger='current')
        return missing, unexpected

    def init_weights(self) -> None:
        super().init_weights()
        if self.pretrained:
            self.load_pretrained(self.pretrained)

    # -- the forward pieces
    # -------------------------------------------------------------------------
    def fused_cls(self, inputs: dict[str, Tensor]) -> Tensor:
        """Encode the batch and return the fused [CLS] ``[B, D]``."""
        for key in ('image', 'input_ids', 'attention_mask'):
            if key not in inputs:
                raise KeyError(f'the batch has no {key!r}; got {sorted(inputs)}')
        image_tokens = self.image_backbone(inputs['image'])
        text = self.text_backbone(inputs['input_ids'], inputs['attention_mask'])
        return self.fusion(text, inputs['attention_mask'], image_tokens).cls

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        """Class logits ``[B, num_classes]``."""
        return self.head(self.fused_cls(inputs))

    # -- BaseModel
    # ------------------------------------------------------------------------------------
    def tensor(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> Tensor:
        return self.logits(inputs)

    def loss(self, inputs: dict[str, Tensor],
             data_samples: list | None = None) -> dict[str, Tensor]:
        logits = self.logits(inputs)
        labels = labels_from_samples(data_samples, logits.device)
        acc = (logits.detach().argmax(-1) == labels).float().mean() * 100
        return {'loss_cls': F.cross_entropy(logits, labels), 'acc': acc}

    @torch.no_grad()
    def predict(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> list:
        from vlreg.structures import DataSample

        scores = self.logits(inputs).float().softmax(-1)
        samples = data_samples or [DataSample() for _ in range(scores.shape[0])]
        for sample, score in zip(samples, scores):
            sample.set_field(score, 'pred_score')
            sample.set_field(score.argmax(), 'pred_label')
        return samples
