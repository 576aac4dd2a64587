"""``setup_env()``: the fixes for the pinned stack, applied explicitly by the tools, the API and the tests.

Facts behind each fix are in ``../shared/docs/ENVIRONMENT.md`` (measured on this project's machines):

* torchvision 0.28.0 from the registry is a CUDA build; next to the CPU torch 2.13.0 wheel its compiled ops do
  not load and ``import torchvision`` fails on ``torchvision::nms``. That failure also breaks ``import timm``
  and MMEngine's environment report. We load the compiled library when it matches and otherwise declare the
  two op schemas torchvision registers at import, so the pure-Python parts work. Where the build matches (a
  GPU machine with matching wheels) this is a no-op.
* albumentations asks the internet for a newer release at import: switched off.
* torch.load defaults to ``weights_only=True``; MMEngine checkpoints hold a few harmless globals. We allow-list
  exactly those (never switch weights-only off: a checkpoint must not be able to run code). MMEngine's
  ``HistoryBuffer`` also pickles its statistics functions through ``getattr``, which no safe loader may allow;
  they are class-level registrations re-made at import, so we leave them out of the pickled state.
* MMEngine's local checkpoint loader calls ``torch.load`` without ``weights_only``, so
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the environment would make it unpickle arbitrary code. Local
  paths are routed through :func:`vlreg.utils.checkpoint_io.safe_load` (``weights_only=True``, explicitly).

Only the torchvision op shim runs when ``vlreg`` is imported (without it nothing that imports timm can be
imported on this stack; it is a no-op where torchvision's ops load). Everything else happens in
:func:`setup_env`, which is idempotent.
"""

from __future__ import annotations

import os

_PATCHED = False


def patch_torchvision_ops() -> None:
    """Make ``import torchvision`` work even when its compiled ops do not match the installed torch."""
    import importlib.util

    import torch

    spec = importlib.util.find_spec('torchvision')
    if spec is None or spec.origin is None:
        return
    if hasattr(torch.ops, 'torchvision') and _has_op('nms'):
        return
    so_dir = os.path.dirname(spec.origin)
    for name in os.listdir(so_dir):
        if name.startswith('_C') and name.endswith(('.so', '.pyd')):
            try:
                torch.ops.load_library(os.path.join(so_dir, name))
                if _has_op('nms'):
                    return
            except (OSError, RuntimeError):
                pass
    lib = torch.library.Library('torchvision', 'FRAGMENT')  # noqa: F841 - kept alive below
    for op in ('nms', 'qnms'):
        if not _has_op(op):
            lib.define(f'{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    globals()['_TV_LIB'] = lib


def _has_op(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f'torchvision::{name}', '')
        return True
    except RuntimeError:
        return False


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list the globals MMEngine checkpoints carry, for ``torch.load(weights_only=True)``."""
    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer

    def _getstate(self: HistoryBuffer) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}

    HistoryBuffer.__getstate__ = _getstate
    safe: list = [HistoryBuffer, np.ndarray, np.dtype]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    safe += [_reconstruct, scalar]
    # numpy 2 pickles dtypes by their class (numpy.dtypes.Float64DType, ...).
    safe += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    torch.serialization.add_safe_globals(safe)


def route_mmengine_loads() -> None:
    """Make MMEngine's loader for local paths (``load_from``, ``--resume``, ``load_checkpoint``) read
    with ``weights_only=True`` whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says, and read
    ``.safetensors`` exports."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from .checkpoint_io import safe_load

    def load_from_local(filename: str, map_location: object = None) -> object:
        return safe_load(filename, map_location=map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def setup_env() -> None:
    """Apply every fix of the pinned stack once per process (idempotent).

    1. torchvision's compiled ops shim (:func:`patch_torchvision_ops`; also done at ``import vlreg``);
    2. no update check by albumentations (``NO_ALBUMENTATIONS_UPDATE=1``);
    3. the safe globals of MMEngine checkpoints and ``HistoryBuffer`` pickling
       (:func:`allow_mmengine_checkpoint_globals`);
    4. MMEngine's local checkpoint loads routed through vlreg's weights-only loader
       (:func:`route_mmengine_loads`).

    ``tools/*.py``, :mod:`vlreg.apis` and ``tests/conftest.py`` call it; call it yourself before
    building an MMEngine ``Runner`` by hand (e.g. in a notebook).
    """
    global _PATCHED
    if _PATCHED:
        return
    os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
    patch_torchvision_ops()
    allow_mmengine_checkpoint_globals()
    route_mmengine_loads()
    _PATCHED = True
