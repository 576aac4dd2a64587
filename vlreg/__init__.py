"""vlreg: vision-language pre-training with text-driven soft masks, on MMEngine registries.

Call :func:`setup_env` once per process before training or loading checkpoints (the tools, the API and
the tests do); importing only applies the torchvision op shim that importing timm needs on this stack.
"""

from __future__ import annotations

from .utils.compat import patch_torchvision_ops as _patch_torchvision_ops
from .utils.compat import setup_env

_patch_torchvision_ops()

__all__ = ['setup_env']
__version__ = '0.1.0'
