"""Convert ALBEF checkpoints (``{'model': state_dict}`` with ALBEF's key names) to vlreg's names.

ALBEF (salesforce/ALBEF) stores one BERT (``text_encoder.bert.*``, layers ``>= fusion_layer`` carrying
``crossattention``) plus ``cls.predictions`` for MLM; vlreg splits it into ``text_backbone`` and ``fusion``
and keeps the MLM head and the queues (which live in the ITC loss) under their own names. Fine-tuning
checkpoints (``text_encoder.embeddings.*`` without ``bert.``) are read too.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

_DIRECT = {
    'temp': 'temp', 'vision_proj.': 'vision_proj.', 'text_proj.': 'text_proj.',
    'vision_proj_m.': 'vision_proj_m.', 'text_proj_m.': 'text_proj_m.', 'itm_head.': 'itm_head.fc.',
}


def _convert_text(rest: str, suffix: str, fusion_layer: int) -> str | None:
    """``rest`` is a key below ``text_encoder[_m].``; returns the vlreg key or None to drop it."""
    rest = rest[len('bert.'):] if rest.startswith('bert.') else rest
    if rest.startswith('embeddings.'):
        return None if rest.endswith('position_ids') else f'text_backbone{suffix}.{rest}'
    m = re.match(r'encoder\.layer\.(\d+)\.(.*)', rest)
    if m:
        n, tail = int(m.group(1)), m.group(2)
        if n < fusion_layer:
            return f'text_backbone{suffix}.encoder.layer.{n}.{tail}'
        return f'fusion{suffix}.layer.{n - fusion_layer}.{tail}'
    if rest.startswith('cls.predictions.'):
        tail = rest[len('cls.predictions.'):]
        if tail == 'decoder.bias':  # the same tensor as cls.predictions.bias
            return None
        return f'mlm_head{suffix}.{tail}'
    if rest.startswith('pooler.'):
        return None
    raise KeyError(f'unrecognised ALBEF text-encoder key: {rest}')


def convert_albef_state_dict(state: Mapping[str, Tensor], fusion_layer: int = 6,
                             itc_loss_name: str = 'itc') -> dict[str, Tensor]:
    """Map an ALBEF ``state_dict`` (the value of its checkpoint's ``'model'``) to vlreg's names.

    Args:
        state: ALBEF's state dict.
        fusion_layer: index of ALBEF's first fusion layer (6 for BERT-base).
        itc_loss_name: the key of the ITC loss in the vlreg config (queues live there).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new: str | None
        if key in ('image_queue', 'text_queue', 'queue_ptr', 'idx_queue'):
            new = f'losses.{itc_loss_name}.{key}'
        elif key.startswith(('visual_encoder.', 'visual_encoder_m.')):
            head, rest = key.split('.', 1)
            new = f'image_backbone{"_m" if head.endswith("_m") else ""}.vit.{rest}'
        elif key.startswith(('text_encoder.', 'text_encoder_m.')):
            head, rest = key.split('.', 1)
            new = _convert_text(rest, '_m' if head.endswith('_m') else '', fusion_layer)
        else:
            new = next((key.replace(a, b, 1) for a, b in _DIRECT.items() if key.startswith(a)), None)
            if new is None:
                raise KeyError(f'unrecognised ALBEF checkpoint key: {key}')
        if new is not None:
            out[new] = value
    return out
