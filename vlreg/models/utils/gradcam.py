"""Word-conditional Grad-CAM on a fusion layer's cross-attention (ALBEF's visualisation recipe).

For a scalar score s (the ITM "match" logit summed over pairs) and the cross-attention probabilities A
``[B, heads, L_text, 1 + N]`` of one fusion layer, the map of text position l over image patch n is
``mean_heads( A * relu(dS/dA) )[:, l, 1 + n]`` (image [CLS] dropped). The same function serves the soft-mask
loss, visualisation and weakly supervised grounding.
"""
from __future__ import annotations

import torch
from torch import Tensor


def gradcam_from_attention(probs: Tensor, grad: Tensor, text_mask: Tensor | None = None,
                           head_reduction: str = 'mean') -> Tensor:
    """Grad-CAM ``[B, L, N]`` from probabilities and their gradient (both ``[B, H, L, 1 + N]``)."""
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


def cross_attention_gradcam(score: Tensor, probs: Tensor, text_mask: Tensor | None = None,
                            head_reduction: str = 'mean', retain_graph: bool = True,
                            create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """Differentiate ``score.sum()`` w.r.t. ``probs`` only (parameter ``.grad`` are never touched).

    Returns:
        (Grad-CAM ``[B, L, N]``, the gradient ``[B, H, L, 1 + N]``).
    """
    (grad,) = torch.autograd.grad(score.sum(), probs, retain_graph=retain_graph,
                                  create_graph=create_graph)
    return gradcam_from_attention(probs, grad, text_mask, head_reduction), grad
