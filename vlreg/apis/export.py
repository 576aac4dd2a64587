"""Weights out: a training checkpoint -> the model's weights only, as safetensors + a JSON config.

A Runner checkpoint carries the momentum encoders, the ITC queues, the optimizer state and the
message hub next to the weights; none of them is needed to use or fine-tune the model (fine-tuning
restarts the momentum copies from the online weights and the queues from scratch or from the
online encoders). The export keeps the online model only and writes ``OUT.safetensors`` and
``OUT.json`` (the model config, where the weights came from, what was dropped and the sizes).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import torch
from torch import Tensor

from vlreg.models.utils.checkpoint import load_state_dict_file

MOMENTUM = re.compile(r'^(image_backbone|text_backbone|fusion|vision_proj|text_proj|mlm_head)_m\.')
QUEUE = re.compile(r'^losses\.[^.]+\.(image_queue|text_queue|idx_queue|queue_ptr)$')
TASKS = {
    'all': (),  # every online tensor (continue pre-training, any task)
    'retrieval': (re.compile(r'^mlm_head\.'),),  # ITC + ITM: the MLM head is not used
}


def split_state(state: dict[str, Tensor], task: str = 'all') -> tuple[dict, dict[str, int]]:
    """The tensors to keep, and how many of each kind were dropped."""
    if task not in TASKS:
        raise ValueError(f'--task must be one of {sorted(TASKS)}, got {task!r}')
    keep: dict[str, Tensor] = {}
    dropped = {'momentum': 0, 'queue': 0, 'task': 0}
    for key, value in state.items():
        key = key.removeprefix('module.')
        if MOMENTUM.match(key):
            dropped['momentum'] += 1
        elif QUEUE.match(key):
            dropped['queue'] += 1
        elif any(p.match(key) for p in TASKS[task]):
            dropped['task'] += 1
        else:
            keep[key] = value
    return keep, dropped


def _model_config(checkpoint: str, config: str | None) -> dict | None:
    from mmengine.config import Config

    if config is not None:
        return Config.fromfile(config).model.to_dict()
    raw = torch.load(checkpoint, map_location='cpu', weights_only=True)
    text = raw.get('meta', {}).get('cfg') if isinstance(raw, dict) else None
    return Config.fromstring(text, '.py').model.to_dict() if text else None


def _size(path: str) -> int:
    return os.path.getsize(path) if os.path.isfile(path) else 0


def export_weights(
    checkpoint: str, out: str, task: str = 'all', config: str | None = None
) -> dict[str, Any]:
    """Write ``out`` (``.safetensors`` appended if missing) and its ``.json``; returns the JSON."""
    from safetensors.torch import save_file

    if not out.endswith('.safetensors'):
        out += '.safetensors'
    keep, dropped = split_state(load_state_dict_file(checkpoint), task)
    if not keep:
        raise ValueError(f'{checkpoint}: no weights left to export')
    seen: dict[int, str] = {}
    tensors = {}
    for key, value in keep.items():  # safetensors stores no shared storage: tied weights copied
        ptr = value.untyped_storage().data_ptr()
        tensors[key] = value.detach().clone().contiguous() if ptr in seen else value.contiguous()
        seen.setdefault(ptr, key)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file(tensors, out, metadata={'format': 'vlreg-weights-1', 'task': task})
    info = dict(
        format='vlreg-weights-1',
        weights=os.path.basename(out),
        source=os.path.abspath(checkpoint),
        task=task,
        tensors=len(tensors),
        dropped=dropped,
        bytes=_size(out),
        source_bytes=_size(checkpoint),
        model=_model_config(checkpoint, config),
    )
    with open(out[: -len('.safetensors')] + '.json', 'w') as f:
        json.dump(info, f, indent=2, default=str)
    return info
