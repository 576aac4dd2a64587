"""Exponential moving average of parameters (ALBEF's momentum encoders)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _unique_params(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """Parameters of all modules, each once (a tied weight, e.g. the MLM decoder, is counted once)."""
    seen: set[int] = set()
    out = []
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


@torch.no_grad()
def copy_params(online: Sequence[nn.Module], momentum: Sequence[nn.Module]) -> None:
    """Make the ``momentum`` modules exact, frozen copies of the ``online`` ones."""
    for p, p_m in zip(_unique_params(online), _unique_params(momentum), strict=True):
        p_m.copy_(p)
        p_m.requires_grad_(False)


@torch.no_grad()
def ema_update(online: Sequence[nn.Module], momentum: Sequence[nn.Module], m: float) -> None:
    """``p_m <- m * p_m + (1 - m) * p`` for every parameter pair (fused foreach calls)."""
    online_p = [p.detach() for p in _unique_params(online)]
    momentum_p = _unique_params(momentum)
    if len(online_p) != len(momentum_p):
        raise RuntimeError('online and momentum modules have different parameter lists')
    torch._foreach_mul_(momentum_p, m)
    torch._foreach_add_(momentum_p, online_p, alpha=1.0 - m)
