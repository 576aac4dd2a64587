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
    'temp': 'temp',
    'vision_proj.': 'vision_proj.',
    'text_proj.': 'text_proj.',
    'vision_proj_m.': 'vision_proj_m.',
    'text_proj_m.': 'text_proj_m.',
    'itm_head.': 'itm_head.fc.',
}


def _convert_text(rest: str, suffix: str, fusion_layer: int) -> str | None:
    """``rest`` is a key below ``text_encoder[_m].``; returns the vlreg key or None to drop it."""
    rest = rest[len('bert.') :] if rest.startswith('bert.') else rest
    if rest.startswith('embeddings.'):
        return None if rest.endswith('position_ids') else f'text_backbone{suffix}.{rest}'
    m = re.match(r'encoder\.layer\.(\d+)\.(.*)', rest)
    if m:
        n, tail = int(m.group(1)), m.group(2)
        if n < fusion_layer:
            return f'text_backbone{suffix}.encoder.layer.{n}.{tail}'
        return f'fusion{suffix}.layer.{n - fusion_layer}.{tail}'
    if rest.startswith('cls.predictions.'):
        tail = rest[len('cls.predictions.') :]
        if tail == 'decoder.bias':  # the same tensor as cls.predictions.bias
            return None
        return f'mlm_head{suffix}.{tail}'
    if rest.startswith('pooler.'):
        return None
    raise KeyError(f'unrecognised ALBEF text-encoder key: {rest}')


def convert_albef_state_dict(
    state: Mapping[str, Tensor], fusion_layer: int = 6, itc_loss_name: str = 'itc'
) -> dict[str, Tensor]:
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
            new = next(
                (key.replace(a, b, 1) for a, b in _DIRECT.items() if key.startswith(a)), None
            )
            if new is None:
                raise KeyError(f'unrecognised ALBEF checkpoint key: {key}')
        if new is not None:
            out[new] = value
    return out


# -- ALBEF's released layouts -----------------------------------------------------------------------
#: ALBEF's checkpoint layouts and the vlreg model each one converts into.
LAYOUTS = {
    'pretrain': 'ALBEFPretrainer ({"model": sd} of Pretrain.py: momentum copies, queues, MLM head)',
    'retrieval': 'ALBEFPretrainer (Retrieval.py / Grounding.py: ITC + ITM, no MLM head)',
    'snli_ve': 'ALBEFClassifier (VE.py: cls_head with 3 classes)',
    'nlvr2': 'ALBEFPairClassifier (NLVR.py: cls_head with 2 classes, two-image fusion)',
    'vqa': 'ALBEFVQA (VQA.py: answer decoder text_decoder.*)',
}
_ONLINE_TO_MOMENTUM = {
    'retrieval': ('image_backbone', 'text_backbone', 'fusion', 'vision_proj', 'text_proj'),
    'pretrain': (
        'image_backbone',
        'text_backbone',
        'fusion',
        'vision_proj',
        'text_proj',
        'mlm_head',
    ),
    'vqa': ('image_backbone', 'text_backbone', 'fusion', 'head'),
    # the classifiers distil from momentum copies (ALBEF's model_ve.py / model_nlvr.py, distill: True)
    'snli_ve': ('image_backbone', 'text_backbone', 'fusion', 'head'),
    'nlvr2': ('image_backbone', 'text_backbone', 'fusion', 'head'),
}


def detect_layout(state: Mapping[str, Tensor]) -> str:
    """Which of :data:`LAYOUTS` an ALBEF state dict is, from its keys (and the head's width)."""
    if any(k.startswith('text_decoder.') for k in state):
        return 'vqa'
    heads = sorted(k for k in state if re.match(r'cls_head\.\d+\.weight$', k))
    if heads:
        classes = state[heads[-1]].shape[0]
        if classes not in (2, 3):
            raise ValueError(
                f'cls_head has {classes} outputs: neither SNLI-VE (3) nor NLVR2 (2); '
                'pass the layout explicitly'
            )
        return 'snli_ve' if classes == 3 else 'nlvr2'
    if any(k.startswith('text_encoder.bert.') or '.cls.predictions.' in k for k in state):
        return 'pretrain'
    if 'itm_head.weight' in state:
        return 'retrieval'
    raise ValueError(
        'not an ALBEF checkpoint layout: no text_decoder, cls_head, MLM head or '
        f'itm_head among the keys (first keys: {list(state)[:5]})'
    )


def _convert_decoder(rest: str) -> str | None:
    """A key below ALBEF's ``text_decoder[_m].`` -> below vlreg's answer decoder (``head[_m].``)."""
    rest = rest[len('bert.') :] if rest.startswith('bert.') else rest
    if rest.startswith('embeddings.'):
        return None if rest.endswith('position_ids') else rest
    if rest.startswith('encoder.layer.'):
        return rest[len('encoder.') :]
    if rest.startswith('cls.predictions.'):
        tail = rest[len('cls.predictions.') :]
        return None if tail == 'decoder.bias' else f'lm_head.{tail}'
    if rest.startswith('pooler.'):
        return None
    raise KeyError(f'unrecognised ALBEF text-decoder key: {rest}')


def convert_albef_layout(
    state: Mapping[str, Tensor],
    layout: str | None = None,
    fusion_layer: int = 6,
    itc_loss_name: str = 'itc',
) -> tuple[dict[str, Tensor], dict]:
    """Convert any released ALBEF layout; returns ``(vlreg state dict, report)``.

    The report says the ``layout``, what was ``dropped`` and what was ``created``, each group
    with the reason: momentum copies a fine-tuned file lacks are created from the online weights
    (what ALBEF's ``copy_params`` does when it builds a model); momentum copies and ALBEF parts
    the vlreg task model has no slot for are dropped. Position embeddings of another resolution
    (256 px pre-training, 384 px fine-tuning) are interpolated when the model loads the file.
    """
    layout = layout or detect_layout(state)
    if layout not in LAYOUTS:
        raise ValueError(f'unknown ALBEF layout {layout!r}; one of {sorted(LAYOUTS)}')
    dropped: dict[str, str] = {}
    created: dict[str, str] = {}
    rest_state: dict[str, Tensor] = {}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition('.')
        if head in ('cls_head', 'cls_head_m') and layout in ('snli_ve', 'nlvr2'):
            out[f'head{"_m" if head.endswith("_m") else ""}.mlp.{rest}'] = value
        elif head in ('text_decoder', 'text_decoder_m'):
            new = _convert_decoder(rest)
            if new is not None:
                out[f'head{"_m" if head.endswith("_m") else ""}.{new}'] = value
        else:
            rest_state[key] = value
    converted = convert_albef_state_dict(rest_state, fusion_layer, itc_loss_name)
    if layout in ('snli_ve', 'nlvr2', 'vqa'):
        keep = ('image_backbone', 'text_backbone', 'fusion')
        keep += tuple(f'{k}_m' for k in keep)
        for key in list(converted):
            group = key.split('.', 1)[0]
            if group not in keep:
                dropped[f'{group}*'] = f'the vlreg {layout} model has no {group}'
                del converted[key]
    out.update(converted)
    for online in _ONLINE_TO_MOMENTUM.get(layout, ()):
        own = {k: v for k, v in out.items() if k.startswith(f'{online}.')}
        if own and not any(k.startswith(f'{online}_m.') for k in out):
            out.update({f'{online}_m.{k[len(online) + 1 :]}': v.clone() for k, v in own.items()})
            created[f'{online}_m.*'] = (
                'not in the file (a fine-tuned checkpoint): copied from '
                f'{online}, as ALBEF initialises its momentum model'
            )
    if layout in ('pretrain', 'retrieval') and f'losses.{itc_loss_name}.image_queue' not in out:
        created['queues'] = 'not in the file: the model keeps its own (random unit vectors)'
    return out, dict(
        layout=layout, target=LAYOUTS[layout], dropped=dropped, created=created, tensors=len(out)
    )
