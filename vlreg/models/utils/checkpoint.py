"""Reading weights from local files (never a hub), without ever turning ``weights_only`` off."""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from vlreg.utils.paths import resolve_path


def load_state_dict_file(path: str) -> dict[str, Tensor]:
    """Read a state dict from a ``.safetensors`` / ``.bin`` / ``.pth`` file or a Hugging Face model folder.

    Nested checkpoints (``{'model': ...}``, ``{'state_dict': ...}``) are unwrapped. ``torch.load`` runs with
    ``weights_only=True``: a file that needs arbitrary code to unpickle is refused.
    """
    path = resolve_path(path)
    if os.path.isdir(path):
        for name in ('model.safetensors', 'pytorch_model.bin'):
            if os.path.isfile(os.path.join(path, name)):
                return load_state_dict_file(os.path.join(path, name))
        raise FileNotFoundError(f'{path}: no model.safetensors or pytorch_model.bin in this folder')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'weights file not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # noqa: BLE001 - re-raised with the file named
            raise RuntimeError(f'{path}: cannot be read as a weights-only checkpoint ({err})') from err
    for key in ('state_dict', 'model'):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise TypeError(f'{path}: expected a state dict, got {type(state).__name__}')
    return dict(state)


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Keys that start with ``prefix``, with it removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_into(module: nn.Module, state: Mapping[str, Tensor], source: str,
              expect_missing: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Load by name (non-strict), log what was missing / unexpected, and return both lists.

    Keys whose name contains one of ``expect_missing`` (e.g. ``crossattention`` for a plain BERT) are not
    reported as missing. Shape mismatches raise with the key named.
    """
    own = module.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise ValueError(f'{source}: {k} has shape {tuple(v.shape)}, the model expects '
                             f'{tuple(own[k].shape)}')
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not any(e in k for e in expect_missing)]
    if missing or result.unexpected_keys:
        print_log(f'{source}: {len(state) - len(result.unexpected_keys)} tensors loaded; missing '
                  f'{missing[:8]}{"..." if len(missing) > 8 else ""}; unexpected '
                  f'{result.unexpected_keys[:8]}', logger='current')
    return missing, list(result.unexpected_keys)


def _register_safetensors_loader() -> None:
    """Let MMEngine's local checkpoint loader (``load_from``, ``init_cfg=Pretrained``) read
    ``.safetensors`` files (weights only, no pickle); any other file goes to MMEngine's loader."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    def load_local(filename: str, map_location: str | None = None) -> dict:
        if str(filename).endswith('.safetensors'):
            return {'state_dict': load_state_dict_file(filename)}
        return load_from_local(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_local, force=True)


_register_safetensors_loader()
