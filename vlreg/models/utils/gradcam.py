"""Word-conditional Grad-CAM on a fusion layer's cross-attention (ALBEF's visualisation recipe).

For a scalar score s (the ITM "match" logit summed over pairs) and the cross-attention probabilities A
``[B, heads, L_text, 1 + N]`` of one fusion layer, the map of text position l over image patch n is
``mean_heads( A * relu(dS/dA) )[:, l, 1 + n]`` (image [CLS] dropped). The same function serves the soft-mask
loss, visualisation and weakly supervised grounding.

Low precision: under fp16 autocast the backward pass from the score to ``A`` runs in fp16, where a
gradient below about 6e-8 is zero, so a small ITM logit gives an all-zero map and a flat mask. The
gradient is therefore taken of ``scale * score`` (``scale`` up to 2**15, backed off as a loss scaler does
when the gradient overflows) and unscaled in fp32; the map is computed in fp32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

# the score's gradient enters the fp16 graph as ``scale`` itself: 2**15 is the largest power of two
# below fp16's maximum (65504); on overflow the scale is divided by 2**4, as many times as needed
_LOW_PRECISION = (torch.float16,)
_INIT_SCALE, _BACKOFF, _MIN_SCALE = 2.0**15, 2.0**-4, 1.0


def gradcam_from_attention(
    probs: Tensor, grad: Tensor, text_mask: Tensor | None = None, head_reduction: str = 'mean'
) -> Tensor:
    """Grad-CAM ``[B, L, N]`` from probabilities and their gradient (both ``[B, H, L, 1 + N]``)."""
    if probs.dtype in _LOW_PRECISION or grad.dtype in _LOW_PRECISION:
        probs, grad = probs.float(), grad.float()
    cam = probs[..., 1:] * grad[..., 1:].clamp(min=0)
    if head_reduction == 'mean':
        cam = cam.mean(dim=1)
    elif head_reduction == 'max':
        cam = cam.amax(dim=1)
    else:
        raise ValueError(f'head_reduction must be "mean" or "max", got {head_reduction!r}')
    if text_mask is not None:
        cam = cam * text_mask[:, :, None].to(cam.dtype)
    return cam


def cross_attention_gradcam(
    score: Tensor,
    probs: Tensor,
    text_mask: Tensor | None = None,
    head_reduction: str = 'mean',
    retain_graph: bool = True,
    create_graph: bool = False,
) -> tuple[Tensor, Tensor]:
    """Differentiate ``score.sum()`` w.r.t. ``probs`` only (parameter ``.grad`` are never touched).

    When ``probs`` or ``score`` is fp16 (autocast), the gradient is that of a scaled score, unscaled
    in fp32 (module docstring), so that it does not underflow; in fp32 / bf16 it is taken as is.

    Returns:
        (Grad-CAM ``[B, L, N]``, the gradient ``[B, H, L, 1 + N]``, fp32 for fp16 inputs).
    """
    # a backward run in the calling thread (CPU) under autocast would recast an fp32 graph to fp16
    with torch.autocast(device_type=probs.device.type, enabled=False):
        if probs.dtype not in _LOW_PRECISION and score.dtype not in _LOW_PRECISION:
            (grad,) = torch.autograd.grad(
                score.sum(), probs, retain_graph=retain_graph, create_graph=create_graph
            )
            return gradcam_from_attention(probs, grad, text_mask, head_reduction), grad
        scale = _INIT_SCALE
        while True:
            last = scale <= _MIN_SCALE
            (grad,) = torch.autograd.grad(
                score.float().sum() * scale,
                probs,
                retain_graph=retain_graph or not last,
                create_graph=create_graph,
            )
            if last or bool(torch.isfinite(grad).all()):
                break
            scale = max(scale * _BACKOFF, _MIN_SCALE)
    grad = grad.float() / scale
    return gradcam_from_attention(probs, grad, text_mask, head_reduction), grad


@contextmanager
def dropout_off(*modules: nn.Module | None) -> Iterator[None]:
    """Put ``modules`` (and their children) in eval mode for the block; restore every flag after."""
    flags = [(m, m.training) for mod in modules if mod is not None for m in mod.modules()]
    try:
        for m, _ in flags:
            m.training = False
        yield
    finally:
        for m, training in flags:
            m.training = training
