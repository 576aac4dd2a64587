"""vlreg: vision-language pre-training with text-driven soft masks, on MMEngine registries."""
from __future__ import annotations

from .utils.compat import setup as _setup

_setup()

__version__ = '0.1.0'
