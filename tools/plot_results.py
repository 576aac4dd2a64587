"""PNG plots of the ablation results: recall per variant, with every seed and the seed spread.

Usage: python tools/plot_results.py RESULTS.json [--metric r_mean] [--out RESULTS.png]

RESULTS.json is what ``tools/run_ablation.py`` writes next to its table (one entry per run with
``variant``, ``seed`` and the recalls); the script also calls this after each ablation.
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
    fig.savefig(out)
    return fig


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results')
    parser.add_argument('--metric', default='r_mean')
    parser.add_argument('--out')
    args = parser.parse_args(argv)
    out = args.out or str(Path(args.results).with_suffix('.png'))
    plot_recall(json.loads(Path(args.results).read_text()), out, args.metric)
    print(f'plot written to {out}')
    return out


if __name__ == '__main__':
    main()
