"""Train (pre-train or fine-tune) a vlreg model from a config.

Examples:
    python tools/train.py configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --resume            # latest checkpoint
    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch     # gloo on CPU, nccl on GPUs
    torchrun --nproc_per_node=8 tools/train.py CONFIG --launcher pytorch --fsdp   # sharded (FSDP)
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402

vlreg.setup_env()

from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

from vlreg.engine.launch import (  # noqa: E402
    enable_amp,
    enable_fsdp,
    finish_distributed,
    load_config,
)
from vlreg.engine.runner import build_runner  # noqa: E402
from vlreg.utils.checkpoint_io import find_resumable  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a vlreg model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        help='resume from CKPT, or from the latest checkpoint of the work dir if no '
        'path is given (the newest complete one if that file is incomplete)',
    )
    parser.add_argument(
        '--partial-load',
        action='store_true',
        help="accept a load_from / resume checkpoint that lacks some of the model's "
        'tensors or has extra ones (listed in a warning); default: an error',
    )
    parser.add_argument('--amp', action='store_true', help='mixed precision (GPU)')
    parser.add_argument(
        '--fsdp',
        action='store_true',
        help='sharded training: FlexibleRunner + FSDP (vlreg.engine.launch.enable_fsdp says what '
        'it changes); with --launcher pytorch',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_dataloader.batch_size=8',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.partial_load:
        cfg.load_partial = True
    if args.fsdp:
        for change in enable_fsdp(cfg):
            if int(os.environ.get('RANK', 0)) == 0:
                print_log(f'--fsdp: {change}', logger='current')
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        found = find_resumable(cfg.work_dir)
        if found is None:
            print_log(
                f'--resume: no complete checkpoint in {cfg.work_dir}; starting from scratch',
                logger='current',
            )
        cfg.resume, cfg.load_from = found is not None, found
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    runner = build_runner(cfg)
    runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
