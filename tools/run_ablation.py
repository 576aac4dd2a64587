"""Train every ablation variant (baseline, +soft mask, +focal, +augmentation, all) with several seeds on CPU
and write a results table: retrieval R@1/5/10 and their mean on held-out images and, on synthetic data and
on real photos, the pointing accuracy of each object word's Grad-CAM peak (with its chance level).

    python tools/run_ablation.py --dataset synthetic --seeds 0 1 --iters 400
    python tools/run_ablation.py --dataset flickr8k --seeds 0 1 --epochs 1
    python tools/run_ablation.py --dataset flickr8k-real --seeds 0 1 2

Each run is one `tools/train.py` process on configs/softmask/ablation/<dataset>_<variant>.py (plus a
`tools/test.py` process with the pointing loop on synthetic data and on flickr8k-real). A finished run
leaves result.json in its work dir and is skipped when the script is started again, so an interrupted
ablation resumes where it stopped (a run interrupted mid-way starts again from its beginning). The table
goes to --out (markdown) and its raw numbers to the same path with .json. Below the mean ± standard
deviation of every variant, the table gives each variant's paired difference to the baseline of the same
seed with its 95 % t-interval (:func:`paired_difference`).

flickr8k-real: the real-photo model (configs/albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py,
472 iterations at batch 64, evaluated on the held-out 200 Flickr8k images x 1000 captions, ITC top-32
re-ranked by ITM, 224 px) in six variants (baseline, softmask, softmask-warmup, focal, augment, all),
seeds 0 1 2 by default; pointing on the 80 COCO photos with boxes of ../shared/data/coco_mini_train2017
(configs/_base_/datasets/coco_mini_pointing.py), on the fusion layer the soft mask explains. --iters N
compresses the schedule to N iterations (every iteration count of the config scaled by N / 472).
Budget: each run is about 30 min of training + 2 min of retrieval test + a few minutes of pointing on
this 2-core machine, so 6 variants x 3 seeds is about 9-10 h (docs/ablation.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ('baseline', 'softmask', 'focal', 'augment', 'all')
REAL_VARIANTS = ('baseline', 'softmask', 'softmask-warmup', 'focal', 'augment', 'all')
DATASET_VARIANTS = {'synthetic': VARIANTS, 'flickr8k': VARIANTS, 'flickr8k-real': REAL_VARIANTS}
DEFAULT_SEEDS = {'synthetic': [0, 1], 'flickr8k': [0, 1], 'flickr8k-real': [0, 1, 2]}
POINTING_DATASETS = ('synthetic', 'flickr8k-real')
COCO_POINTING = 'configs/_base_/datasets/coco_mini_pointing.py'
METRICS = ('txt_r1', 'txt_r5', 'txt_r10', 'img_r1', 'img_r5', 'img_r10', 'r_mean')
# Student t quantiles t_{0.975, df} for df = 1..30 (standard tables); beyond, an expansion in 1 / df
T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
    2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
    2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
    2.048407, 2.045230, 2.042272,
)  # fmt: skip
Z975 = 1.959963985


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (two-sided 95 %): the table for
    df <= 30, the Cornish-Fisher expansion to 1 / df^3 beyond (error below 2e-6 there)."""
    if df < 1:
        raise ValueError(f'degrees of freedom must be >= 1, got {df}')
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def paired_difference(
    baseline: Sequence[float], variant: Sequence[float]
) -> tuple[float, float, float]:
    """Mean of ``variant[i] - baseline[i]`` (pairs of the same seed) and its 95 % t-interval
    ``mean ± t_{0.975, n-1} * sd / sqrt(n)`` (sd: sample standard deviation of the differences);
    the interval is (nan, nan) for a single pair."""
    if len(baseline) != len(variant) or not baseline:
        raise ValueError(f'need equally many pairs, got {len(baseline)} and {len(variant)}')
    diffs = [v - b for b, v in zip(baseline, variant)]
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return mean, float('nan'), float('nan')
    half = t_quantile_975(len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, mean - half, mean + half


def schedule_options(cfg: dict, iters: int) -> list[str]:
    """``--cfg-options`` compressing an iteration-based schedule to ``iters`` iterations: the loop's
    length and validation interval, and every scheduler's begin / end and every custom hook's
    ``warmup_iters`` / ``start_iter`` / ``ramp_iters`` scaled by ``iters / max_iters`` (rounded, a
    positive count stays >= 1), so that warm-ups keep their share of the run."""
    total = int(cfg['train_cfg']['max_iters'])

    def scaled(x: int) -> int:
        return max(1, round(x * iters / total)) if x > 0 else 0

    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']
    for i, sched in enumerate(cfg.get('param_scheduler') or []):
        opts += [
            f'param_scheduler.{i}.{k}={scaled(sched[k])}' for k in ('begin', 'end') if k in sched
        ]
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        keys = ('warmup_iters', 'start_iter', 'ramp_iters')
        opts += [f'custom_hooks.{i}.{k}={scaled(hook[k])}' for k in keys if k in hook]
    return opts


def variant_config(dataset: str, variant: str) -> str:
    return f'configs/softmask/ablation/{dataset}_{variant}.py'


def train_options(args: argparse.Namespace, seed: int, variant: str = 'baseline') -> list[str]:
    opts = [f'randomness.seed={seed}', 'default_hooks.logger.interval=50']
    if args.dataset == 'synthetic':
        # the demo schedule (4 epochs, 2 captions per image, batch 32): images = iterations * 4
        opts.append(f'train_dataloader.dataset.num_images={(args.iters or 400) * 4}')
    elif args.dataset == 'flickr8k-real':
        if args.iters:
            from mmengine.config import Config

            cfg = Config.fromfile(str(ROOT / variant_config(args.dataset, variant)))
            opts += schedule_options(cfg, args.iters)
    else:
        opts += [
            f'train_cfg.max_epochs={args.epochs}',
            f'train_cfg.val_interval={args.epochs}',
            f'param_scheduler.1.end={args.epochs}',
        ]
        if args.data_root:
            opts += [
                f'{k}.dataset.data_root={args.data_root}'
                for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
            ]
    return opts + list(args.cfg_options or [])


def run(cmd: list[str], log: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1')
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd[:3])} ... failed (exit {proc.returncode}); see {log}')


def last_retrieval(work: Path) -> dict:
    lines = next(work.glob('*/vis_data/scalars.json')).read_text().splitlines()
    vals = [json.loads(line) for line in lines if 'retrieval/r_mean' in line]
    if not vals:
        raise RuntimeError(f'no retrieval evaluation logged in {work}')
    return {k: vals[-1][f'retrieval/{k}'] for k in METRICS}


def softmask_layer(dataset: str) -> int:
    """The fusion layer the dataset's soft-mask variant explains (its ``SoftMaskITMLoss`` layer, set
    once in that config): every variant's pointing evaluation explains it, so that all are compared on
    the same layer (variants without the soft mask have no Grad-CAM layer of their own)."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / variant_config(dataset, 'softmask')))
    return int(cfg.model.losses.itm_softmask.layer)


def pointing_config(config: str, work: Path, dataset: str = 'synthetic') -> str:
    """The variant's config with its test loop replaced by the Grad-CAM pointing evaluation (on the
    layer the dataset's soft mask explains, :func:`softmask_layer`), written next to the run. Synthetic
    data: the variant's own test set; flickr8k-real: the COCO photos with boxes (:data:`COCO_POINTING`)."""
    sys.path.insert(0, str(ROOT))
    import vlreg  # noqa: F401
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / config))
    layer = softmask_layer(dataset)
    if dataset == 'flickr8k-real':
        coco = Config.fromfile(str(ROOT / COCO_POINTING))
        cfg.test_dataloader = coco.pointing_dataloader
        cfg.test_cfg = dict(coco.pointing_cfg, layer=layer)
        cfg.test_evaluator = coco.pointing_evaluator
    else:
        cfg.test_cfg = dict(type='GradCAMPointingLoop', layer=layer, num_captions=5)
        cfg.test_evaluator = dict(type='PointingMetric')
    path = work / 'pointing_config.py'
    cfg.dump(str(path))
    return str(path)


def last_checkpoint(work: Path) -> str:
    """The run's latest complete checkpoint (the one auto-resume would take)."""
    sys.path.insert(0, str(ROOT))
    import vlreg
    from vlreg.utils.checkpoint_io import find_resumable

    vlreg.setup_env()  # the checkpoints' weights-only load needs the stack's allowed types
    ckpt = find_resumable(str(work))
    if ckpt is None:
        raise RuntimeError(f'no complete checkpoint in {work}')
    return ckpt


def one_run(args: argparse.Namespace, variant: str, seed: int) -> dict:
    work = Path(args.work_dir) / args.dataset / f'{variant}_seed{seed}'
    result_file = work / 'result.json'
    if result_file.exists():
        return json.loads(result_file.read_text())
    work.mkdir(parents=True, exist_ok=True)
    config = variant_config(args.dataset, variant)
    start = time.time()
    run(
        [
            sys.executable,
            'tools/train.py',
            config,
            '--work-dir',
            str(work),
            '--cfg-options',
            *train_options(args, seed, variant),
        ],
        work / 'train.out',
    )
    result = dict(
        variant=variant, seed=seed, config=config, train_seconds=round(time.time() - start)
    )
    result.update(last_retrieval(work))
    if args.dataset in POINTING_DATASETS:
        out = work / 'pointing.json'
        extra = ['--cfg-options', *args.pointing_options] if args.pointing_options else []
        run(
            [
                sys.executable,
                'tools/test.py',
                pointing_config(config, work, args.dataset),
                last_checkpoint(work),
                '--out',
                str(out),
                '--work-dir',
                str(work / 'pointing'),
                *extra,
            ],
            work / 'pointing.out',
        )
        metrics = json.loads(out.read_text())['metrics']
        result['pointing_acc'] = metrics['pointing/acc']
        if 'pointing/chance' in metrics:
            result['pointing_chance'] = metrics['pointing/chance']
    result_file.write_text(json.dumps(result, indent=2))
    return result


def result_columns(results: list[dict], dataset: str) -> list[str]:
    """The metrics of the table: retrieval, then pointing and its chance level where measured."""
    extra = [c for c in ('pointing_acc', 'pointing_chance') if any(c in r for r in results)]
    return list(METRICS) + (extra if dataset in POINTING_DATASETS else [])


def paired_table(results: list[dict], dataset: str, cols: Sequence[str]) -> list[str]:
    """Markdown lines: every variant's paired difference to the baseline (seeds both have), mean and
    95 % t-interval per metric."""
    by_seed = {r['seed']: r for r in results if r['variant'] == 'baseline'}
    lines = ['| variant - baseline | pairs | ' + ' | '.join(cols) + ' |']
    lines.append('|' + '---|' * (len(cols) + 2))
    for variant in DATASET_VARIANTS[dataset]:
        runs = [r for r in results if r['variant'] == variant and r['seed'] in by_seed]
        if variant == 'baseline' or not runs:
            continue
        cells = []
        for c in cols:
            pairs = [
                (by_seed[r['seed']][c], r[c]) for r in runs if c in r and c in by_seed[r['seed']]
            ]
            if not pairs:
                cells.append('–')
                continue
            mean, lo, hi = paired_difference([p[0] for p in pairs], [p[1] for p in pairs])
            cells.append(
                f'{mean:+.1f} [{lo:+.1f}, {hi:+.1f}]' if len(pairs) > 1 else f'{mean:+.1f}'
            )
        lines.append(f'| {variant} | {len(runs)} | ' + ' | '.join(cells) + ' |')
    return lines


def table(results: list[dict], dataset: str) -> str:
    cols = result_columns(results, dataset)
    head = '| variant | ' + ' | '.join(cols) + ' | train s |'
    lines = [head, '|' + '---|' * (len(cols) + 2)]
    for variant in DATASET_VARIANTS[dataset]:
        runs = [r for r in results if r['variant'] == variant]
        if not runs:
            continue
        cells = []
        for c in cols:
            vals = [r[c] for r in runs if c in r]
            if not vals:
                cells.append('–')
                continue
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f'{statistics.mean(vals):.1f} ± {sd:.1f}')
        secs = statistics.mean(r['train_seconds'] for r in runs)
        lines.append(f'| {variant} | ' + ' | '.join(cells) + f' | {secs:.0f} |')
    seeds = sorted({r['seed'] for r in results})
    lines.append('')
    lines.append(f'Mean ± standard deviation over seeds {seeds} (percent).')
    if 'pointing_chance' in cols:
        lines[-1] += ' pointing_chance: the accuracy of a uniformly drawn Grad-CAM peak.'
    paired = paired_table(results, dataset, [c for c in cols if c != 'pointing_chance'])
    if len(paired) > 2:
        lines += ['', *paired, '']
        lines.append(
            'Paired difference to the baseline of the same seed (percentage points): mean '
            '[95 % t-interval, mean ± t_{0.975, n-1} · sd / √n over the n pairs]; an interval '
            'that excludes 0 is a difference the seeds resolve.'
        )
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', choices=list(DATASET_VARIANTS), default='synthetic')
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=sorted(set(REAL_VARIANTS)),
        help="default: the dataset's (flickr8k-real adds softmask-warmup)",
    )
    parser.add_argument(
        '--seeds', nargs='+', type=int, help='default: 0 1 (flickr8k-real: 0 1 2; use >= 3 there)'
    )
    parser.add_argument(
        '--iters',
        type=int,
        help='synthetic: training iterations (default 400); flickr8k-real: compress the 472-iteration '
        'schedule to this many (default: the full schedule)',
    )
    parser.add_argument(
        '--epochs', type=int, default=1, help='flickr8k: training epochs (125 iters)'
    )
    parser.add_argument(
        '--data-root', help='flickr8k: folder of captions.json (default: the config)'
    )
    parser.add_argument('--work-dir', default='work_dirs/ablation')
    parser.add_argument('--out', help='markdown table (default: <work-dir>/<dataset>.md)')
    parser.add_argument(
        '--cfg-options', nargs='+', help='extra tools/train.py --cfg-options for every run'
    )
    parser.add_argument(
        '--pointing-options', nargs='+', help='extra tools/test.py --cfg-options for pointing'
    )
    args = parser.parse_args(argv)
    args.variants = args.variants or list(DATASET_VARIANTS[args.dataset])
    unknown = sorted(set(args.variants) - set(DATASET_VARIANTS[args.dataset]))
    if unknown:
        parser.error(f'{args.dataset} has no variant {unknown}')
    args.seeds = args.seeds if args.seeds is not None else DEFAULT_SEEDS[args.dataset]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = []
    for seed in args.seeds:
        for variant in args.variants:
            t0 = time.time()
            results.append(one_run(args, variant, seed))
            print(
                f'[{len(results)}/{len(args.seeds) * len(args.variants)}] {args.dataset} {variant} '
                f'seed {seed}: r_mean {results[-1]["r_mean"]:.1f} ({time.time() - t0:.0f} s)',
                flush=True,
            )
    out = Path(args.out or Path(args.work_dir) / f'{args.dataset}.md')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table(results, args.dataset) + '\n')
    out.with_suffix('.json').write_text(json.dumps(results, indent=2))
    sys.path.insert(0, str(ROOT))
    from vlreg.cli import load_tool

    load_tool('plot_results').plot_recall(
        results, str(out.with_suffix('.png')), title=f'{args.dataset}: r_mean per variant'
    )
    print(table(results, args.dataset))


if __name__ == '__main__':
    main()
