"""The base preset on one GPU: training step (ALBEF baseline and the soft-mask recipe) at growing batch
sizes, and retrieval evaluation at a measured fraction of COCO 5K, extrapolated (issue 10, items 5-6).

    python benchmarks/gpu_base_preset.py --out work_dirs/gpu_base_preset.json
    # CPU dry run of the same code at toy sizes (what the test suite runs):
    python benchmarks/gpu_base_preset.py --device cpu --toy --batches 2 --steps 1 --warmup 0 \\
        --retrieval-images 4 --k 2 --out /tmp/gpu_dry.json

Training: the models of ``configs/albef/albef_vit-b16-bert-base_8xb64_4m-30e.py`` (ALBEF baseline) and
``configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-30e.py`` (soft-masked ITM, focal ITC, both
augmented views) at 256 px with random weights (speed does not depend on them), bf16 autocast through
MMEngine's ``AmpOptimWrapper`` and fused AdamW on CUDA; batches from the synthetic shapes data set
through the soft-mask pipeline (captions of 4-21 tokens, the extra image view, word annotations),
built once and cycled. For each batch size in ``--batches`` (ascending, until the first out-of-memory):
the median of ``--steps`` ``model.train_step`` calls after ``--warmup``, pairs/s, peak allocated
memory, the FLOPs of one step (``FlopCounterMode``: matrix products, convolutions and attention,
forward and backward) and MFU = FLOPs / step time / the matmul rate measured in the same run (bf16
8192^3 ``torch.mm`` on CUDA, fp32 on CPU).

Retrieval: the baseline model in eval mode, ``--retrieval-images`` random images at 256 px with 5 random
captions each (8-30 tokens), ITC top-``k`` re-ranked by ITM through the retrieval loop's scoring
(``RetrievalValLoop._score``, fp16 autocast on CUDA). COCO 5K is 5,000 images x 25,000 captions: the
encoding scales with the images and texts, the re-rank with the distinct pairs (about
``(N_img + N_txt) k`` minus the pairs both directions want); the extrapolation multiplies each measured
part by 5,000 / N and says so.

Results are written to ``--out`` after every measurement, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDES = {
    'albef': 'configs/albef/albef_vit-b16-bert-base_8xb64_4m-30e.py',
    'softmask': 'configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-30e.py',
}
DATA = 'configs/softmask/ablation/synthetic_all.py'  # the synthetic set with the soft-mask pipeline
TOY = dict(  # CPU dry-run sizes
    image_backbone=dict(
        model_name='vit_tiny_patch16_224', embed_dim=32, depth=1, num_heads=2, img_size=32
    ),
    text_backbone=dict(
        hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=40
    ),
    fusion=dict(hidden_size=32, encoder_width=32, num_layers=4, num_heads=2, intermediate_size=64),
)


def sync(device) -> None:
    import torch

    if device.type == 'cuda':
        torch.cuda.synchronize()


def matmul_rate(device) -> dict:
    import torch

    n, dtype = (8192, torch.bfloat16) if device.type == 'cuda' else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float('inf')
    for _ in range(5):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 10)
    return dict(n=n, dtype=str(dtype), flops_per_s=2 * n**3 / best)


def strip_pretrained(node):
    """A model config without local weight paths (random weights: timing does not depend on them)."""
    if isinstance(node, dict):
        return {k: strip_pretrained(v) for k, v in node.items() if k != 'pretrained'}
    if isinstance(node, list):
        return [strip_pretrained(v) for v in node]
    return node


def build(side: str, args, device):
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from vlreg.registry import MODELS

    cfg = Config.fromfile(str(ROOT / SIDES[side]))
    model_cfg = Config(dict(model=strip_pretrained(cfg.model.to_dict())))
    if args.toy:
        model_cfg.merge_from_dict(dict(model=TOY))
        model_cfg.model.image_backbone.img_size = args.res
    else:
        model_cfg.model.image_backbone.img_size = args.res
    init_default_scope('vlreg')
    torch.manual_seed(0)
    model = MODELS.build(model_cfg.model).to(device).train()
    optim_cfg = cfg.optim_wrapper.to_dict()
    if device.type == 'cuda':
        optim_cfg['optimizer']['fused'] = True
        if args.amp == 'bf16':
            optim_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    return model, build_optim_wrapper(model, optim_cfg)


@functools.cache
def batches(args_key: tuple, batch: int, count: int = 3) -> list:
    """Three collated batches (built once per size, shared by the sides)."""
    res = args_key[0]
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from vlreg.registry import DATASETS

    cfg = Config.fromfile(str(ROOT / DATA))
    data = cfg.train_dataloader.dataset
    data.image_size = res
    data.num_images = max(data.num_images, batch * count)
    dataset = DATASETS.build(data)
    return [pseudo_collate([dataset[i * batch + j] for j in range(batch)]) for i in range(count)]


def train_record(side: str, batch: int, args, device, rate: float) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, optim = build(side, args, device)
    data = batches((args.res,), batch)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        model.train_step(data[i % len(data)], optim)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == 'cuda' else None
    with FlopCounterMode(display=False) as counter:
        model.train_step(data[0], optim)
    flops = counter.get_total_flops()
    step = statistics.median(times)
    return dict(
        kind='train',
        side=side,
        batch=batch,
        median_step_s=step,
        pairs_per_s=batch / step,
        peak_alloc_gib=peak,
        step_flops=flops,
        mfu=flops / step / rate,
        steps=len(times),
    )


def retrieval_record(args, device) -> dict:
    import torch

    from retrieval_features import encode_features

    from vlreg.engine.loops import RetrievalValLoop

    model, _ = build('albef', args, device)
    model.eval()
    n_img, n_txt = args.retrieval_images, 5 * args.retrieval_images
    g = torch.Generator().manual_seed(0)
    vocab = model.text_backbone.embeddings.word_embeddings.num_embeddings
    ids = torch.randint(1000 % vocab, vocab, (n_txt, 30), generator=g)
    ids[:, 0] = 101 % vocab
    lengths = torch.randint(8, 31, (n_txt,), generator=g)
    mask = (torch.arange(30)[None] < lengths[:, None]).long()
    ids, mask = (ids * mask).to(device), mask.to(device)
    cuda = device.type == 'cuda'
    images = (
        torch.randn(min(128, n_img - s), 3, args.res, args.res, generator=g).to(device)
        for s in range(0, n_img, 128)
    )
    sync(device)
    t0 = time.perf_counter()
    with torch.autocast(device.type, enabled=cuda):
        feats = encode_features(
            model,
            images,
            ids,
            mask,
            [list(range(5 * i, 5 * i + 5)) for i in range(n_img)],
            [t // 5 for t in range(n_txt)],
            text_chunk=512,
            token_dtype=torch.half if cuda else None,
        )
    sync(device)
    t1 = time.perf_counter()
    loop = object.__new__(RetrievalValLoop)
    loop.fp16 = cuda
    loop._init_protocol(args.k, 'itm', args.itm_batch_size, False, False)
    with torch.no_grad():
        loop._score(model, feats, device)
    sync(device)
    t2 = time.perf_counter()
    scale = 5000 / n_img
    return dict(
        kind='retrieval',
        n_images=n_img,
        n_texts=n_txt,
        k=args.k,
        encode_s=t1 - t0,
        rank_and_rerank_s=t2 - t1,
        itm_pairs=loop.work.pairs,
        coco5k_extrapolated_min=(t2 - t0) * scale / 60,
        extrapolation=f'each part x {scale:g} (images, texts and distinct pairs scale with N)',
    )


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--sides', default='albef,softmask')
    p.add_argument('--batches', default='64,128,256')
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--res', type=int, default=256)
    p.add_argument('--amp', choices=['bf16', 'none'], default='bf16')
    p.add_argument('--retrieval-images', type=int, default=1000, help='0 = skip')
    p.add_argument('--k', type=int, default=256)
    p.add_argument('--itm-batch-size', type=int, default=1024)
    p.add_argument('--toy', action='store_true', help='toy model sizes (CPU dry run)')
    p.add_argument('--out', required=True)
    args = p.parse_args()
    if args.toy:
        args.res = min(args.res, 32)
    device = torch.device(args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict = dict(
        device=torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu',
        torch=torch.__version__,
        args=vars(args),
        records=[],
    )

    def save(record: dict) -> None:
        report['records'].append(record)
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps(record), flush=True)

    rate = matmul_rate(device)
    save(dict(kind='matmul', **rate))
    for side in args.sides.split(','):
        for batch in sorted(int(b) for b in args.batches.split(',')):
            try:
                save(train_record(side, batch, args, device, rate['flops_per_s']))
            except torch.cuda.OutOfMemoryError as err:
                save(dict(kind='train', side=side, batch=batch, oom=str(err).splitlines()[0]))
                torch.cuda.empty_cache()
                break
            finally:
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
    if args.retrieval_images:
        save(retrieval_record(args, device))


if __name__ == '__main__':
    main()
