"""Train every ablation variant (baseline, +soft mask, +focal, +augmentation, all) with several seeds on CPU
and write a results table: retrieval R@1/5/10 and their mean on held-out images and, on synthetic data,
the pointing accuracy of each object word's Grad-CAM peak.

    python tools/run_ablation.py --dataset synthetic --seeds 0 1 --iters 400
    python tools/run_ablation.py --dataset flickr8k --seeds 0 1 --epochs 1

Each run is one `tools/train.py` process on configs/softmask/ablation/<dataset>_<variant>.py (plus a
`tools/test.py` process with the pointing loop on synthetic data). A finished run leaves result.json in its
work dir and is skipped when the script is started again, so an interrupted ablation resumes where it
stopped. The table goes to --out (markdown) and its raw numbers to the same path with .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ('baseline', 'softmask', 'focal', 'augment', 'all')
METRICS = ('txt_r1', 'txt_r5', 'txt_r10', 'img_r1', 'img_r5', 'img_r10', 'r_mean')


def train_options(args: argparse.Namespace, seed: int) -> list[str]:
    opts = [f'randomness.seed={seed}', 'default_hooks.logger.interval=50']
    if args.dataset == 'synthetic':
        # the demo schedule (4 epochs, 2 captions per image, batch 32): images = iterations * 4
        opts.append(f'train_dataloader.dataset.num_images={args.iters * 4}')
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
    return opts


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

    cfg = Config.fromfile(str(ROOT / f'configs/softmask/ablation/{dataset}_softmask.py'))
    return int(cfg.model.losses.itm_softmask.layer)


def pointing_config(config: str, work: Path, dataset: str = 'synthetic') -> str:
    """The variant's config with its test loop replaced by the Grad-CAM pointing evaluation (on the
    layer the dataset's soft mask explains, :func:`softmask_layer`), written next to the run."""
    sys.path.insert(0, str(ROOT))
    import vlreg  # noqa: F401
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / config))
    cfg.test_cfg = dict(type='GradCAMPointingLoop', layer=softmask_layer(dataset), num_captions=5)
    cfg.test_evaluator = dict(type='PointingMetric')
    path = work / 'pointing_config.py'
    cfg.dump(str(path))
    return str(path)


def one_run(args: argparse.Namespace, variant: str, seed: int) -> dict:
    work = Path(args.work_dir) / args.dataset / f'{variant}_seed{seed}'
    result_file = work / 'result.json'
    if result_file.exists():
        return json.loads(result_file.read_text())
    work.mkdir(parents=True, exist_ok=True)
    config = f'configs/softmask/ablation/{args.dataset}_{variant}.py'
    start = time.time()
    run(
        [
            sys.executable,
            'tools/train.py',
            config,
            '--work-dir',
            str(work),
            '--cfg-options',
            *train_options(args, seed),
        ],
        work / 'train.out',
    )
    result = dict(
        variant=variant, seed=seed, config=config, train_seconds=round(time.time() - start)
    )
    result.update(last_retrieval(work))
    if args.dataset == 'synthetic':
        ckpt = next(
            iter(sorted(work.glob('epoch_*.pth'), key=lambda p: int(p.stem.split('_')[1]))[-1:])
        )
        out = work / 'pointing.json'
        run(
            [
                sys.executable,
                'tools/test.py',
                pointing_config(config, work, args.dataset),
                str(ckpt),
                '--out',
                str(out),
                '--work-dir',
                str(work / 'pointing'),
            ],
            work / 'pointing.out',
        )
        metrics = json.loads(out.read_text())['metrics']
        result['pointing_acc'] = metrics['pointing/acc']
    result_file.write_text(json.dumps(result, indent=2))
    return result


def table(results: list[dict], dataset: str) -> str:
    cols = list(METRICS) + (['pointing_acc'] if dataset == 'synthetic' else [])
    head = '| variant | ' + ' | '.join(cols) + ' | train s |'
    lines = [head, '|' + '---|' * (len(cols) + 2)]
    for variant in VARIANTS:
        runs = [r for r in results if r['variant'] == variant]
        if not runs:
            continue
        cells = []
        for c in cols:
            vals = [r[c] for r in runs]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f'{statistics.mean(vals):.1f} ± {sd:.1f}')
        secs = statistics.mean(r['train_seconds'] for r in runs)
        lines.append(f'| {variant} | ' + ' | '.join(cells) + f' | {secs:.0f} |')
    seeds = sorted({r['seed'] for r in results})
    lines.append('')
    lines.append(f'Mean ± standard deviation over seeds {seeds} (percent).')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', choices=['synthetic', 'flickr8k'], default='synthetic')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--iters', type=int, default=400, help='synthetic: training iterations')
    parser.add_argument(
        '--epochs', type=int, default=1, help='flickr8k: training epochs (125 iters)'
    )
    parser.add_argument(
        '--data-root', help='flickr8k: folder of captions.json (default: the config)'
    )
    parser.add_argument('--work-dir', default='work_dirs/ablation')
    parser.add_argument('--out', help='markdown table (default: <work-dir>/<dataset>.md)')
    args = parser.parse_args()
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
    sys.path.insert(0, str(ROOT / 'tools'))
    from plot_results import plot_recall  # tools/plot_results.py

    plot_recall(results, str(out.with_suffix('.png')), title=f'{args.dataset}: r_mean per variant')
    print(table(results, args.dataset))


if __name__ == '__main__':
    main()
