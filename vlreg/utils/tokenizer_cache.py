"""Build tokenizers from ``TOKENIZERS``, one shared instance per distinct config.

Lives below the datasets and the models (it imports only the registry), so a pipeline transform
and a model head that name the same tokenizer config share one vocabulary without the models
importing :mod:`vlreg.datasets`. The tokenizer classes register themselves in
:mod:`vlreg.datasets.tokenizers`, which the registry imports on the first build by name.
"""

from __future__ import annotations

import json
from typing import Any

from vlreg.registry import TOKENIZERS, build_from_slot

__all__ = ['build_tokenizer']

_CACHE: dict[str, Any] = {}


def build_tokenizer(cfg: dict | Any) -> Any:
    """Build a tokenizer from ``TOKENIZERS``, sharing one instance per distinct config.

    Args:
        cfg: a config dict with ``type``; an already-built tokenizer is returned as is.

    Returns:
        The tokenizer; two calls with equal configs return the same object, so several transforms
        share one vocabulary (and load its files once).
    """
    if not isinstance(cfg, dict):
        return cfg
    key = json.dumps(dict(cfg), sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = build_from_slot(TOKENIZERS, dict(cfg), 'tokenizer')
    return _CACHE[key]
