"""The ALBEF encoders every ALBEF model is built on, with their checkpoint fitting and momentum copies.

Choice: a shared base class, :class:`ALBEFEncoderModel`, that builds the three encoders and registers
them on the model itself (``self.image_backbone``, ``self.text_backbone``, ``self.fusion``), rather than
a helper module holding them. Why: the state-dict keys must stay ``image_backbone.*``,
``text_backbone.*``, ``fusion.*`` and ``*_m.*`` (checkpoints, the ALBEF converters, exports and
paramwise config keys name them); a composed ``encoders`` child would add a prefix, and a helper that
attaches modules to a model would scatter the momentum bookkeeping again. The pretrainer and the task
models inherit it directly or one level down (:class:`~vlreg.models.tasks.ALBEFClassifier` ->
``ALBEFPairClassifier`` / ``ALBEFVQA`` / ``ALBEFTextAssignmentPretrainer``); anything further is composed
(the NLVR2 pair logic is functions in :mod:`vlreg.models.tasks.nlvr2`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from vlreg.registry import BACKBONES, FUSION_HEADS, MODELS, build_from_slot
from vlreg.utils.paths import check_pretrained_path

from .backbones.vit import resize_pos_embed
from .base import VLBaseModel
from .utils.ema import copy_params, ema_update

__all__ = ['ALBEFEncoderModel', 'ENCODER_PREFIXES']

#: the state-dict prefixes of the three encoders (what a fine-tuning model keeps of a pre-training file)
ENCODER_PREFIXES: tuple[str, ...] = ('image_backbone.', 'text_backbone.', 'fusion.')
#: the batch keys every ALBEF model reads
INPUT_KEYS: tuple[str, ...] = ('image', 'input_ids', 'attention_mask')


class ALBEFEncoderModel(VLBaseModel):
    """Image encoder (``BACKBONES``), text encoder (``BACKBONES``) and fusion encoder
    (``FUSION_HEADS``), built from the config slots ``image_backbone`` / ``text_backbone`` /
    ``fusion``, plus what every ALBEF model does with them:

    * the batch check (:meth:`check_inputs`: a missing key is named, with the keys the batch has);
    * ``pretrained=`` checked at build time: a missing file raises ``FileNotFoundError`` naming
      ``model.pretrained`` and the path, before any training;
    * checkpoint fitting (:meth:`fit_state_dict`, run on every load by the model's load hook and by
      the fine-tuning loaders): ViT position embeddings of another resolution are interpolated
      (ALBEF: 256 px pre-training -> 384 px fine-tuning);
    * ONE momentum-copy mechanism (ALBEF's EMA encoders): a subclass declares its
      ``(online, copy)`` pairs to :meth:`add_momentum_copies` (deep copies, frozen, equal to the
      online weights); :meth:`momentum_update` is the EMA step, :meth:`restart_momentum` copies the
      online weights again (after a checkpoint without momentum copies is loaded).

    Args:
        image_backbone, text_backbone: ``BACKBONES`` configs.
        fusion: a ``FUSION_HEADS`` config.
        pretrained: a local checkpoint a subclass loads in ``init_weights``; checked here.
        data_preprocessor: defaults to ``VLDataPreprocessor``.
    """

    #: the ``(online, momentum copy)`` attribute names; set by :meth:`add_momentum_copies`
    momentum_pairs: tuple[tuple[str, str], ...] = ()
    #: EMA coefficient of the momentum copies (None: no copies)
    momentum: float | None = None

    def __init__(
        self,
        image_backbone: dict,
        text_backbone: dict,
        fusion: dict,
        pretrained: str | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        check_pretrained_path(pretrained, 'model.pretrained')
        if data_preprocessor is None:
            data_preprocessor = dict(type='VLDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # through vlreg's scope, also outside a Runner
            data_preprocessor = build_from_slot(MODELS, data_preprocessor, 'data_preprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.image_backbone = build_from_slot(BACKBONES, image_backbone, 'image_backbone')
        self.text_backbone = build_from_slot(BACKBONES, text_backbone, 'text_backbone')
        self.fusion = build_from_slot(FUSION_HEADS, fusion, 'fusion')
        self.pretrained = pretrained

    # -- inputs -------------------------------------------------------------------------------------
    @staticmethod
    def check_inputs(
        inputs: dict[str, Tensor], keys: Iterable[str] = INPUT_KEYS, hint: str = ''
    ) -> None:
        """Raise ``KeyError`` naming the first of ``keys`` the batch lacks (and the keys it has)."""
        for key in keys:
            if key not in inputs:
                raise KeyError(f'the batch has no {key!r}; got {sorted(inputs)}{hint}')

    # -- momentum copies ---------------------------------------------------------------------------
    def add_momentum_copies(self, pairs: Sequence[tuple[str, str]], momentum: float) -> None:
        """Register a frozen deep copy ``copy`` of each module ``online`` (None stays None).

        The copies' own ``pretrained`` is cleared (they are filled from the online weights, not read
        twice); :meth:`tie_weights` re-ties shared weights before the copies are synchronised.
        """
        for online, shadow in pairs:
            module = getattr(self, online)
            twin = copy.deepcopy(module) if module is not None else None
            if twin is not None and hasattr(twin, 'pretrained'):
                twin.pretrained = None
            setattr(self, shadow, twin)
        self.momentum_pairs = tuple((a, b) for a, b in pairs)
        self.momentum = momentum
        self.tie_weights()
        self.restart_momentum()

    def tie_weights(self) -> None:
        """Re-tie weights a module shares with another (a subclass's hook; nothing by default)."""

    @property
    def has_momentum(self) -> bool:
        return bool(self.momentum_pairs)

    def _momentum_modules(self) -> tuple[list[nn.Module], list[nn.Module]]:
        """The online modules and their copies, in :attr:`momentum_pairs` order (absent parts left out)."""
        pairs = [
            (getattr(self, a), getattr(self, b))
            for a, b in self.momentum_pairs
            if getattr(self, a) is not None
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def restart_momentum(self, missing_keys: Iterable[str] | None = None) -> bool:
        """Copy the online weights into the momentum copies: always, or, given the missing keys of a
        load, only when a momentum copy's key is among them. Returns whether it copied."""
        if not self.has_momentum:
            return False
        if missing_keys is not None:
            shadows = tuple(f'{b}.' for _, b in self.momentum_pairs)
            if not any(k.startswith(shadows) for k in missing_keys):
                return False
        copy_params(*self._momentum_modules())
        return True

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``p_m <- momentum * p_m + (1 - momentum) * p`` for every declared pair."""
        ema_update(*self._momentum_modules(), self.momentum)

    def part(self, name: str, momentum: bool = False) -> nn.Module:
        """The online part ``name`` or, with ``momentum``, its EMA copy."""
        if momentum and not self.has_momentum:
            raise RuntimeError(f'{type(self).__name__} has no momentum copies')
        return getattr(self, f'{name}_m' if momentum else name)

    # -- checkpoints -------------------------------------------------------------------------------
    def fit_state_dict(self, state: dict[str, Tensor], prefix: str = '') -> None:
        """Adapt an incoming state dict in place to this model's sizes (before loading it):
        ``*pos_embed`` of the image encoders (and their momentum copies) is interpolated bicubically
        to this model's patch grid, and logged."""
        for key, mine in self.state_dict(keep_vars=True).items():
            full = prefix + key
            theirs = state.get(full)
            if theirs is None or theirs.shape == mine.shape:
                continue
            if key.startswith(('image_backbone.', 'image_backbone_m.')) and key.endswith(
                'pos_embed'
            ):
                state[full] = resize_pos_embed(theirs, mine.shape[1] - 1)
                print_log(
                    f'{full}: position embedding {tuple(theirs.shape)} interpolated to '
                    f'{tuple(mine.shape)}',
                    logger='current',
                )

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # runs before the children load theirs (torch and MMEngine recurse after this call)
        self.fit_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
