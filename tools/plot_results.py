"""PNG plots of the project's result files.

Usage: python tools/plot_results.py RESULTS.json [--metric r_mean] [--out RESULTS.png]

Two kinds of RESULTS.json, told apart by their records:
- an ablation (``tools/run_ablation.py`` writes it next to its table; one entry per run with ``variant``,
  ``seed`` and the recalls): recall per variant, every seed a dot, whiskers from the worst to the best seed;
  the ablation calls this itself;
- a step benchmark (``benchmarks/peer_albef.py`` writes it under ``--out``; records with ``kind='train'``,
  ``side``, ``batch``, ``round``, ``median_step_s``, ``peak_rss_mb``): step time and peak memory against the
  batch size, one line per side (median over rounds, the rounds' range as a band); the benchmark calls this
  itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def summarise(results: list[dict], metric: str = 'r_mean') -> dict[str, dict[str, Any]]:
    """Per variant (in first-seen order): mean, min, max and the seeds' values of ``metric``."""
    out: dict[str, dict[str, Any]] = {}
    for run in results:
        if metric not in run:
            raise KeyError(f'run {run.get("variant")} seed {run.get("seed")} has no {metric!r}')
        out.setdefault(run['variant'], {'values': []})['values'].append(float(run[metric]))
    for entry in out.values():
        vals = entry['values']
        entry.update(mean=statistics.mean(vals), min=min(vals), max=max(vals))
    return out


def plot_recall(results: list[dict], out: str, metric: str = 'r_mean', title: str = '') -> Any:
    """Bars of the mean, whiskers from the worst to the best seed, one dot per seed; saves ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarise(results, metric)
    fig = Figure(figsize=(1.2 * len(summary) + 1.5, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    names = list(summary)
    means = [summary[n]['mean'] for n in names]
    low = [summary[n]['mean'] - summary[n]['min'] for n in names]
    high = [summary[n]['max'] - summary[n]['mean'] for n in names]
    ax.bar(range(len(names)), means, yerr=[low, high], capsize=4, color='#7aa6d6')
    for i, n in enumerate(names):
        ax.plot([i] * len(summary[n]['values']), summary[n]['values'], 'k.', markersize=5)
    ax.set_xticks(range(len(names)), names)
    seeds = sorted({r.get('seed') for r in results}, key=str)
    ax.set_ylabel(f'{metric} (%)')
    ax.set_title(title or f'{metric}: mean over seeds {seeds}, whiskers min-max', fontsize=9)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return fig


def summarise_steps(records: list[dict]) -> dict[str, dict[int, dict[str, float]]]:
    """Per side and batch: the median, min and max over rounds of the step time and the peak memory."""
    grouped: dict[str, dict[int, list[dict]]] = {}
    for r in records:
        if r.get('kind') == 'train':
            grouped.setdefault(r['side'], {}).setdefault(int(r['batch']), []).append(r)
    if not grouped:
        raise ValueError('no step records (kind="train") in the results')
    out: dict[str, dict[int, dict[str, float]]] = {}
    for side, by_batch in grouped.items():
        for batch, rows in sorted(by_batch.items()):
            steps = [float(r['median_step_s']) for r in rows]
            mem = [float(r['peak_rss_mb']) for r in rows]
            out.setdefault(side, {})[batch] = dict(
                step_s=statistics.median(steps),
                step_min=min(steps),
                step_max=max(steps),
                peak_mb=max(mem),
                rounds=len(rows),
            )
    return out


def plot_steps(records: list[dict], out: str, title: str = '') -> Any:
    """Step time (left) and peak memory (right) against the batch size, one line per side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarise_steps(records)
    fig = Figure(figsize=(8.0, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax_t, ax_m = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for side, by_batch in summary.items():
        batches = list(by_batch)
        (line,) = ax_t.plot(batches, [by_batch[b]['step_s'] for b in batches], 'o-', label=side)
        ax_t.fill_between(
            batches,
            [by_batch[b]['step_min'] for b in batches],
            [by_batch[b]['step_max'] for b in batches],
            color=line.get_color(),
            alpha=0.2,
        )
        ax_m.plot(batches, [by_batch[b]['peak_mb'] for b in batches], 'o-', label=side)
    all_batches = sorted({b for by_batch in summary.values() for b in by_batch})
    for ax, label in ((ax_t, 'step time (s), median of rounds'), (ax_m, 'peak RSS (MB)')):
        ax.set_xticks(all_batches)
        ax.set_xlabel('batch size')
        ax.set_ylabel(label)
    ax_t.legend(fontsize=8)
    rounds = sorted({v['rounds'] for by_batch in summary.values() for v in by_batch.values()})
    fig.suptitle(
        title or f'step time and memory against batch ({rounds[-1]} rounds, band: min-max)',
        fontsize=9,
    )
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return fig


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results')
    parser.add_argument('--metric', default='r_mean')
    parser.add_argument('--out')
    args = parser.parse_args(argv)
    out = args.out or str(Path(args.results).with_suffix('.png'))
    records = json.loads(Path(args.results).read_text())
    if any(isinstance(r, dict) and r.get('kind') == 'train' for r in records):
        plot_steps(records, out)
    else:
        plot_recall(records, out, args.metric)
    print(f'plot written to {out}')
    return out


if __name__ == '__main__':
    main()
