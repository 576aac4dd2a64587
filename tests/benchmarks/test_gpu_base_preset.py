"""The GPU benchmark's dry run on CPU (toy sizes): it must run end to end before it meets a GPU,
where the device time is scarce, and its numbers must be self-consistent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_measures_both_sides_and_retrieval(tmp_path) -> None:
    out = tmp_path / 'gpu.json'
    cmd = [sys.executable, str(ROOT / 'benchmarks/gpu_base_preset.py'), '--device', 'cpu', '--toy']
    cmd += [
        '--batches',
        '2',
        '--steps',
        '1',
        '--warmup',
        '0',
        '--retrieval-images',
        '4',
        '--k',
        '2',
    ]
    subprocess.run(
        cmd + ['--out', str(out)], check=True, cwd=ROOT, capture_output=True, timeout=600
    )
    report = json.loads(out.read_text())
    kinds = [r['kind'] for r in report['records']]
    assert kinds == ['matmul', 'train', 'train', 'retrieval']
    rate = report['records'][0]['flops_per_s']
    albef, softmask = report['records'][1:3]
    assert (albef['side'], softmask['side']) == ('albef', 'softmask')
    for r in (albef, softmask):
        assert r['pairs_per_s'] == 2 / r['median_step_s']
        assert abs(r['mfu'] - r['step_flops'] / r['median_step_s'] / rate) < 1e-12
    # the recipe adds the extra view, the soft-masked pairs and the Grad-CAM backward
    assert softmask['step_flops'] > 1.3 * albef['step_flops']
    ret = report['records'][3]
    # 4 images x 5 texts, k = 2: distinct pairs of 4 * 2 + 20 * 2 minus those both directions want
    assert 20 * 2 <= ret['itm_pairs'] <= 4 * 2 + 20 * 2
    total = ret['encode_s'] + ret['rank_and_rerank_s']
    assert abs(ret['coco5k_extrapolated_min'] - total * 5000 / 4 / 60) < 1e-9
