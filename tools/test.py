"""Evaluate a checkpoint with a config's test loop (retrieval, or a downstream task's metric).

Example:
    python tools/test.py configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py \
        work_dirs/albef_vit-t-bert-t_1xb32_synthetic-demo/epoch_4.pth \
        --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402

vlreg.setup_env()

from mmengine.config import DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402

from vlreg.engine.launch import finish_distributed, load_config  # noqa: E402
from vlreg.engine.runner import build_runner  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a vlreg checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='write the metrics (and the protocol used) to this JSON file')
    parser.add_argument('--work-dir')
    parser.add_argument(
        '--partial-load',
        action='store_true',
        help="evaluate even if the checkpoint lacks some of the model's tensors or has "
        'extra ones (listed in a warning); default: an error listing them',
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    cfg.load_partial = bool(args.partial_load)
    runner = build_runner(cfg)
    metrics = runner.test()
    if args.out and is_main_process():
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(
                {
                    'config': args.config,
                    'checkpoint': args.checkpoint,
                    'metrics': {
                        k: (v if isinstance(v, (int, float, str)) else str(v))
                        for k, v in metrics.items()
                    },
                },
                f,
                indent=2,
            )
        print(f'metrics written to {args.out}')
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
