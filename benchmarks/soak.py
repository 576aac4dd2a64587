"""Soak test (not in the suite): train the CPU demo for a fixed time, evaluating every few minutes, and
record resident memory (RSS), open file handles and step time over the run.

What it shows: RSS must be flat after warm-up (no growth per iteration or per evaluation), file handles
must not accumulate, and the step time must not drift. Writes ``<out>/soak.json`` (every sample) and
prints a short table (per phase: RSS, handles, median step time) plus the fitted growth rates.

Example:
    python benchmarks/soak.py --minutes 30 --eval-every 5 --out work_dirs/soak
    python benchmarks/soak.py --minutes 1 --eval-every 0.5    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vlreg  # noqa: E402

vlreg.setup_env()

from mmengine.hooks import Hook  # noqa: E402

from vlreg.engine.launch import load_config  # noqa: E402
from vlreg.engine.runner import build_runner  # noqa: E402

CONFIG = 'configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py'


def rss_mib() -> float:
    """Resident set size of this process (Linux ``/proc``), MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def open_handles() -> int:
    return len(os.listdir('/proc/self/fd'))


class SoakHook(Hook):
    """Samples memory, handles and step time after each iteration; stops training at the deadline
    and runs the validation loop every ``eval_every`` seconds."""

    priority = 'LOWEST'

    def __init__(self, seconds: float, eval_every: float) -> None:
        self.seconds, self.eval_every = seconds, eval_every
        self.samples: list[dict] = []
        self.evals: list[dict] = []

    def before_train(self, runner) -> None:
        self.start = self.last = self.last_eval = time.monotonic()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now = time.monotonic()
        self.samples.append(
            dict(
                iter=runner.iter + 1,
                t=round(now - self.start, 3),
                step_s=now - self.last,
                rss_mib=rss_mib(),
                fds=open_handles(),
            )
        )
        self.last = now
        if self.eval_every > 0 and now - self.last_eval >= self.eval_every:
            t0 = time.monotonic()
            runner.val_loop.run()
            runner.model.train()
            self.evals.append(
                dict(
                    iter=runner.iter + 1,
                    t=round(now - self.start, 3),
                    eval_s=time.monotonic() - t0,
                    rss_mib=rss_mib(),
                    fds=open_handles(),
                )
            )
            self.last_eval = self.last = time.monotonic()
        if now - self.start >= self.seconds:
            runner.train_loop.stop_training = True  # the loop ends after this iteration


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def summarise(samples: list[dict], evals: list[dict], warmup: float) -> dict:
    steady = [s for s in samples if s['t'] >= warmup] or samples
    n = len(steady)
    thirds = [steady[i * n // 3 : (i + 1) * n // 3] for i in range(3)]
    return dict(
        iterations=len(samples),
        evaluations=len(evals),
        warmup_s=warmup,
        rss_growth_mib_per_1k_iters=1000
        * slope([s['iter'] for s in steady], [s['rss_mib'] for s in steady]),
        rss_growth_mib_per_eval=slope(list(range(len(evals))), [e['rss_mib'] for e in evals]),
        fds_first_last=[steady[0]['fds'], steady[-1]['fds']] if steady else [],
        step_s_median_by_third=[
            statistics.median(s['step_s'] for s in third) if third else None for third in thirds
        ],
        rss_mib_by_third=[max(s['rss_mib'] for s in third) if third else None for third in thirds],
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--eval-every', type=float, default=5.0, help='minutes between evaluations')
    parser.add_argument(
        '--warmup',
        type=float,
        default=2.0,
        help='minutes left out of the growth fits (allocator and caches settle)',
    )
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--out', default='work_dirs/soak')
    args = parser.parse_args(argv)
    cfg = load_config(str(ROOT / args.config), None, args.out)
    cfg.train_cfg.max_epochs = 10_000  # the hook ends the run at the deadline
    cfg.train_cfg.val_interval = 10_000
    cfg.default_hooks.checkpoint = dict(type='VLCheckpointHook', interval=10_000, save_last=False)
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    runner = build_runner(cfg)
    hook = SoakHook(args.minutes * 60, args.eval_every * 60)
    runner.register_hook(hook)
    runner.train()
    summary = summarise(hook.samples, hook.evals, min(args.warmup, args.minutes / 4) * 60)
    result = dict(
        config=args.config,
        minutes=args.minutes,
        eval_every_min=args.eval_every,
        summary=summary,
        samples=hook.samples,
        evals=hook.evals,
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'soak.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    print_table(summary)
    print(f'samples written to {path}')
    return result


def print_table(summary: dict) -> None:
    rows = [
        ('iterations / evaluations', f'{summary["iterations"]} / {summary["evaluations"]}'),
        (
            'RSS max per third (MiB)',
            ' / '.join(f'{v:.0f}' for v in summary['rss_mib_by_third'] if v is not None),
        ),
        ('RSS growth (MiB per 1k iters)', f'{summary["rss_growth_mib_per_1k_iters"]:+.2f}'),
        ('RSS growth (MiB per evaluation)', f'{summary["rss_growth_mib_per_eval"]:+.2f}'),
        ('open handles first -> last', ' -> '.join(map(str, summary['fds_first_last']))),
        (
            'step time median per third (s)',
            ' / '.join(f'{v:.3f}' for v in summary['step_s_median_by_third'] if v is not None),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print('| ' + 'quantity'.ljust(width) + ' | value |')
    print('|' + '-' * (width + 2) + '|-------|')
    for name, value in rows:
        print(f'| {name.ljust(width)} | {value} |')


if __name__ == '__main__':
    main()
