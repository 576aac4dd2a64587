"""Vision Transformer image encoder built by timm (any timm ViT name), random init or local weights."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from vlreg.registry import BACKBONES
from vlreg.utils.paths import check_pretrained_path

from ..utils.checkpoint import load_into, load_state_dict_file


def resize_pos_embed(pos_embed: Tensor, num_patches: int, num_prefix: int = 1) -> Tensor:
    """Bicubic interpolation of a ViT position embedding to a new (square) patch grid."""
    old = pos_embed.shape[1] - num_prefix
    if old == num_patches:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    s_old, s_new = int(old**0.5), int(num_patches**0.5)
    grid = grid.reshape(1, s_old, s_old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(s_new, s_new), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, s_new * s_new, -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


@BACKBONES.register_module()
class TimmViTBackbone(BaseModule):
    """A timm ``VisionTransformer`` returning all tokens (``[CLS]`` first) after the final LayerNorm.

    Sizes come from the timm model name and may be overridden (``embed_dim``, ``depth``, ``num_heads``,
    ...). ``pretrained`` is a local file (timm / DeiT / ALBEF ``visual_encoder`` names); its position
    embedding is interpolated to ``img_size``. Nothing is fetched from a hub.

    Args:
        model_name: any timm ViT, e.g. ``'vit_base_patch16_224'``.
        img_size: input resolution.
        pretrained: local weights, loaded in ``init_weights``.
        grad_checkpointing: trade compute for memory.
        **overrides: passed to ``timm.create_model`` (``embed_dim``, ``depth``, ``num_heads``,
            ``mlp_ratio``, ``drop_path_rate``, ``patch_size``, ...).

    Example:
        ``dict(type='TimmViTBackbone', model_name='vit_base_patch16_224', img_size=256)``
    """

    def __init__(
        self,
        model_name: str = 'vit_base_patch16_224',
        img_size: int = 224,
        pretrained: str | None = None,
        grad_checkpointing: bool = False,
        **overrides,
    ) -> None:
        super().__init__()
        if not model_name.startswith(('vit_', 'deit')):
            raise ValueError(f'TimmViTBackbone expects a timm ViT name, got {model_name!r}')
        check_pretrained_path(pretrained, 'image_backbone.pretrained')
        self.pretrained = pretrained
        self.vit = timm.create_model(
            model_name,
            pretrained=False,
            num_classes=0,
            global_pool='',
            img_size=img_size,
            **overrides,
        )
        patch = tuple(self.vit.patch_embed.patch_size)
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if any(s % p for s, p in zip(size, patch)):
            raise ValueError(
                f'image_backbone.img_size={img_size} is not divisible by the patch '
                f'size {patch[0]} of {model_name}: allowed sizes are multiples of '
                f'{patch[0]} (e.g. {size[0] // patch[0] * patch[0] or patch[0]} or '
                f'{(size[0] // patch[0] + 1) * patch[0]})'
            )
        if getattr(self.vit, 'cls_token', None) is None:
            raise ValueError(f'{model_name} has no [CLS] token; ALBEF needs one')
        self.vit.set_grad_checkpointing(grad_checkpointing)

    @property
    def width(self) -> int:
        return self.vit.embed_dim

    @property
    def num_patches(self) -> int:
        return self.vit.patch_embed.num_patches

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.vit.patch_embed.grid_size)

    def init_weights(self) -> None:
        if self.pretrained:
            state = load_state_dict_file(self.pretrained)
            if any(k.startswith('visual_encoder.') for k in state):
                state = {
                    k[len('visual_encoder.') :]: v
                    for k, v in state.items()
                    if k.startswith('visual_encoder.')
                }
            if 'pos_embed' in state:
                state['pos_embed'] = resize_pos_embed(state['pos_embed'], self.num_patches)
            state = {k: v for k, v in state.items() if not k.startswith('head')}
            load_into(self.vit, state, f'image backbone <- {self.pretrained}')

    def forward(self, image: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` -> tokens ``[B, 1 + N, D]``."""
        return self.vit.forward_features(image)
