"""A custom image backbone: a small Vision Transformer with a convolutional stem."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from vlreg.registry import BACKBONES


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f'img_size must be an int or (height, width), got {size!r}')
    return int(size[0]), int(size[1])


@BACKBONES.register_module()
class ConvStemViTBackbone(BaseModule):
    """A ViT whose patch embedding is a stack of stride-2 3x3 convolutions (Xiao et al., 2021).

    Same interface as ``TimmViTBackbone``, so it can stand in ALBEF's ``image_backbone`` slot:
    ``forward(image [B, 3, H, W]) -> tokens [B, 1 + N, D]`` (``[CLS]`` first, after the final
    LayerNorm) and the properties ``width`` (``D``), ``num_patches`` (``N``) and ``grid_size``.

    The stem has ``log2(patch_size)`` stages; stage ``s`` is a 3x3 stride-2 convolution to
    ``stem_width * 2**s`` channels, GroupNorm and GELU (no BatchNorm: the output does not depend
    on the batch, which matters for the momentum copy and for evaluation in small batches). A 1x1
    convolution maps to ``embed_dim``; then a learned ``[CLS]`` token and position embedding, and
    ``depth`` pre-norm Transformer layers.

    Args:
        img_size: input resolution (an int for square images, or ``(height, width)``); both
            sides must be multiples of ``patch_size``.
        patch_size: total stride of the stem, a power of two (>= 2).
        embed_dim: token width ``D``; must equal the fusion encoder's ``encoder_width``.
        depth: number of Transformer layers.
        num_heads: attention heads (must divide ``embed_dim``).
        mlp_ratio: FFN width as a multiple of ``embed_dim``.
        stem_width: channels of the first stem stage (doubled at each further stage).
        dropout: dropout inside the Transformer layers.
        init_cfg: MMEngine initialisation config.

    Example:
        >>> dict(type='ConvStemViTBackbone', img_size=96, patch_size=16, embed_dim=128, depth=2,
        ...      num_heads=4)
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        stem_width: int = 24,
        dropout: float = 0.0,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f'patch_size must be a power of two >= 2, got {patch_size}')
        self.img_size = _pair(img_size)
        if any(side % patch_size for side in self.img_size):
            raise ValueError(
                f'img_size {self.img_size} is not a multiple of patch_size {patch_size}'
            )
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim {embed_dim} is not divisible by num_heads {num_heads}')
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        stages: list[nn.Module] = []
        channels = 3
        for s in range(int(math.log2(patch_size))):
            out = stem_width * 2**s
            stages += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(1, out),
                nn.GELU(),
            ]
            channels = out
        stages.append(nn.Conv2d(channels, embed_dim, 1))
        self.stem = nn.Sequential(*stages)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, embed_dim))
        layer = nn.TransformerEncoderLayer(
            embed_dim,
            num_heads,
            int(embed_dim * mlp_ratio),
            dropout=dropout,
            activation='gelu',
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def width(self) -> int:
        """Token width ``D``."""
        return self.embed_dim

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid ``(rows, columns)``."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    @property
    def num_patches(self) -> int:
        """Number of patch tokens ``N`` (without ``[CLS]``)."""
        rows, cols = self.grid_size
        return rows * cols

    def forward(self, image: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` at ``img_size`` -> tokens ``[B, 1 + N, D]``, ``[CLS]`` first."""
        if tuple(image.shape[-2:]) != self.img_size:
            raise ValueError(
                f'ConvStemViTBackbone(img_size={self.img_size}) got images of size '
                f'{tuple(image.shape[-2:])}'
            )
        patches = self.stem(image).flatten(2).transpose(1, 2)  # [B, N, D]
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self.pos_embed
        return self.norm(self.blocks(tokens))
