"""What tools/train.py and tools/test.py share: reading the config and making MMEngine run on CPU too."""

from __future__ import annotations

import os
import os.path as osp
import warnings

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction  # noqa: F401 - DictAction re-exported for the tools


def load_config(
    path: str, cfg_options: dict | None, work_dir: str | None, launcher: str = 'none'
) -> Config:
    """Read ``path``, apply ``--cfg-options``, set the work dir and prepare distributed CPU runs."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    _check_tokenizers(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    cfg.launcher = launcher
    if (cfg.get('randomness') or {}).get('deterministic'):
        # cuBLAS refuses deterministic mode without a fixed workspace (read at CUDA initialisation)
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    if launcher != 'none':
        prepare_distributed(cfg, launcher)
    return cfg


def _check_tokenizers(cfg: Config) -> None:
    """Fail before the Runner is built when a pipeline's tokenizer does not fit the text encoder's
    embeddings (:func:`vlreg.datasets.tokenizers.check_tokenizer_vocab`). A tokenizer that cannot be
    built here (its files are absent) is left to the data pipeline, whose error names the file."""
    from vlreg.datasets.tokenizers import check_tokenizer_vocab

    try:
        check_tokenizer_vocab(cfg)
    except (OSError, ImportError, KeyError):
        return


def prepare_distributed(cfg: Config, launcher: str) -> None:
    """On machines without CUDA, start gloo ourselves: MMEngine's ``init_dist`` calls
    ``torch.cuda.set_device`` and its DDP wrapper passes ``device_ids`` (ENVIRONMENT.md)."""
    if torch.cuda.is_available():
        return
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ.get('SLURM_PROCID', '0'))
        os.environ.setdefault('WORLD_SIZE', os.environ.get('SLURM_NTASKS', '1'))
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ.setdefault('MASTER_ADDR', 'localhost')
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    cfg.env_cfg = dict(cfg.get('env_cfg', {}), dist_cfg=dict(backend='gloo'))
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def enable_amp(cfg: Config) -> None:
    """Mixed precision through MMEngine's ``AmpOptimWrapper`` (GPU only: bf16 autocast on these CPUs is
    100-1000x slower than fp32, so on CPU the flag is refused with a warning)."""
    if not torch.cuda.is_available():
        warnings.warn(
            '--amp ignored: no CUDA device; CPU autocast would run in bf16, which is far '
            'slower than fp32 on this kind of machine',
            stacklevel=2,
        )
        return
    optim = cfg.optim_wrapper
    if optim.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return
    optim.type = 'AmpOptimWrapper'
    optim.setdefault('loss_scale', 'dynamic')


def finish_distributed() -> None:
    """After a successful run: every rank waits for the others (rank 0 may still be saving or
    logging), then the process group is taken down before interpreter shutdown. A rank that left
    early aborted a finished run at exit (gloo, "terminate called without an active exception",
    exit -6, about 1 run in 2 of a 2-process CPU run ending at a checkpoint). No-op in one process."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


#: hooks that run a forward on rank 0 alone: under FSDP the other ranks never join it (a hang)
RANK0_FORWARD_HOOKS = ('SoftMaskVisualizationHook', 'RetrievalGridHook')


def enable_fsdp(cfg: Config) -> list[str]:
    """Make a training config sharded: MMEngine's ``FlexibleRunner`` with :class:`VLFSDPStrategy`
    (vlreg/engine/fsdp.py: the transformer layers sharded, the rest replicated, checkpoints in the
    ordinary unsharded layout). A ``strategy`` the config already sets is kept. Also, because under
    FSDP a layer's weights exist whole only inside its own forward:

    * ``model.share_image_kv = False`` (the same arithmetic; the shared keys / values call the
      fusion layers' projections outside their forward);
    * validation ranks by ITC only (``val_cfg.k = 0``): the ITM re-rank projects the images' keys /
      values outside the fusion layers' forward; ``tools/test.py`` on a saved checkpoint runs the
      full protocol;
    * the hooks of :data:`RANK0_FORWARD_HOOKS` are removed (a forward on one rank alone waits for
      the other ranks forever).

    ``load_partial`` (``--partial-load``) is passed on to the strategy, which loads checkpoints
    under FlexibleRunner. Returns what was changed, one line each (tools/train.py prints them).
    """
    changes = []
    if cfg.get('runner_type') not in (None, 'VLRunner', 'FlexibleRunner'):
        raise ValueError(
            f'--fsdp needs FlexibleRunner; the config sets runner_type={cfg.runner_type!r}'
        )
    cfg.runner_type = 'FlexibleRunner'
    if cfg.get('strategy') is None:
        # 'vlreg.': FlexibleRunner builds the strategy before it sets the default scope
        cfg.strategy = dict(type='vlreg.VLFSDPStrategy', state_dict_cfg='full')
        changes.append('runner: FlexibleRunner with VLFSDPStrategy (transformer layers sharded)')
    if cfg.get('load_partial'):  # VLRunner's key (--partial-load): the strategy loads under FSDP
        cfg.strategy.load_partial = True
    cfg.pop('model_wrapper_cfg', None)  # FlexibleRunner's wrapper is the strategy's
    if cfg.model.get('share_image_kv', True):
        cfg.model.share_image_kv = False
        changes.append('model.share_image_kv=False (same arithmetic)')
    val_cfg = cfg.get('val_cfg')
    if val_cfg and val_cfg.get('k', 0) != 0:
        changes.append(f'val_cfg.k: {val_cfg.k} -> 0 (validation ranks by ITC only)')
        val_cfg.k = 0
    hooks = list(cfg.get('custom_hooks') or [])
    kept = [h for h in hooks if h.get('type') not in RANK0_FORWARD_HOOKS]
    if len(kept) != len(hooks):
        dropped = sorted({h['type'] for h in hooks} - {h['type'] for h in kept})
        changes.append(f'custom_hooks: removed {dropped} (rank-0-only forwards)')
        cfg.custom_hooks = kept
    return changes
