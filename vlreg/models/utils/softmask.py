"""Text-driven soft masks (Park & Han, CVPR 2023): from a word's Grad-CAM to a per-patch mask.

Shared by the soft-masked ITM loss, the visualisation tool / hook and the pointing evaluation.
With ``G`` the word-level Grad-CAM of one fusion layer (see :mod:`vlreg.models.utils.gradcam`)::

    g     = G[b, word]                                   [N]  one row (or the mean of the rows
                                                              of a word's wordpieces)
    g_hat = (g - min g) / (max g - min g)                in [0, 1], per sample, detached
    m     = clamp(1 - strength * g_hat ** sharpness, floor, 1)    the soft mask
    image_tokens_sm[b, 1:] = image_tokens[b, 1:] * m[:, None]      ([CLS] kept)

``strength = sharpness = 1`` and ``floor = 0`` give the paper's ``m = 1 - g_hat``: the patches the
word attends to most are damped the most (to 0 at the peak), the others are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'apply_soft_mask',
    'content_words',
    'minmax_normalise',
    'resolve_fusion_layer',
    'soft_mask_from_cam',
    'upsample_map',
    'word_rows_mean',
]

# tokens never offered as "the word": the special tokens of BERT and of the synthetic tokenizer
SPECIAL_TOKENS = frozenset({'[CLS]', '[SEP]', '[PAD]', '[MASK]', '[UNK]'})
_PUNCT = re.compile(r'^[\W_]+$')


def minmax_normalise(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Min-max normalise along the last dimension: ``(x - min) / (max - min)`` in ``[0, 1]``.

    A row whose range is at most ``eps`` times its largest magnitude (a constant map up to rounding,
    e.g. an all-zero Grad-CAM) becomes all zeros, never NaN. The threshold is relative, so a map of
    tiny values (a small ITM logit gives Grad-CAM values of 1e-13) is normalised like any other.
    NaN entries of ``x`` are treated as 0.

    Args:
        x: ``[..., N]``.
        eps: smallest range, relative to the row's largest magnitude, that is normalised.

    Returns:
        ``[..., N]``, same dtype as ``x``.
    """
    x = torch.nan_to_num(x, nan=0.0)
    lo = x.amin(dim=-1, keepdim=True)
    span = x.amax(dim=-1, keepdim=True) - lo
    valid = span > eps * x.abs().amax(dim=-1, keepdim=True)
    out = (x - lo) / torch.where(valid, span, torch.ones_like(span))
    return torch.where(valid, out, torch.zeros_like(out)).clamp_(0.0, 1.0)


def soft_mask_from_cam(
    cam_word: Tensor, floor: float = 0.0, sharpness: float = 1.0, strength: float = 1.0
) -> Tensor:
    """The soft mask of one word per sample from its Grad-CAM row.

    ``g_hat = minmax_normalise(cam_word)`` (per sample, over the patches; a constant map gives
    ``g_hat = 0``), then ``m = clamp(1 - strength * g_hat ** sharpness, floor, 1)``. The mask is
    non-increasing in the map: the patch with the largest Grad-CAM gets the smallest value,
    ``max(floor, 1 - strength)``, the smallest Grad-CAM keeps 1. ``sharpness > 1`` damps only the
    strongest patches, ``< 1`` spreads the damping. No gradient flows through the mask (the input
    is detached), as in the paper.

    Args:
        cam_word: ``[B, N]`` Grad-CAM of the chosen word over the ``N`` image patches (any leading
            shape works; the last dimension is normalised).
        floor: lower bound of the mask, in ``[0, 1]``.
        sharpness: exponent ``p > 0`` of ``g_hat``.
        strength: scale ``s >= 0`` of the damping (1 = the peak is removed entirely).

    Returns:
        ``[B, N]`` mask in ``[floor, 1]``, same dtype as ``cam_word``.

    Example:
        >>> soft_mask_from_cam(torch.tensor([[0.0, 1.0, 3.0]]))
        tensor([[1.0000, 0.6667, 0.0000]])
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f'floor must be in [0, 1], got {floor}')
    if sharpness <= 0:
        raise ValueError(f'sharpness must be > 0, got {sharpness}')
    if strength < 0:
        raise ValueError(f'strength must be >= 0, got {strength}')
    g_hat = minmax_normalise(cam_word.detach())
    if sharpness != 1.0:
        g_hat = g_hat.pow(sharpness)
    return (1.0 - strength * g_hat).clamp(min=floor, max=1.0)


def apply_soft_mask(image_tokens: Tensor, mask: Tensor) -> Tensor:
    """Multiply the patch tokens ``[B, 1 + N, D]`` by the mask ``[B, N]``; [CLS] is kept."""
    if mask.shape != image_tokens.shape[:1] + (image_tokens.shape[1] - 1,):
        raise ValueError(
            f'mask {list(mask.shape)} does not fit image tokens '
            f'{list(image_tokens.shape)} ([B, 1 + N, D] -> [B, N])'
        )
    scale = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1).to(image_tokens.dtype)
    return image_tokens * scale[..., None]


def upsample_map(map_: Tensor, size: int | Sequence[int], mode: str = 'bilinear') -> Tensor:
    """Resize patch-grid maps ``[B, gh, gw]`` (or one ``[gh, gw]``) to ``size`` = ``(H, W)``.

    For drawing. Bilinear with ``align_corners=False``: each patch value sits at its patch centre;
    ``mode='nearest'`` shows the patch blocks as the fusion encoder sees them.

    Returns:
        ``[B, H, W]`` (``[H, W]`` for a 2-D input), float.
    """
    squeeze = map_.dim() == 2
    if squeeze:
        map_ = map_[None]
    if map_.dim() != 3:
        raise ValueError(f'upsample_map expects [B, gh, gw] or [gh, gw], got {list(map_.shape)}')
    size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    kwargs = {} if mode == 'nearest' else {'align_corners': False}
    out = F.interpolate(map_[:, None].float(), size=size, mode=mode, **kwargs)[:, 0]
    return out[0] if squeeze else out


def content_words(
    tokens: Sequence[str], skip: frozenset[str] | set[str] = SPECIAL_TOKENS
) -> list[tuple[str, list[int]]]:
    """Group tokens into words, skipping specials and punctuation; ``##`` pieces join their word.

    Args:
        tokens: the tokens of one caption, position 0 usually ``[CLS]``.
        skip: tokens that are never words.

    Returns:
        ``[(word, [token positions])]`` in caption order, e.g. ``tokens = ['[CLS]', 'a', 'sky',
        '##scraper', '.', '[PAD]']`` -> ``[('a', [1]), ('skyscraper', [2, 3])]``.
    """
    words: list[tuple[str, list[int]]] = []
    prev_content = False
    for pos, tok in enumerate(tokens):
        if tok in skip or _PUNCT.match(tok):
            prev_content = False
            continue
        if tok.startswith('##') and prev_content and words:
            text, rows = words[-1]
            words[-1] = (text + tok[2:], rows + [pos])
        else:
            words.append((tok[2:] if tok.startswith('##') else tok, [pos]))
        prev_content = True
    return words


def word_rows_mean(cam: Tensor, rows: Sequence[Sequence[int]]) -> Tensor:
    """Average the token rows of each word: ``cam [L, ...]`` and ``W`` row lists -> ``[W, ...]``."""
    if not rows:
        return cam.new_zeros((0, *cam.shape[1:]))
    return torch.stack([cam[list(r)].mean(dim=0) for r in rows])


def resolve_fusion_layer(layer: int, num_layers: int) -> tuple[int, str | None]:
    """The fusion layer to explain: ``layer`` when it exists, else the deepest one with word maps.

    ALBEF explains the third fusion layer (``layer=2``); a 2-layer demo fusion has none. The last
    fusion layer is no substitute: the ITM head reads only the [CLS] output, and in the last layer
    the cross-attention of token ``l`` reaches only token ``l``'s output, so every word row of its
    Grad-CAM is exactly zero. The fallback is therefore layer ``num_layers - 2`` (0 for a 1-layer
    fusion, whose word maps are zero too, which the message says).

    Returns:
        ``(layer index, a warning message or None)``; a message also comes when ``layer`` is the
        last layer.
    """
    if num_layers < 1:
        raise ValueError('the fusion encoder has no layer')
    zero_rows = (
        " its word rows are zero (the ITM head reads only [CLS], which the last layer's "
        'cross-attention of the other tokens does not reach)'
    )
    if -num_layers <= layer < num_layers:
        if layer % num_layers == num_layers - 1:
            return layer, f'fusion layer {layer} is the last of {num_layers}:{zero_rows}'
        return layer, None
    fallback = max(num_layers - 2, 0)
    message = (
        f'fusion layer {layer} does not exist ({num_layers} fusion layers); using layer {fallback}'
    )
    message += (
        f', the only one:{zero_rows}' if num_layers == 1 else ', the deepest one before the last'
    )
    return fallback, message
