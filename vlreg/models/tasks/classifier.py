"""ALBEF fine-tuned as a classifier over the fused [CLS] token (SNLI-VE; the base of NLVR2)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from vlreg.registry import HEADS, MODELS, build_from_slot

from ..encoders import ENCODER_PREFIXES, ALBEFEncoderModel
from ..utils.checkpoint import load_checkpoint_into

__all__ = [
    'ALBEFClassifier',
    'ENCODER_PREFIXES',
    'MOMENTUM_PAIRS',
    'distillation_loss',
    'labels_from_samples',
]

#: the parts that have a momentum (EMA) copy under distillation, and the copies' names
MOMENTUM_PAIRS = (
    ('image_backbone', 'image_backbone_m'),
    ('text_backbone', 'text_backbone_m'),
    ('fusion', 'fusion_m'),
    ('head', 'head_m'),
)


def distillation_loss(
    logits: Tensor, labels: Tensor, teacher: Tensor | None, alpha: float
) -> Tensor:
    """ALBEF's fine-tuning loss: ``(1 - alpha) * CE(logits, labels) + alpha * H(softmax(teacher),
    logits)``, the soft cross-entropy with the momentum model's probabilities (plain CE without a
    teacher or at ``alpha = 0``)."""
    hard = F.cross_entropy(logits, labels)
    if teacher is None or alpha == 0:
        return hard
    soft = -(teacher.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()
    return (1 - alpha) * hard + alpha * soft


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
class ALBEFClassifier(ALBEFEncoderModel):
    """Image encoder + text encoder + fusion encoder + a classification head on the fused [CLS].

    The encoders are :class:`~vlreg.models.encoders.ALBEFEncoderModel`'s, as the pretrainer's, with
    the same names (``image_backbone.*``, ``text_backbone.*``, ``fusion.*``), so a vlreg
    pre-training checkpoint loads by name, either with
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (MMEngine, same resolution only,
    non-strict: pre-training-only keys are reported as unexpected; the ViT position embedding is
    interpolated by the encoders' load hook) or, preferred, with ``pretrained=<path>`` (checked at
    build time), which keeps only the encoder keys (:attr:`pretrained_prefixes`), interpolates the
    ViT position embedding to the model's resolution, lets the fusion remap its keys
    (:meth:`convert_pretrained`) and reads the file with ``torch.load(weights_only=True)``
    (:func:`~vlreg.models.utils.checkpoint.load_checkpoint_into`, strict: only ``head.*`` and
    ``*_m.*`` may be missing).

    ``loss`` returns ``loss_cls`` (cross-entropy on the ``label`` metainfo; with ``distill``,
    ALBEF's :func:`distillation_loss`) and ``acc`` (batch accuracy, a diagnostic); ``predict`` sets
    ``pred_label`` (int64 scalar tensor) and ``pred_score`` (softmax probabilities
    ``[num_classes]``) on each data sample, from the online model.

    Momentum distillation (``distill=True``, ALBEF's ``model_ve.py`` / ``model_nlvr.py`` with their
    configs' ``distill: True``): the model keeps frozen EMA copies ``*_m`` of the encoders and the
    head. Each training step first updates them (``p_m <- m p_m + (1 - m) p``), then runs the
    momentum model on the batch without gradient, and the loss becomes ``(1 - alpha) CE + alpha
    soft-CE(momentum logits)``. ALBEF keeps ``alpha`` at 0.4 for SNLI-VE (``warm_up: False``) and
    ramps it from 0 over the first epoch for NLVR2 (``warm_up: True``; ``AlphaWarmupHook`` in the
    NLVR2 config sets ``model.alpha``). The momentum copies restart from the online weights after
    ``pretrained`` is loaded (ALBEF's fine-tuning loads the checkpoint's momentum encoders into
    them: both are EMA-close to the online encoders at the end of pre-training).

    Args:
        image_backbone, text_backbone: ``BACKBONES`` configs.
        fusion: a ``FUSION_HEADS`` config.
        head: a ``HEADS`` config; ``hidden_size`` defaults to the text width.
        num_classes: set on the head config when given (ALBEF: 3 for SNLI-VE, 2 for NLVR2).
        pretrained: a local vlreg / ALBEF checkpoint loaded in ``init_weights`` (after the
            parts' own ``pretrained`` weights, which it overrides).
        distill: momentum distillation (ALBEF's SNLI-VE / NLVR2 default: True).
        momentum: EMA coefficient of the momentum copies (ALBEF: 0.995).
        alpha: distillation weight (ALBEF: 0.4).
        data_preprocessor: defaults to ``VLDataPreprocessor``.

    Example:
        >>> dict(type='ALBEFClassifier', image_backbone=..., text_backbone=..., fusion=...,
        ...      head=dict(type='MLPClassifierHead'), num_classes=3, pretrained='albef_4m.pth',
        ...      distill=True, momentum=0.995, alpha=0.4)
    """

    #: key prefixes read from a pre-training checkpoint by ``pretrained``
    pretrained_prefixes: tuple[str, ...] = ENCODER_PREFIXES

    def __init__(
        self,
        image_backbone: dict,
        text_backbone: dict,
        fusion: dict,
        head: dict = dict(type='MLPClassifierHead'),
        num_classes: int | None = None,
        pretrained: str | None = None,
        distill: bool = True,
        momentum: float = 0.995,
        alpha: float = 0.4,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(
            image_backbone,
            text_backbone,
            fusion,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
        )
        head = dict(head)
        head.setdefault('hidden_size', self.text_backbone.width)
        if num_classes is not None:
            head['num_classes'] = num_classes
        self.head = build_from_slot(HEADS, head, 'head')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        self.distill = bool(distill)
        self.alpha = float(alpha)
        if self.distill:
            self.add_momentum_copies(MOMENTUM_PAIRS, float(momentum))
        else:
            self.momentum = float(momentum)

    # -- weights
    # --------------------------------------------------------------------------------------
    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The kept keys of a pre-training state dict, fitted to this model: the ViT position
        embedding interpolated (fine-tuning resolution, ALBEF: 384 px, differs from pre-training,
        256 px), the fusion keys remapped by the fusion when it can (``convert_state``)."""
        keep = dict(state)
        self.fit_state_dict(keep)
        convert = getattr(self.fusion, 'convert_state', None)
        if convert is not None:
            fusion = {k[len('fusion.') :]: v for k, v in keep.items() if k.startswith('fusion.')}
            keep = {k: v for k, v in keep.items() if not k.startswith('fusion.')}
            keep.update({f'fusion.{k}': v for k, v in convert(fusion).items()})
        return keep

    def load_pretrained(self, path: str) -> tuple[list[str], list[str]]:
        """Load the encoders from a local pre-training checkpoint; returns (missing, unexpected)."""
        return load_checkpoint_into(
            self,
            path,
            keep=self.pretrained_prefixes,
            convert=self.convert_pretrained,
            expect_missing=('head.', '_m.'),
        )

    def init_weights(self) -> None:
        """Parts' own weights, then ``pretrained``, then the momentum copies from the online model."""
        super().init_weights()
        if self.pretrained:
            self.load_pretrained(self.pretrained)
        self.restart_momentum()

    # -- the forward pieces
    # -------------------------------------------------------------------------
    def fused_cls(self, inputs: dict[str, Tensor], momentum: bool = False) -> Tensor:
        """Encode the batch and return the fused [CLS] ``[B, D]`` (of the momentum model with
        ``momentum``)."""
        self.check_inputs(inputs)
        image_tokens = self.part('image_backbone', momentum)(inputs['image'])
        text = self.part('text_backbone', momentum)(inputs['input_ids'], inputs['attention_mask'])
        return self.part('fusion', momentum)(text, inputs['attention_mask'], image_tokens).cls

    def logits(self, inputs: dict[str, Tensor], momentum: bool = False) -> Tensor:
        """Class logits ``[B, num_classes]`` (of the momentum model with ``momentum``)."""
        return self.part('head', momentum)(self.fused_cls(inputs, momentum))

    # -- BaseModel
    # ------------------------------------------------------------------------------------
    def tensor(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> Tensor:
        return self.logits(inputs)

    def loss(
        self, inputs: dict[str, Tensor], data_samples: list | None = None
    ) -> dict[str, Tensor]:
        if self.distill and self.training:
            self.momentum_update()  # ALBEF: before the momentum forward of the same step
        logits = self.logits(inputs)
        labels = labels_from_samples(data_samples, logits.device)
        teacher = None
        if self.distill and self.alpha > 0:
            with torch.no_grad():
                teacher = self.logits(inputs, momentum=True)
        acc = (logits.detach().argmax(-1) == labels).float().mean() * 100
        return {'loss_cls': distillation_loss(logits, labels, teacher, self.alpha), 'acc': acc}

    @torch.no_grad()
    def predict(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> list:
        from vlreg.structures import DataSample

        scores = self.logits(inputs).float().softmax(-1)
        samples = data_samples or [DataSample() for _ in range(scores.shape[0])]
        for sample, score in zip(samples, scores):
            sample.set_field(score, 'pred_score')
            sample.set_field(score.argmax(), 'pred_label')
        return samples
