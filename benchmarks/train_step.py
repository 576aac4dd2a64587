"""Median time and peak memory of one training step of a config's model (full ALBEF step: momentum update,
encoders, every loss, backward, optimizer step), measured on batches from the config's own data pipeline.

    python benchmarks/train_step.py [CONFIG ...] [--steps 20] [--warmup 3] [--batch-size N]

Defaults to the CPU demo config and the tests' tiny config. Time: wall clock per `model.train_step` (the
same call the Runner makes), after warm-up, median and inter-quartile range over --steps. Memory: the
process's peak resident set size (ru_maxrss) after the timed steps, and its growth over the steps. On a GPU
it also reports torch.cuda.max_memory_allocated. This machine is noisy: compare medians in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vlreg  # noqa: E402

vlreg.setup_env()

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from vlreg.registry import DATASETS, MODELS  # noqa: E402

DEFAULTS = [
    'tests/configs/tiny_synthetic.py',
    'configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py',
]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(config: str, steps: int, warmup: int, batch_size: int | None) -> dict:
    cfg = Config.fromfile(str(ROOT / config) if not os.path.isabs(config) else config)
    init_default_scope('vlreg')
    torch.manual_seed(0)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = MODELS.build(cfg.model).to(device).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    bs = batch_size or cfg.train_dataloader.batch_size
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batches = [
        pseudo_collate([dataset[(i * bs + j) % len(dataset)] for j in range(bs)]) for i in range(4)
    ]
    times = []
    start_rss = rss_mb()
    for i in range(warmup + steps):
        if device == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.train_step(batches[i % len(batches)], optim)
        if device == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=4)
    out = dict(
        config=config,
        batch=bs,
        median_s=statistics.median(times),
        iqr_s=q[2] - q[0],
        peak_rss_mb=rss_mb(),
        rss_growth_mb=rss_mb() - start_rss,
        params_m=sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    )
    if device == 'cuda':
        out['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='*', default=DEFAULTS)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch-size', type=int)
    args = parser.parse_args()
    if len(args.configs) > 1:  # one process per config: ru_maxrss is a per-process peak
        import subprocess

        extra = ['--steps', str(args.steps), '--warmup', str(args.warmup)]
        extra += ['--batch-size', str(args.batch_size)] if args.batch_size else []
        for config in args.configs:
            subprocess.run([sys.executable, __file__, config, *extra], check=True)
        return
    print(
        f'torch {torch.__version__}, threads {torch.get_num_threads()}, '
        f'{"cuda" if torch.cuda.is_available() else "cpu"}'
    )
    for config in args.configs:
        r = bench(config, args.steps, args.warmup, args.batch_size)
        line = (
            f'{r["config"]}: batch {r["batch"]}, {r["params_m"]:.2f} M trainable params, '
            f'step median {r["median_s"] * 1000:.0f} ms (IQR {r["iqr_s"] * 1000:.0f} ms, '
            f'{args.steps} steps), peak RSS {r["peak_rss_mb"]:.0f} MB'
        )
        if 'cuda_peak_mb' in r:
            line += f', CUDA peak {r["cuda_peak_mb"]:.0f} MB'
        print(line, flush=True)


if __name__ == '__main__':
    main()
