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
