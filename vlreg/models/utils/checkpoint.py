"""Reading weights from local files (never a hub), without ever turning ``weights_only`` off.

Loading is strict by default: :func:`load_into` raises, naming the keys, when a key the module has is not in
the file or a key handed to it fits nowhere, unless the key matches an entry of :data:`ALLOWED_MISSING`
that the caller names (each entry says why leaving that key at its initial value is right). A pretrained
file that silently half-loads is the worst failure a user can have. :func:`load_checkpoint_into` is the one
loader of a whole checkpoint file into a model (every ``load_pretrained``), strict or not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from vlreg.utils.paths import resolve_path

#: Legacy (TensorFlow-era) names of BERT LayerNorm parameters -> today's names. The original
#: bert-base-uncased checkpoint uses the left-hand names; transformers renames them on load, and so do we
#: (:func:`rename_legacy_keys`), otherwise every LayerNorm would stay at its initial 1 / 0.
LEGACY_SUFFIXES: dict[str, str] = {
    'LayerNorm.gamma': 'LayerNorm.weight',
    'LayerNorm.beta': 'LayerNorm.bias',
}

#: The keys a module may lack after a load (matched as substrings of the module's key), each with the
#: reason it is right to leave them at their initial value. A caller of :func:`load_into` names the
#: entries that apply to it in ``expect_missing``; any other missing key is an error.
ALLOWED_MISSING: dict[str, str] = {
    'crossattention': 'a plain BERT has no cross-attention: the fusion encoder starts it from random '
    'weights, as ALBEF does',
    'decoder.weight': "the MLM head's vocabulary projection is tied to the text backbone's word "
    'embeddings, which load with the text backbone',
    'head.': 'a fine-tuning head (classifier, answer decoder) does not exist in a pre-training '
    'checkpoint: it starts random or is initialised from the fusion layers afterwards',
    '_m.': 'momentum copies (ALBEF distillation) are copied from the online model after loading',
}

#: Keys of a BERT file that no vlreg part reads, each with the reason (see :func:`read_bert_state`).
#: ``embeddings.*`` and ``encoder.layer.N.*`` are read by the text backbone / the fusion encoder, and
#: ``cls.predictions.*`` by :class:`~vlreg.models.heads.MLMHead`; layers outside a part's range belong
#: to the other part or to none (ALBEF uses 6 + 6 of BERT-base's 12; a smaller model uses fewer).
BERT_UNUSED: dict[str, str] = {
    'pooler.': "BERT's tanh pooler on [CLS]: ALBEF projects [CLS] with its own heads instead",
    'cls.seq_relationship.': "BERT's next-sentence head: ALBEF has no such objective",
    'embeddings.position_ids': 'a constant buffer 0..max-1 in transformers; vlreg computes positions',
}

_BERT_KEY = re.compile(r'^(embeddings\.|encoder\.layer\.\d+\.|cls\.predictions\.)')


def rename_legacy_keys(
    state: Mapping[str, Tensor], source: str = 'state dict'
) -> dict[str, Tensor]:
    """Rename ``*.LayerNorm.gamma`` / ``*.LayerNorm.beta`` to ``weight`` / ``bias`` (:data:`LEGACY_SUFFIXES`).

    Raises:
        ValueError: the file holds a tensor under both the legacy and today's name.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key
        for old, repl in LEGACY_SUFFIXES.items():
            if key.endswith(old):
                new = key[: -len(old)] + repl
                break
        if new in out or (new != key and new in state):
            raise ValueError(f'{source}: {key!r} and {new!r} name the same tensor')
        out[new] = value
    return out


def load_state_dict_file(path: str) -> dict[str, Tensor]:
    """Read a state dict from a ``.safetensors`` / ``.bin`` / ``.pth`` file or a Hugging Face model folder.

    Nested checkpoints (``{'model': ...}``, ``{'state_dict': ...}``) are unwrapped and legacy LayerNorm
    names renamed (:func:`rename_legacy_keys`). ``torch.load`` runs with ``weights_only=True``: a file
    that needs arbitrary code to unpickle is refused.
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
            raise RuntimeError(
                f'{path}: cannot be read as a weights-only checkpoint ({err})'
            ) from err
    for key in ('state_dict', 'model'):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise TypeError(f'{path}: expected a state dict, got {type(state).__name__}')
    return rename_legacy_keys(state, path)


def read_bert_state(path: str) -> dict[str, Tensor]:
    """A Hugging Face BERT file (or folder) with the ``bert.`` prefix removed, every key checked.

    Each key must be one a vlreg part reads (``embeddings.*``, ``encoder.layer.N.*``,
    ``cls.predictions.*``) or one of :data:`BERT_UNUSED`; the unused ones are dropped.

    Raises:
        KeyError: keys of another kind (e.g. a vlreg checkpoint given where a BERT file is expected),
            named.
    """
    state = load_state_dict_file(path)
    if any(k.startswith('bert.') for k in state):
        state = {k.removeprefix('bert.'): v for k, v in state.items()}
    unused = [k for k in state if any(k.startswith(u) for u in BERT_UNUSED)]
    foreign = [k for k in state if k not in unused and not _BERT_KEY.match(k)]
    if foreign:
        raise KeyError(f'{path}: not a BERT checkpoint, keys no part can use: {_few(foreign)}')
    return {k: v for k, v in state.items() if k not in unused}


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Keys that start with ``prefix``, with it removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def select_layers(
    state: Mapping[str, Tensor], first: int, count: int, prefix: str = 'encoder.layer.'
) -> dict[str, Tensor]:
    """BERT layers ``first .. first+count-1`` of ``state``, renumbered from 0 under ``prefix``."""
    out: dict[str, Tensor] = {}
    for i in range(count):
        out.update(
            {
                f'{prefix}{i}.{k}': v
                for k, v in strip_prefix(state, f'encoder.layer.{first + i}.').items()
            }
        )
    return out


def _few(keys: list[str], n: int = 8) -> str:
    return f'{keys[:n]}{f" (and {len(keys) - n} more)" if len(keys) > n else ""}'


def load_into(
    module: nn.Module, state: Mapping[str, Tensor], source: str, expect_missing: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``module`` by name and return the (allowed) missing keys and ``[]``.

    Args:
        module: what to fill.
        state: the tensors selected for this module, already under the module's names.
        source: names the module and the file in messages.
        expect_missing: entries of :data:`ALLOWED_MISSING`; module keys containing one of them may be
            absent from ``state``.

    Raises:
        KeyError: a module key missing from ``state`` that no entry allows, or a key of ``state`` the
            module does not have; the message names them.
        ValueError: a shape mismatch (the key named), or an ``expect_missing`` entry that is not in
            :data:`ALLOWED_MISSING`.
    """
    expect_missing = tuple(expect_missing)
    unknown = [e for e in expect_missing if e not in ALLOWED_MISSING]
    if unknown:
        raise ValueError(
            f'{source}: {unknown} are not on the documented allow-list ALLOWED_MISSING'
        )
    own = module.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise ValueError(
                f'{source}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}'
            )
    missing = [k for k in own if k not in state]
    bad_missing = [k for k in missing if not any(e in k for e in expect_missing)]
    unexpected = [k for k in state if k not in own]
    if bad_missing or unexpected:
        raise KeyError(
            f'{source}: the file does not fit the model; missing from the file: '
            f'{_few(bad_missing)}; in the file but not in the model: {_few(unexpected)}'
        )
    module.load_state_dict(state, strict=False)
    print_log(
        f'{source}: {len(state)} tensors loaded'
        + (f'; left at their initial values (allowed): {_few(missing)}' if missing else ''),
        logger='current',
    )
    return missing, []


def load_checkpoint_into(
    model: nn.Module,
    path: str,
    keep: Iterable[str] | None = None,
    skip_suffixes: Iterable[str] = (),
    convert: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    strict: bool = True,
    expect_missing: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """Load the checkpoint file ``path`` into ``model`` by name: the one fine-tuning loader of every
    model's ``load_pretrained``.

    Steps: read the file (:func:`load_state_dict_file`, weights only), strip a ``module.`` prefix,
    keep the keys starting with one of ``keep`` (all when None), leave out those ending with one of
    ``skip_suffixes`` (neither loaded nor reported missing), ``convert`` what is left (e.g. position
    embeddings interpolated, fusion keys remapped), then load. ``strict``: :func:`load_into` (a
    missing key must match ``expect_missing``; any unexpected key raises); otherwise keys the model
    lacks are ignored and missing keys reported, both logged.

    Returns:
        (missing keys, unexpected keys).

    Raises:
        KeyError: no tensor of the file (after ``keep`` / ``convert``) is one of the model's.
    """
    state = {k.removeprefix('module.'): v for k, v in load_state_dict_file(path).items()}
    if keep is not None:
        state = {k: v for k, v in state.items() if k.startswith(tuple(keep))}
    skip = tuple(skip_suffixes)
    if skip:
        state = {k: v for k, v in state.items() if not k.endswith(skip)}
    if convert is not None:
        state = convert(state)
    own = model.state_dict()
    if not any(k in own for k in state):
        wanted = '' if keep is None else ' ' + ' / '.join(f'{p}*' for p in keep)
        raise KeyError(
            f'{path}: no{wanted} tensor of this model in the file (is it a vlreg '
            'checkpoint? convert ALBEF checkpoints with tools/convert_albef.py)'
        )
    source = f'{type(model).__name__} <- {path}'
    if strict:
        return load_into(model, state, source, expect_missing)
    result = model.load_state_dict(state, strict=False)
    missing = (
        [k for k in result.missing_keys if not k.endswith(skip)]
        if skip
        else list(result.missing_keys)
    )
    unexpected = list(result.unexpected_keys)
    loaded = sum(k in own for k in state)
    print_log(
        f'{source}: {loaded} tensors loaded; missing {missing[:8]}'
        f'{"..." if len(missing) > 8 else ""}; ignored (not in this model) {unexpected[:8]}'
        f'{"..." if len(unexpected) > 8 else ""}',
        logger='current',
    )
    return missing, unexpected
