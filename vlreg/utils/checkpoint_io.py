"""Checkpoint files on disk: weights-only reading, atomic writing, finding the newest complete one.

* :func:`safe_load` is the one ``torch.load`` of training checkpoints (``--resume``, ``load_from``,
  ``tools/test.py``; MMEngine's local loader is routed here by :func:`vlreg.setup_env`). It passes
  ``weights_only=True`` explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` cannot switch it off, and it
  names the file and the reason when a file is refused (unsafe pickle, truncated, not a checkpoint).
* :func:`atomic_replace` / :func:`atomic_write_text` publish a file under its final name only once it is
  complete on disk (temporary file in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the folder):
  a process killed while saving leaves the previous file untouched.
* :func:`find_resumable` picks the checkpoint to auto-resume from: the one ``last_checkpoint`` names when
  it loads, else the newest complete ``*.pth`` of the work dir, with a warning.
"""

from __future__ import annotations

import glob
import os
import os.path as osp
import pickle
import warnings
import zipfile
from typing import Any

import torch

TMP_SUFFIX = '.tmp'


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot or must not be loaded; the message names the file and why."""


def safe_load(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with the file and the reason named on failure
    (``.safetensors`` files are read as ``{'state_dict': tensors}``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file needs arbitrary code to unpickle (refused, never run), or it is
            truncated / corrupt / not a torch checkpoint.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.endswith(
        '.safetensors'
    ):  # an export of tools/export.py: tensors only, no pickle at all
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return {'state_dict': load_file(path)}
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f'{path}: not a complete safetensors file: {err}') from err
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f'{path}: refused: unpickling it would need objects outside the weights-only allow-list '
            f'(a checkpoint must not run code when loaded; nothing in it was executed). torch says: '
            f'{err}'
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f'{path}: not a complete torch checkpoint (truncated or corrupt?): {err}'
        ) from err


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform / file system
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: str) -> str:
    """The temporary name ``path`` is written under before :func:`atomic_replace` publishes it."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}{TMP_SUFFIX}')


def atomic_replace(tmp: str, path: str) -> None:
    """Flush ``tmp`` to disk and rename it to ``path`` (atomic on POSIX file systems)."""
    with open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content, never a part."""
    tmp = temp_path(path)
    with open(tmp, 'w') as f:
        f.write(text)
    atomic_replace(tmp, path)


def is_complete(path: str) -> bool:
    """Whether ``path`` loads as a weights-only checkpoint with a ``state_dict``."""
    try:
        checkpoint = safe_load(path)
    except (FileNotFoundError, CheckpointError):
        return False
    return isinstance(checkpoint, dict) and 'state_dict' in checkpoint


def _iteration(path: str) -> tuple[int, float]:
    """Sort key of a checkpoint: the iteration in its meta (-1 if unreadable), then its mtime."""
    try:
        meta = safe_load(path).get('meta', {})
        return int(meta.get('iter', -1)), osp.getmtime(path)
    except (FileNotFoundError, CheckpointError, AttributeError, TypeError, ValueError):
        return -1, osp.getmtime(path)


def find_resumable(work_dir: str) -> str | None:
    """The checkpoint auto-resume continues from, or None when the work dir has no complete one.

    ``last_checkpoint`` wins when the file it names loads; otherwise the complete ``*.pth`` (``best_*``
    excluded) with the highest iteration is returned and a warning names what was skipped.
    """
    named = None
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        if named is not None and is_complete(named):
            return named
    candidates = [
        p
        for p in glob.glob(osp.join(work_dir, '*.pth'))
        if not osp.basename(p).startswith(('best_', '.'))
    ]
    for path in sorted(candidates, key=_iteration, reverse=True):
        if is_complete(path):
            if named is not None:
                warnings.warn(
                    f'auto-resume: {named} (named by {pointer}) is missing or incomplete; '
                    f'resuming from {path}, the newest complete checkpoint',
                    stacklevel=2,
                )
            return path
        warnings.warn(f'auto-resume: skipping {path}: incomplete or unreadable', stacklevel=2)
    return None
