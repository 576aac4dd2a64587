"""vlreg's Runner: MMEngine's, with checkpoints read weights-only and checked, and written atomically.

``tools/train.py`` and ``tools/test.py`` build it (:func:`build_runner`). Differences from MMEngine's:

* ``load_checkpoint`` (``load_from``, ``--resume``, ``tools/test.py``) reads with
  :func:`vlreg.utils.checkpoint_io.safe_load` and refuses a checkpoint that fits the model poorly: keys the
  model has and the file lacks (missing), keys the file has and the model lacks (unexpected), or tensors
  of another shape, all listed in one error (judged after the model's own load hooks, e.g. position
  embedding interpolation). Keys matching ``load_allow_missing`` /
  ``load_allow_unexpected`` (config, ``fnmatch`` patterns; default :data:`ALLOWED_MISSING` /
  :data:`ALLOWED_UNEXPECTED`) are accepted; ``load_partial=True`` (``--partial-load``) accepts any missing
  or unexpected key with a warning listing them (shape mismatches stay an error).
* ``save_checkpoint`` writes to a temporary file in the same folder and renames it once it is on disk.
"""

from __future__ import annotations

import fnmatch
import os.path as osp
from collections.abc import Iterable, Mapping

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch import nn

from vlreg.registry import RUNNERS
from vlreg.utils.checkpoint_io import atomic_replace, safe_load, temp_path

#: Missing keys accepted by default: BatchNorm counters (recomputed, never learnt).
ALLOWED_MISSING: tuple[str, ...] = ('*num_batches_tracked',)
#: Unexpected keys accepted by default: the same counters.
ALLOWED_UNEXPECTED: tuple[str, ...] = ('*num_batches_tracked',)
#: Missing keys accepted in a weights-only export of ``tools/export.py`` (``.safetensors``): the
#: momentum copies (restarted from the online weights), the ITC queues (kept at their
#: initialisation; unused at inference) and, for a retrieval export, the MLM head.
EXPORT_ALLOWED_MISSING: tuple[str, ...] = (
    '*_m.*',
    'losses.*.image_queue',
    'losses.*.text_queue',
    'losses.*.idx_queue',
    'losses.*.queue_ptr',
    'mlm_head.*',
)


class CheckpointFitError(ValueError):
    """A checkpoint whose tensors do not fit the model; the message lists the keys."""


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _listing(keys: list[str], limit: int = 20) -> str:
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def fit_report(
    model_state: Mapping,
    state: Mapping,
    allow_missing: Iterable[str] = ALLOWED_MISSING,
    allow_unexpected: Iterable[str] = ALLOWED_UNEXPECTED,
) -> tuple[list[str], list[str], list[str]]:
    """Missing keys, unexpected keys and shape mismatches (``'key: file (..) vs model (..)'``) of
    ``state`` against ``model_state``, leaving out the allowed patterns."""
    missing = sorted(k for k in model_state if k not in state and not _matches(k, allow_missing))
    unexpected = sorted(
        k for k in state if k not in model_state and not _matches(k, allow_unexpected)
    )
    shapes = sorted(
        f'{k}: file {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
        for k, v in state.items()
        if k in model_state
        and hasattr(v, 'shape')
        and tuple(v.shape) != tuple(model_state[k].shape)
    )
    return missing, unexpected, shapes


def check_fit(
    model_state: Mapping,
    state: Mapping,
    source: str,
    partial: bool = False,
    allow_missing: Iterable[str] = ALLOWED_MISSING,
    allow_unexpected: Iterable[str] = ALLOWED_UNEXPECTED,
) -> tuple[list[str], list[str]]:
    """Raise :class:`CheckpointFitError` listing what does not fit (see the module docstring).

    Returns:
        The missing and unexpected keys that ``partial=True`` let through.
    """
    missing, unexpected, shapes = fit_report(model_state, state, allow_missing, allow_unexpected)
    _raise_if_poor_fit(source, len(model_state), missing, unexpected, shapes, partial)
    return missing, unexpected


def _raise_if_poor_fit(
    source: str,
    n_model: int,
    missing: list[str],
    unexpected: list[str],
    shapes: list[str],
    partial: bool,
) -> None:
    """The one error of a poor fit: shape mismatches always, missing / unexpected keys unless
    ``partial``."""
    problems = []
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches: {_listing(shapes)}')
    if not partial and missing:
        problems.append(
            f"{len(missing)} of the model's {n_model} tensors missing from the file: "
            f'{_listing(missing)}'
        )
    if not partial and unexpected:
        problems.append(
            f'{len(unexpected)} tensors in the file that the model does not have: '
            f'{_listing(unexpected)}'
        )
    if problems:
        hint = (
            ''
            if partial
            else (' (pass --partial-load / load_partial=True for a deliberate partial load)')
        )
        raise CheckpointFitError(f'{source} does not fit the model: ' + '; '.join(problems) + hint)


def load_checked(
    model: nn.Module,
    state: Mapping,
    source: str,
    partial: bool = False,
    allow_missing: Iterable[str] = ALLOWED_MISSING,
    allow_unexpected: Iterable[str] = ALLOWED_UNEXPECTED,
    export: bool = False,
) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``model`` by name and raise :class:`CheckpointFitError` if it fits poorly.

    The model's own load hooks run first (e.g. position-embedding interpolation, queue resizing), so
    what is judged is what is left after them: shape mismatches torch reports, and missing /
    unexpected keys beyond the allowed patterns (accepted with ``partial=True``). With ``export``
    (a weights-only file of ``tools/export.py``) the parts an export leaves out
    (:data:`EXPORT_ALLOWED_MISSING`) are accepted too, and momentum copies absent from the file
    restart from the online weights.

    Returns:
        The missing and unexpected keys that ``partial=True`` let through.
    """
    if export:
        allow_missing = (*allow_missing, *EXPORT_ALLOWED_MISSING)
    try:
        result = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as err:
        raise CheckpointFitError(f'{source} does not fit the model: {err}') from err
    missing = sorted(k for k in result.missing_keys if not _matches(k, allow_missing))
    unexpected = sorted(k for k in result.unexpected_keys if not _matches(k, allow_unexpected))
    if missing or unexpected:  # counting the model's tensors gathers them all under FSDP
        _raise_if_poor_fit(source, len(model.state_dict()), missing, unexpected, [], partial)
    restart = getattr(
        model, 'restart_momentum', None
    )  # ALBEFEncoderModel's, shared with load_pretrained
    if export and restart is not None:
        restart(result.missing_keys)  # the export has no momentum copies
    return missing, unexpected


def strip_module_prefix(state: Mapping) -> dict:
    """``state`` with a DDP / MMEngine-wrapper ``module.`` prefix removed from its keys."""
    return {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}


@RUNNERS.register_module()
class VLRunner(Runner):
    """MMEngine's Runner with checked weights-only loading and atomic checkpoint writes.

    Config keys read (all optional): ``load_partial`` (bool, default False), ``load_allow_missing`` and
    ``load_allow_unexpected`` (lists of ``fnmatch`` patterns, defaults :data:`ALLOWED_MISSING` /
    :data:`ALLOWED_UNEXPECTED`).
    """

    def load_checkpoint(
        self,
        filename: str,
        map_location: str = 'cpu',
        strict: bool = False,
        revise_keys: list | None = None,
    ) -> dict:
        """Read ``filename`` weights-only, run ``after_load_checkpoint`` hooks, load it into the model
        and refuse a poor fit (``strict`` / ``revise_keys`` of MMEngine's signature are not used: the fit
        rules are the config's, and a ``module.`` prefix is always stripped)."""
        checkpoint = safe_load(filename, map_location=map_location)
        if not isinstance(checkpoint, Mapping):
            raise CheckpointFitError(
                f'{filename}: holds a {type(checkpoint).__name__}, not a checkpoint dict'
            )
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state = checkpoint.get('state_dict', checkpoint)
        cfg = self.cfg
        missing, unexpected = load_checked(
            model,
            strip_module_prefix(state),
            filename,
            partial=bool(cfg.get('load_partial', False)),
            allow_missing=cfg.get('load_allow_missing', ALLOWED_MISSING),
            allow_unexpected=cfg.get('load_allow_unexpected', ALLOWED_UNEXPECTED),
            export=str(filename).endswith('.safetensors'),
        )
        if missing or unexpected:
            self.logger.warning(
                f'partial load of {filename} (load_partial=True): '
                f'{len(missing)} missing ({_listing(missing, 8)}), '
                f'{len(unexpected)} unexpected ({_listing(unexpected, 8)})'
            )
        self._has_loaded = True
        self.logger.info(f'loaded checkpoint {filename}')
        return checkpoint

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        final = osp.join(out_dir, filename)
        tmp = temp_path(final)
        super().save_checkpoint(out_dir, osp.basename(tmp), *args, **kwargs)
        atomic_replace(tmp, final)


def build_runner(cfg: Config) -> Runner:
    """Build ``cfg.runner_type`` (default :class:`VLRunner`) from a config."""
    if cfg.get('runner_type') is None:
        cfg.runner_type = 'VLRunner'
    return RUNNERS.build(cfg)
