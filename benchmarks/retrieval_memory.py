"""Peak memory of the retrieval ranking functions alone (no model) against the number of captions.

    python benchmarks/retrieval_memory.py [--captions 1000,5000,25000] [--k 256] [--dim 256]
        [--mode sparse|dense|both] [--chunk-size 1024] [--json out.json]

For each N (captions; images = N / 5, COCO's shape: 25,000 x 5,000 is COCO 5K) a fresh process
draws random unit features, then runs what the retrieval loop runs after encoding:

* ``sparse`` (``dense_scores=False``): chunked ITC top-k in both directions, the distinct pairs,
  a stand-in pair score (a random number per pair: the ranking functions only), the score
  lookup, ranks from the top-k lists and chunked ITC ranks (both tie rules), recall;
* ``dense`` (``dense_scores=True``, the matrices a matrix-reading metric needs): the same plus
  the full ``[N_img, N_txt]`` re-ranked and ITC matrices and ranks from them.

It reports the process's peak RSS (``ru_maxrss``) above the RSS after the features exist, so the
number is what ranking adds. Memory, not time, so it may run on a busy machine. Sparse mode holds
``O((N_img + N_txt) * k)`` plus one ``chunk_size x N`` similarity block (and its sort): linear in
N at a fixed chunk size; dense mode holds ``N_img * N_txt`` floats per matrix: quadratic.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(n_txt: int, k: int, dim: int, mode: str, chunk: int) -> dict:
    import torch

    from vlreg.evaluation.retrieval import retrieval_metrics
    from vlreg.evaluation.sparse_retrieval import (
        chunked_itc_ranks,
        chunked_topk,
        lookup_pairs,
        sparse_ground_truth_ranks,
        union_pairs,
    )

    torch.set_num_threads(1)
    n_img = n_txt // 5
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(n_img, dim, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(n_txt, dim, generator=g), dim=-1)
    txt2img = [t // 5 for t in range(n_txt)]
    img2txt = [list(range(5 * i, 5 * i + 5)) for i in range(n_img)]
    # warm the allocator and the kernels on a small problem, so the baseline includes them
    chunked_topk(img[:8], txt[:64], 4)
    base_rss, base_peak = rss_mb(), peak_mb()
    k_i, k_t = min(k, n_txt), min(k, n_img)
    cand_i, sim_i = chunked_topk(img, txt, k_i, chunk)
    cand_t, sim_t = chunked_topk(txt, img, k_t, chunk)
    keys = union_pairs(cand_i, cand_t, n_txt)
    pair_scores = torch.rand(keys.numel(), generator=g)  # stands in for the ITM logits
    s_i = lookup_pairs(keys, pair_scores, cand_i, n_txt, True)
    s_t = lookup_pairs(keys, pair_scores, cand_t, n_txt, False)
    out = dict(
        mode=mode,
        n_txt=n_txt,
        n_img=n_img,
        k=k,
        dim=dim,
        chunk_size=chunk,
        distinct_pairs=int(keys.numel()),
        pairs_wanted=n_img * k_i + n_txt * k_t,
    )
    if mode == 'sparse':
        tr = sparse_ground_truth_ranks(cand_i, s_i, img2txt, n_txt)
        ir = sparse_ground_truth_ranks(cand_t, s_t, [[i] for i in txt2img], n_img)
        for ties in ('pessimistic', 'optimistic'):
            chunked_itc_ranks(img, txt, img2txt, ties, chunk)
            chunked_itc_ranks(txt, img, [[i] for i in txt2img], ties, chunk)
        out['txt_r1'] = float((tr < 1).float().mean() * 100)
        out['img_r1'] = float((ir < 1).float().mean() * 100)
    else:
        dense_i = torch.full((n_img, n_txt), -100.0).scatter_(1, cand_i, s_i)
        dense_t = torch.full((n_txt, n_img), -100.0).scatter_(1, cand_t, s_t)
        itc = img @ txt.t()
        m = retrieval_metrics(dense_i, dense_t, img2txt, txt2img)
        retrieval_metrics(itc, itc.t(), img2txt, txt2img)
        out['txt_r1'], out['img_r1'] = m['txt_r1'], m['img_r1']
    out['added_peak_mb'] = round(max(peak_mb(), base_peak) - base_rss, 1)
    out['baseline_rss_mb'] = round(base_rss, 1)
    out['dense_matrix_mb'] = round(n_img * n_txt * 4 / 2**20, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--captions', default='1000,5000,25000')
    parser.add_argument('--k', type=int, default=256)
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument('--mode', choices=('sparse', 'dense', 'both'), default='both')
    parser.add_argument('--chunk-size', type=int, default=1024)
    parser.add_argument('--json', default='')
    parser.add_argument('--one', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one configuration, one JSON line
        print(json.dumps(run_one(int(args.captions), args.k, args.dim, args.mode, args.chunk_size)))
        return
    modes = ('sparse', 'dense') if args.mode == 'both' else (args.mode,)
    rows = []
    for mode in modes:
        for n in (int(x) for x in args.captions.split(',')):
            cmd = [
                sys.executable,
                __file__,
                '--one',
                '--captions',
                str(n),
                '--k',
                str(args.k),
                '--dim',
                str(args.dim),
                '--mode',
                mode,
                '--chunk-size',
                str(args.chunk_size),
            ]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f'{mode:6s} N_txt={r["n_txt"]:6d} N_img={r["n_img"]:5d} k={r["k"]}: '
                f'+{r["added_peak_mb"]:8.1f} MB peak over the features '
                f'(one dense matrix would be {r["dense_matrix_mb"]:.0f} MB); '
                f'{r["distinct_pairs"]} distinct pairs of {r["pairs_wanted"]} wanted',
                flush=True,
            )
    print('\n| mode | captions | images | k | added peak RSS (MB) | one dense matrix (MB) |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(
            f'| {r["mode"]} | {r["n_txt"]} | {r["n_img"]} | {r["k"]} | {r["added_peak_mb"]} '
            f'| {r["dense_matrix_mb"]} |'
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
