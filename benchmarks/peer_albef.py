"""vlreg beside ALBEF's own code on this machine: training step and retrieval evaluation, one run.

    python benchmarks/peer_albef.py --peer-python $P/venv/bin/python --albef-src $P/albef-src \\
        --vocab-dir $P/vocab [--batches 16,32] [--rounds 4] [--steps 7] [--warmup 2] \\
        [--retrieval-n 200] [--k 128] [--threads 2] [--out work_dirs/peer_albef]

(``$P``: the peer's scratch folder, set up as ``../shared/peer/README.md`` says.)

Training step (ALBEF's tiny preset of the harness: ViT 4 x 192, 3 heads, patch 16, 224 px; BERT
width 256, 4 heads, FFN 1024, 4 text + 4 fusion layers, vocabulary 30,522; embed 256, queue
65,536, momentum 0.995, alpha 0.4; AdamW lr 1e-4, weight decay 0.02 off biases and norms):

* ``albef``: ``../shared/peer/albef_bench.py train`` (ALBEF's ``model_pretrain.ALBEF``, ITC + ITM
  + MLM, captions tokenized to at most 25 tokens, padded to the batch's longest);
* ``vlreg_baseline``: vlreg's ALBEF (``configs/softmask/ablation/synthetic_baseline.py`` at the
  same sizes) through ``model.train_step`` on batches of its synthetic pipeline at the same
  resolution (captions at most 25 tokens, padded to the batch's longest);
* ``vlreg_softmask``: the paper's recipe (``synthetic_all.py``: soft-masked ITM, focal ITC, both
  augmented views) at the same sizes.

Every round runs each configuration once, each in a fresh process (so peak RSS, ``ru_maxrss``,
is per configuration), in an order that alternates between rounds; each process reports the
median of ``--steps`` steps after ``--warmup``. The report gives, per configuration, the median
over rounds of those medians, images/s, peak RSS, and the ratio ALBEF / vlreg per round.

Retrieval evaluation (same tiny model sizes, ``--retrieval-n`` random images x 5 captions each,
``k``): ALBEF's ``Retrieval.evaluation()`` through the harness, and vlreg's retrieval scoring (the
loop's encode -> ITC top-k -> distinct-pair ITM path) on random inputs of the same shapes; both
report the ITM-scored pairs (ALBEF: ``6 N k``; vlreg: the distinct pairs the two directions want).

FLOPs and the distance to the limit: a separate process measures this machine's fp32 matmul rate
(``torch.mm`` of 2048 x 2048 matrices, best of 5 runs of 10) in every round; the FLOPs of one step
are counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 x multiply-adds of every matrix
product, convolution and attention op, forward and backward, plus the SDPA CPU kernels, which the
counter does not know, with torch's own SDPA formulas; element-wise work is not counted). Each
step's achieved FLOP/s = counted FLOPs / median step time, reported as a fraction of the matmul
rate.

Writes ``results.json`` (every process's record), ``results.md`` (the tables) and ``steps.png`` (step time
and peak memory against the batch size, ``tools/plot_results.py``) under ``--out``.
Never time anything while another heavy job runs: two CPU-heavy processes at once slow both by far
more than 2x. Smoke run: ``--rounds 1 --steps 1 --warmup 0 --batches 4 --retrieval-n 8 --k 4``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT.parent / 'shared' / 'peer' / 'albef_bench.py'
PEER_SIZES = dict(  # the harness's 'tiny' size, in vlreg's config keys
    image_backbone=dict(model_name='vit_tiny_patch16_224', embed_dim=192, depth=4, num_heads=3),
    text_backbone=dict(
        vocab_size=30522,
        hidden_size=256,
        num_layers=4,
        num_heads=4,
        intermediate_size=1024,
        max_position_embeddings=512,
    ),
    fusion=dict(
        hidden_size=256,
        encoder_width=192,
        num_layers=4,
        num_heads=4,
        intermediate_size=1024,
        layer_offset=4,
    ),
    embed_dim=256,
    momentum=0.995,
    alpha=0.4,
)
VARIANTS = dict(vlreg_baseline='synthetic_baseline.py', vlreg_softmask='synthetic_all.py')


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------ child processes
def flop_counter():
    """A FlopCounterMode that also counts the CPU SDPA kernels."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def fwd(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def bwd(grad, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad, query, key, value)

    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: fwd,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: bwd,
    }
    return FlopCounterMode(display=False, custom_mapping=mapping)


def child_matmul(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float('inf')
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - t0) / 10)
    return dict(kind='matmul', flops_per_s=2 * 2048**3 / best, threads=torch.get_num_threads())


def harness_module():
    """The peer harness as a module (standard-library imports only at its module level)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('albef_bench_module', HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_tokenizer(node, tokenizer: dict):
    """``node`` (a pipeline config) with every ``tokenizer=`` entry replaced by ``tokenizer``."""
    if isinstance(node, dict):
        return {
            key: tokenizer if key == 'tokenizer' else with_tokenizer(value, tokenizer)
            for key, value in node.items()
        }
    if isinstance(node, (list, tuple)):
        return [with_tokenizer(value, tokenizer) for value in node]
    return node


def build_vlreg(variant: str, res: int, queue: int, batch: int, vocab_dir: str | None = None):
    """vlreg's model, optimizer and three training batches at the peer's sizes.

    With ``vocab_dir`` the batches carry the captions ALBEF's side trains on (the harness's
    ``CAPTIONS``, drawn with ``random.Random(0)`` as the harness draws them), tokenized by vlreg's
    BERT tokenizer through the variant's own pipeline (masking, word annotations, the extra view),
    on the synthetic data set's images: the same caption lengths on both sides."""
    import random

    sys.path.insert(0, str(ROOT))
    import torch
    import vlreg  # noqa: F401
    from mmengine.config import Config
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from vlreg.registry import DATASETS, MODELS

    cfg = Config.fromfile(str(ROOT / 'configs/softmask/ablation' / VARIANTS[variant]))
    cfg.merge_from_dict(dict(model=PEER_SIZES))
    cfg.model.image_backbone.img_size = res
    cfg.model.losses.itc.update(embed_dim=256, queue_size=queue)
    cfg.train_dataloader.dataset.image_size = res
    cfg.optim_wrapper.optimizer.update(lr=1e-4, weight_decay=0.02)
    init_default_scope('vlreg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    if vocab_dir is None:
        sample = dataset.__getitem__
    else:
        from vlreg.datasets.synthetic import render_scene

        captions, rng = harness_module().CAPTIONS, random.Random(0)
        tokenizer = dict(type='BertTokenizer', path=vocab_dir)
        pipeline = Compose(with_tokenizer(list(cfg.train_dataloader.dataset.pipeline), tokenizer))

        def sample(idx: int):
            info = dataset.get_data_info(idx)
            info.pop('gt_word_indices', None)  # the synthetic caption's words; not this one's
            img, _ = render_scene(info.pop('scene'))
            info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            info['caption'] = rng.choice(captions)
            return pipeline(info)

    batches = [
        pseudo_collate([sample((i * batch + j) % len(dataset)) for j in range(batch)])
        for i in range(3)
    ]
    return model, optim, batches


def child_vlreg_train(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, optim, batches = build_vlreg(
        args.variant, args.res, args.queue, args.batch, args.vocab_dir
    )
    times = []
    for i in range(args.warmup + args.steps):
        data = batches[i % len(batches)]
        t0 = time.perf_counter()
        model.train_step(data, optim)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    with flop_counter() as fc:
        model.train_step(batches[0], optim)
    med = statistics.median(times)
    return dict(
        kind='train',
        side=args.variant,
        batch=args.batch,
        image_res=args.res,
        queue=args.queue,
        median_step_s=med,
        img_per_s=args.batch / med,
        peak_rss_mb=peak_rss_mb(),
        step_flops=fc.get_total_flops(),
        threads=torch.get_num_threads(),
        steps=len(times),
    )


def child_albef_flops(args) -> dict:
    """Run under the peer's python: FLOPs of one ALBEF step built by the harness's functions."""
    import random
    import types

    sys.path.insert(0, str(HARNESS.parent))
    import albef_bench as hb

    hb.setup(args.albef_src)
    import torch
    from optim import create_optimizer

    ns = types.SimpleNamespace(albef_src=args.albef_src, vocab_dir=args.vocab_dir, work=args.work)
    model, tok, _ = hb.build_pretrain(ns, 'tiny', args.res, args.queue)
    model.train()
    optimizer = create_optimizer(
        types.SimpleNamespace(opt='adamW', lr=1e-4, weight_decay=0.02), model
    )
    rng = random.Random(0)
    image = torch.randn(args.batch, 3, args.res, args.res)
    text = tok(
        [rng.choice(hb.CAPTIONS) for _ in range(args.batch)],
        padding='longest',
        truncation=True,
        max_length=25,
        return_tensors='pt',
    )
    with flop_counter() as fc:
        optimizer.zero_grad()
        sum(model(image, text, alpha=0.4)).backward()
        optimizer.step()
    return dict(
        kind='flops',
        side='albef',
        batch=args.batch,
        step_flops=fc.get_total_flops(),
        text_len=int(text.input_ids.shape[1]),
    )


def shared_checkpoint(args) -> Path:
    """Where ALBEF's side leaves its retrieval model and score matrices for vlreg's side."""
    return Path(args.work) / f'albef_retrieval_n{args.n}_k{args.k}_res{args.res}.pt'


def compare_rankings(mine, theirs, sims, k: int, tol: float = 1e-4) -> dict:
    """vlreg's score matrix against ALBEF's on the same model: both fill the candidates outside
    a query's ITC top-k with -100. Counts the rows whose top-k candidate sets agree and the rows
    whose candidates are ordered alike (a pair of candidates counts as ordered when ALBEF's
    scores differ by more than ``tol``: exact ties, such as duplicate captions, may go either
    way), the largest score difference on the candidates both sides scored, and of the rows whose
    top-k sets differ those whose k-th and (k+1)-th ITC similarities (vlreg's ``sims``) tie
    within 1e-6 (either choice is a correct top-k)."""

    mine, theirs = mine.float(), theirs.float()
    a, b = theirs > -100, mine > -100
    both = a & b
    same_set = (a == b).all(1)
    diff = (mine - theirs).abs()[both]
    ordered = 0
    for row in range(theirs.shape[0]):
        cols = both[row].nonzero().flatten()
        x, y = theirs[row, cols], mine[row, cols]
        must = (x[:, None] - x[None, :]) > tol
        ordered += bool(((y[:, None] - y[None, :]) > 0)[must].all())
    boundary = sims.float().topk(min(k + 1, sims.shape[1]), dim=1).values
    tied = (boundary[:, -2] - boundary[:, -1]).abs() <= 1e-6 if sims.shape[1] > k else same_set
    return dict(
        rows=int(theirs.shape[0]),
        same_topk_set_rows=int(same_set.sum()),
        differing_sets_at_a_tie=int((~same_set & tied).sum()),
        same_order_rows=ordered,
        max_abs_score_diff=float(diff.max()) if diff.numel() else 0.0,
        tie_tolerance=tol,
    )


def harness_retrieval_set(n: int, res: int):
    """The harness's ``RandomRetrievalSet``: the very images and captions ALBEF's side scores."""
    return harness_module().RandomRetrievalSet(n, res)


def child_vlreg_retrieval(args) -> dict:
    import torch
    from vlreg.datasets.tokenizers import BertTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    model, _, _ = build_vlreg('vlreg_baseline', args.res, args.queue, 2)
    from retrieval_features import encode_features

    from vlreg.engine.loops import RetrievalValLoop
    from vlreg.evaluation import retrieval_metrics

    shared = shared_checkpoint(args)
    if shared.is_file():  # ALBEF's side ran first: score its very model
        from vlreg.models.utils.albef_convert import convert_albef_state_dict

        albef = torch.load(shared, map_location='cpu', weights_only=True)
        state = convert_albef_state_dict(
            albef['state'], fusion_layer=PEER_SIZES['text_backbone']['num_layers']
        )
        state.pop('losses.itc.idx_queue', None)  # ALBEF's retrieval queue of image ids
        missing = model.load_state_dict(state, strict=False).missing_keys
        if any(not key.startswith(('mlm_head.', 'mlm_head_m.')) for key in missing):
            raise RuntimeError(f"ALBEF retrieval model does not fill vlreg's: {missing}")
    model.eval()
    dataset = harness_retrieval_set(args.n, args.res)
    n_img, n_txt = len(dataset), len(dataset.text)
    # vlreg's tokenizer (ALBEF's convention: [CLS] first, no [SEP]) at ALBEF's evaluation
    # max_length of 30; ALBEF pads every caption to 30, vlreg to the longest and its re-rank
    # computes on the real tokens only
    tokenizer = BertTokenizer(args.vocab_dir)
    encoded = [tokenizer.encode(caption, 30) for caption in dataset.text]
    longest = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), longest), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(encoded), longest, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e)
        mask[row, : len(e)] = 1

    img2txt = [dataset.img2txt[i] for i in range(n_img)]
    txt2img = [dataset.txt2img[t] for t in range(n_txt)]

    def score() -> tuple[float, float, RetrievalValLoop]:
        t0 = time.perf_counter()
        images = (
            torch.stack([dataset[i][0] for i in range(s, min(s + 64, n_img))])
            for s in range(0, n_img, 64)
        )
        feats = encode_features(model, images, ids, mask, img2txt, txt2img)
        t1 = time.perf_counter()
        with torch.no_grad():
            loop = object.__new__(RetrievalValLoop)
            loop.fp16 = False
            loop._init_protocol(args.k, 'itm', 256, False, True)
            loop.payload = loop._score(model, feats, torch.device('cpu'))
            loop.sims = feats.image_embed @ feats.text_embed.t()
        return time.perf_counter() - t0, t1 - t0, loop

    total, encode, loop = score()  # timed: no FLOP counter in this pass
    with flop_counter() as fc:  # counted in a second, untimed pass of the same work
        score()
    same, sims = None, loop.sims
    if shared.is_file():
        same = dict(
            i2t=compare_rankings(loop.payload['scores_i2t'], albef['s_i2t'], sims, args.k),
            t2i=compare_rankings(loop.payload['scores_t2i'], albef['s_t2i'], sims.t(), args.k),
        )
        shared.unlink()  # one comparison per ALBEF run
    return dict(
        kind='retrieval',
        side='vlreg',
        n_images=n_img,
        n_texts=n_txt,
        k=args.k,
        total_s=total,
        encode_s=encode,
        rerank_s=total - encode,
        itm_pairs_scored=loop.work.pairs,
        fusion_calls=loop.work.calls,
        image_kv_projections=loop.work.image_kv_rows,
        text_cache_rows=loop.work.text_cache_rows,
        text_tokens_real=int(mask.sum()),
        text_tokens_albef=30 * n_txt,
        total_flops=fc.get_total_flops(),
        shared_checkpoint=same,
        # ALBEF's itm_eval leaves exact ties (duplicate captions here) to its sort; vlreg's two
        # tie rules bound any such order
        r_mean={
            ties: retrieval_metrics(
                loop.payload['scores_i2t'],
                loop.payload['scores_t2i'],
                img2txt,
                txt2img,
                ties=ties,
            )['r_mean']
            for ties in ('pessimistic', 'optimistic')
        },
        peak_rss_mb=peak_rss_mb(),
        threads=torch.get_num_threads(),
    )


def child_albef_retrieval(args) -> None:
    """Run under the peer's python: the harness's ``retrieval`` sub-command. The peer subset lacks
    ALBEF's ``vqaTools`` / ``refTools`` (VQA and grounding metric code that ``dataset/utils.py``
    imports at module level and retrieval never calls); empty stand-in modules are registered so
    the import succeeds."""
    import types

    for name in (
        'vqaTools',
        'vqaTools.vqa',
        'vqaTools.vqaEval',
        'refTools',
        'refTools.evaluation',
        'refTools.evaluation.refEvaluation',
    ):
        module = types.ModuleType(name)
        module.VQA = module.VQAEval = module.RefEvaluation = None
        sys.modules.setdefault(name, module)
    sys.path.insert(0, str(HARNESS.parent))
    import albef_bench as hb

    # ALBEF's evaluation() wrapped (timing unchanged): its model and score matrices of the timed
    # run are saved for vlreg's side to load and compare (the shared checkpoint)
    hb.setup(args.albef_src)
    import Retrieval
    import torch

    evaluation = Retrieval.evaluation

    def keep(model, data_loader, tokenizer, device, config):
        s_i2t, s_t2i = evaluation(model, data_loader, tokenizer, device, config)
        if len(data_loader.dataset) == args.n:
            shared = dict(state=model.state_dict(), s_i2t=torch.as_tensor(s_i2t))
            shared['s_t2i'] = torch.as_tensor(s_t2i)
            torch.save(shared, shared_checkpoint(args))
        return s_i2t, s_t2i

    Retrieval.evaluation = keep
    sys.argv = [
        str(HARNESS),
        '--albef-src',
        args.albef_src,
        '--vocab-dir',
        args.vocab_dir,
        '--work',
        args.work,
        '--threads',
        str(args.threads),
        'retrieval',
        '--size',
        'tiny',
        '--image-res',
        str(args.res),
        '--n',
        str(args.n),
        '--k',
        str(args.k),
    ]
    hb.main()


CHILDREN = dict(
    matmul=child_matmul,
    vlreg_train=child_vlreg_train,
    albef_flops=child_albef_flops,
    vlreg_retrieval=child_vlreg_retrieval,
    albef_retrieval=child_albef_retrieval,
)


# --------------------------------------------------------------------------------------- parent
def run(cmd: list[str]) -> list[dict]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE='1',
        TRANSFORMERS_OFFLINE='1',
        NO_ALBUMENTATIONS_UPDATE='1',
        PYTHONPATH=str(ROOT),
    )
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stderr[-3000:]}')
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith('{')]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--peer-python', required=True)
    p.add_argument('--albef-src', required=True)
    p.add_argument('--vocab-dir', required=True)
    p.add_argument('--work', default='/tmp/albef-bench-work')
    p.add_argument('--batches', default='16,32')
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--steps', type=int, default=7)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--res', type=int, default=224)
    p.add_argument('--queue', type=int, default=65536)
    p.add_argument(
        '--retrieval-n', type=int, default=200, help='images (captions: 5 each); 0 = skip'
    )
    p.add_argument('--k', type=int, default=128)
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--out', default='work_dirs/peer_albef')
    p.add_argument('--child', choices=list(CHILDREN))
    p.add_argument('--variant', default='vlreg_baseline')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--n', type=int, default=200)
    args = p.parse_args()
    if args.child:
        result = CHILDREN[args.child](args)
        if result is not None:
            print(json.dumps(result), flush=True)
        return
    me = [
        sys.executable,
        __file__,
        '--peer-python',
        args.peer_python,
        '--albef-src',
        args.albef_src,
        '--vocab-dir',
        args.vocab_dir,
        '--work',
        args.work,
        '--res',
        str(args.res),
        '--queue',
        str(args.queue),
        '--threads',
        str(args.threads),
        '--steps',
        str(args.steps),
        '--warmup',
        str(args.warmup),
    ]
    harness = [
        args.peer_python,
        str(HARNESS),
        '--albef-src',
        args.albef_src,
        '--vocab-dir',
        args.vocab_dir,
        '--work',
        args.work,
        '--threads',
        str(args.threads),
    ]
    records: list[dict] = []
    batches = [int(b) for b in args.batches.split(',') if b]
    sides = ['albef', *VARIANTS]
    for rnd in range(args.rounds):
        records += [dict(r, round=rnd) for r in run(me + ['--child', 'matmul'])]
        for batch in batches:
            order = sides if rnd % 2 == 0 else sides[::-1]
            for side in order:
                if side == 'albef':
                    out = run(
                        harness
                        + [
                            'train',
                            '--size',
                            'tiny',
                            '--batch',
                            str(batch),
                            '--image-res',
                            str(args.res),
                            '--queue',
                            str(args.queue),
                            '--steps',
                            str(args.steps),
                            '--warmup',
                            str(args.warmup),
                        ]
                    )
                    out = [dict(o, side='albef', peak_rss_mb=o['peak_rss_mb']) for o in out]
                else:
                    out = run(
                        me + ['--child', 'vlreg_train', '--variant', side, '--batch', str(batch)]
                    )
                records += [dict(r, round=rnd) for r in out]
                print(
                    f'round {rnd} batch {batch} {side}: {out[-1]["median_step_s"]:.3f} s',
                    flush=True,
                )
    for batch in batches if args.rounds else []:  # ALBEF's FLOPs, once per batch
        records += run(
            [
                args.peer_python,
                __file__,
                '--child',
                'albef_flops',
                '--albef-src',
                args.albef_src,
                '--vocab-dir',
                args.vocab_dir,
                '--work',
                args.work,
                '--res',
                str(args.res),
                '--queue',
                str(args.queue),
                '--batch',
                str(batch),
                '--peer-python',
                args.peer_python,
            ]
        )
    if args.retrieval_n:
        if not args.rounds:  # the matmul rate of this run, for the FLOP fraction
            records += [dict(r, round=0) for r in run(me + ['--child', 'matmul'])]
        records += run(
            [
                args.peer_python,
                __file__,
                '--child',
                'albef_retrieval',
                '--albef-src',
                args.albef_src,
                '--vocab-dir',
                args.vocab_dir,
                '--work',
                args.work,
                '--res',
                str(args.res),
                '--threads',
                str(args.threads),
                '--n',
                str(args.retrieval_n),
                '--k',
                str(args.k),
                '--peer-python',
                args.peer_python,
            ]
        )
        records += run(
            me + ['--child', 'vlreg_retrieval', '--n', str(args.retrieval_n), '--k', str(args.k)]
        )
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'results.json').write_text(json.dumps(records, indent=1))
    table = report(records, batches, sides)
    (out_dir / 'results.md').write_text(table)
    print(table)
    if any(r['kind'] == 'train' for r in records):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from vlreg.cli import load_tool

        load_tool('plot_results').plot_steps(
            records, str(out_dir / 'steps.png'), title=f'tiny preset, {args.threads} threads'
        )
        print(f'plot written to {out_dir / "steps.png"}')


def report(records: list[dict], batches: list[int], sides: list[str]) -> str:
    rate = statistics.median(r['flops_per_s'] for r in records if r['kind'] == 'matmul')
    lines = [
        f'fp32 matmul rate (2048^3 torch.mm, median of rounds): {rate / 1e9:.1f} GFLOP/s',
        '',
        '| batch | side | median step (s) | images/s | peak RSS (MB) | ALBEF / side '
        '(per round) | GFLOP per step | fraction of matmul rate |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for batch in batches:
        train = [r for r in records if r['kind'] == 'train' and r['batch'] == batch]
        if not train:
            continue
        albef = {r['round']: r['median_step_s'] for r in train if r['side'] == 'albef'}
        for side in sides:
            mine = [r for r in train if r['side'] == side]
            med = statistics.median(r['median_step_s'] for r in mine)
            ratios = [albef[r['round']] / r['median_step_s'] for r in mine]
            flops = [
                r['step_flops']
                for r in records
                if r.get('step_flops') and r['side'] == side and r['batch'] == batch
            ]
            gflop = flops[0] / 1e9 if flops else float('nan')
            lines.append(
                f'| {batch} | {side} | {med:.3f} | {batch / med:.2f} | '
                f'{max(r["peak_rss_mb"] for r in mine):.0f} | '
                f'{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) '
                f'| {gflop:.1f} | {gflop * 1e9 / med / rate:.3f} |'
            )
    ret = [r for r in records if r['kind'] == 'retrieval']
    if ret:
        lines += [
            '',
            '| retrieval | images x texts | k | total (s) | ITM-scored pairs | peak RSS (MB) '
            '| GFLOP | fraction of matmul rate | r_mean |',
            '|---|---|---|---|---|---|---|---|---|',
        ]
        for r in ret:
            side = r.get('side', 'albef')
            pairs = r.get('itm_pairs_scored', r.get('itm_pairs'))
            flops = r.get('total_flops')
            counted = (
                f'{flops / 1e9:.1f} | {flops / r["total_s"] / rate:.3f}'
                if flops
                else 'not counted | -'
            )
            r_mean = r.get('r_mean', r.get('r_mean_random'))
            r_mean = (
                f'{r_mean["pessimistic"]:.2f}-{r_mean["optimistic"]:.2f} (tie rules)'
                if isinstance(r_mean, dict)
                else f'{r_mean:.2f}'
            )
            lines.append(
                f'| {side} | {r["n_images"]} x {r["n_texts"]} | '
                f'{r.get("k", r.get("k_used"))} | {r["total_s"]:.2f} | {pairs} | '
                f'{r["peak_rss_mb"]:.0f} | {counted} | {r_mean} |'
            )
        albef = [r for r in ret if r.get('side', 'albef') == 'albef']
        mine = [r for r in ret if r.get('side') == 'vlreg']
        for r in mine:
            for direction, same in (r.get('shared_checkpoint') or {}).items():
                lines.append(
                    f"\nshared checkpoint (ALBEF's model loaded into vlreg), {direction}: "
                    f'{same["same_order_rows"]} of {same["rows"]} rows ordered alike '
                    f'(ties within {same["tie_tolerance"]} either way), '
                    f'{same["same_topk_set_rows"]} with the same top-k set '
                    f'({same["differing_sets_at_a_tie"]} of the others at a tie of ITC '
                    'similarities on the k-th place), '
                    f'largest score difference {same["max_abs_score_diff"]:.2e}'
                )
        if albef and mine:
            lines += [
                '',
                f'ALBEF / vlreg retrieval time: {albef[0]["total_s"] / mine[0]["total_s"]:.2f}x',
            ]
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    main()
