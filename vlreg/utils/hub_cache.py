"""Model names (``'bert-base-uncased'``, ``'timm/vit_base_patch16_224.augreg_in21k'``) resolved in
the local Hugging Face cache, offline, the way transformers / huggingface_hub lay it out.

``<cache>/models--<org>--<name>/snapshots/<revision>/`` holds the files; ``refs/main`` names the
revision. ``<cache>`` is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``. A timm model name without
an organisation is looked up as ``timm/<name>`` too (timm publishes its weights there). Nothing is
downloaded; a name that is not in the cache raises an error saying which files to put where.
"""

from __future__ import annotations

import os
import re

_NAME = re.compile(r'^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$')
_FILE_SUFFIXES = ('.pth', '.pt', '.bin', '.safetensors', '.json', '.txt', '.ckpt', '.npz')
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin', 'open_clip_pytorch_model.bin')


def hub_cache_dir() -> str:
    """The Hugging Face hub cache folder, from the same variables huggingface_hub reads."""
    if os.environ.get('HF_HUB_CACHE'):
        return os.path.expanduser(os.environ['HF_HUB_CACHE'])
    if os.environ.get('HF_HOME'):
        return os.path.join(os.path.expanduser(os.environ['HF_HOME']), 'hub')
    xdg = os.environ.get('XDG_CACHE_HOME', os.path.join(os.path.expanduser('~'), '.cache'))
    return os.path.join(xdg, 'huggingface', 'hub')


def looks_like_model_name(path: str) -> bool:
    """``name`` or ``org/name`` without a file suffix, and no such local path."""
    return (
        bool(_NAME.match(path))
        and not path.lower().endswith(_FILE_SUFFIXES)
        and not os.path.exists(path)
    )


def _candidates(name: str) -> list[str]:
    return [name] if '/' in name else [name, f'timm/{name}']


def _snapshot(repo_dir: str) -> str | None:
    snapshots = os.path.join(repo_dir, 'snapshots')
    ref = os.path.join(repo_dir, 'refs', 'main')
    if os.path.isfile(ref):
        with open(ref) as f:
            rev = f.read().strip()
        if os.path.isdir(os.path.join(snapshots, rev)):
            return os.path.join(snapshots, rev)
    if not os.path.isdir(snapshots):
        return None
    revs = sorted(os.listdir(snapshots), key=lambda r: os.path.getmtime(os.path.join(snapshots, r)))
    return os.path.join(snapshots, revs[-1]) if revs else None


def resolve_model_name(name: str) -> str:
    """The cached snapshot folder of ``name``; ``FileNotFoundError`` with instructions if absent."""
    cache = hub_cache_dir()
    for repo in _candidates(name):
        folder = _snapshot(os.path.join(cache, 'models--' + repo.replace('/', '--')))
        if folder is not None:
            return folder
    repo = _candidates(name)[-1] if name.startswith(('vit_', 'deit', 'efficientnet')) else name
    where = os.path.join(cache, 'models--' + repo.replace('/', '--'), 'snapshots', 'main')
    raise FileNotFoundError(
        f'{name!r} is neither a local path nor in the Hugging Face cache ({cache}), and nothing is '
        f'downloaded. Put its files ({" or ".join(WEIGHT_FILES[:2])}, plus config.json and '
        f'vocab.txt for a BERT) in {where}/ (or run `huggingface-cli download {repo}` on a '
        'machine with network and copy the cache), or pass the path of a folder or file.'
    )
