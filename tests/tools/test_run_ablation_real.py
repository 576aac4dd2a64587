"""tools/run_ablation.py --dataset flickr8k-real: the paired interval, the table, the six real-photo
ablation configs, the COCO pointing fragment, and a two-iteration smoke run of one variant."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from mmengine.config import Config

from vlreg.cli import load_tool

from tests.conftest import ROOT, shared_path

VARIANTS = ('baseline', 'softmask', 'softmask-warmup', 'focal', 'augment', 'all')
METHOD = 'configs/softmask/softmask_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py'
BASE = 'configs/albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py'


def _tool():
    return load_tool('run_ablation')


def _cfg(variant: str) -> Config:
    return Config.fromfile(str(ROOT / f'configs/softmask/ablation/flickr8k-real_{variant}.py'))


# -- the t quantile and the paired interval -----------------------------------------------------------
def _t975_closed_form(df: int) -> float:
    """t_{0.975} where Student's t has a closed-form quantile: df 1 (Cauchy) and df 2."""
    p = 0.975
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def test_t_quantile_matches_closed_forms_and_scipy():
    tool = _tool()
    assert tool.t_quantile_975(1) == pytest.approx(_t975_closed_form(1), abs=1e-5)
    assert tool.t_quantile_975(2) == pytest.approx(_t975_closed_form(2), abs=1e-5)
    assert tool.t_quantile_975(10**6) == pytest.approx(1.959964, abs=1e-5)
    with pytest.raises(ValueError):
        tool.t_quantile_975(0)
    stats = pytest.importorskip('scipy.stats')  # an independent check where scipy happens to be
    for df in range(1, 80):
        assert tool.t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-5), df


def test_paired_difference_hand_worked():
    tool = _tool()
    # differences 1, 2, 3: mean 2, sd 1, half-width t_{0.975, 2} / sqrt(3)
    mean, lo, hi = tool.paired_difference([10.0, 12.0, 14.0], [11.0, 14.0, 17.0])
    half = _t975_closed_form(2) / math.sqrt(3)  # 4.302653 / 1.732051 = 2.484138
    assert half == pytest.approx(2.484138, abs=1e-6)
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half), abs=1e-5)
    mean, lo, hi = tool.paired_difference([5.0], [7.5])
    assert mean == 2.5 and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match='pairs'):
        tool.paired_difference([1.0, 2.0], [1.0])


def _results() -> list[dict]:
    out = []
    for seed, base in enumerate((10.0, 12.0, 14.0)):
        for k, variant in enumerate(VARIANTS):
            value = base + k * (seed + 1)  # variant k - baseline: k, 2k, 3k
            out.append(
                dict(
                    variant=variant,
                    seed=seed,
                    train_seconds=100,
                    pointing_acc=30.0 + k,
                    pointing_chance=20.0,
                    **{m: value for m in _tool().METRICS},
                )
            )
    return out


def test_table_gives_mean_sd_and_paired_intervals():
    tool = _tool()
    text = tool.table(_results(), 'flickr8k-real')
    lines = text.splitlines()
    head = lines[0]
    assert 'pointing_acc | pointing_chance' in head
    rows = {line.split(' | ')[0]: line for line in lines if line.startswith('| ')}
    assert [name[2:] for name in rows if name[2:] in VARIANTS] == list(VARIANTS)
    # baseline r_mean 10, 12, 14: mean 12, sd 2; chance 20 everywhere
    assert rows['| baseline'].count('12.0 ± 2.0') == 7 and '20.0 ± 0.0' in rows['| baseline']
    # 'focal' is variant 3: differences 3, 6, 9 -> mean 6, sd 3, half-width 3 * 2.484138 = 7.45
    paired = [line for line in lines if line.startswith('| focal | 3 |')]
    assert len(paired) == 1
    assert paired[0].count('+6.0 [-1.5, +13.5]') == 7  # the seven retrieval metrics
    assert paired[0].endswith('| +3.0 [+3.0, +3.0] |')  # pointing: 33 - 30 on every seed
    assert 'pointing_chance' not in next(line for line in lines if 'variant - baseline' in line)
    assert '95 % t-interval' in text


def test_table_keeps_the_other_datasets():
    tool = _tool()
    results = [r for r in _results() if r['variant'] in tool.VARIANTS]
    for r in results:
        del r['pointing_acc'], r['pointing_chance']
    text = tool.table(results, 'flickr8k')
    assert 'pointing' not in text.splitlines()[0] and 'softmask-warmup' not in text
    assert '| all | 3 |' in text


def test_arguments_per_dataset():
    tool = _tool()
    real = tool.parse_args(['--dataset', 'flickr8k-real'])
    assert real.variants == list(VARIANTS) and real.seeds == [0, 1, 2] and real.iters is None
    synthetic = tool.parse_args([])
    assert synthetic.variants == list(tool.VARIANTS) and synthetic.seeds == [0, 1]
    with pytest.raises(SystemExit):
        tool.parse_args(['--dataset', 'flickr8k', '--variants', 'softmask-warmup'])


# -- the configs ------------------------------------------------------------------------------------------
def _without_component(cfg: Config) -> dict:
    d = cfg.to_dict()
    d['model'].pop('losses')
    d.pop('custom_hooks')
    return d


def test_variants_differ_from_the_baseline_only_in_their_component():
    base = _cfg('baseline')
    method = Config.fromfile(str(ROOT / METHOD))
    losses = {v: _cfg(v).model.losses for v in VARIANTS}
    for variant in VARIANTS:
        cfg = _cfg(variant)
        assert _without_component(cfg) == _without_component(base), variant
        # same data, same sampler: the data order of a seed is the same in every variant
        assert cfg.train_dataloader == method.train_dataloader, variant
    assert losses['baseline'].itc.type == 'ITCLoss' and 'itm_softmask' not in losses['baseline']
    assert losses['focal'].itc == dict(
        losses['baseline'].itc, type='FocalITCLoss', gamma=2.0, modulate='all'
    )
    assert [tuple(v) for v in losses['augment'].itc.views] == [
        ('image', 'text'),
        ('image', 'text_masked'),
    ]
    assert losses['augment'].itm == losses['baseline'].itm  # ITC only, as the method config
    for variant in ('softmask', 'softmask-warmup', 'all'):
        assert losses[variant].itm_softmask.layer == base.gradcam_layer == 1
    assert losses['all'].itc == method.model.losses.itc
    assert losses['all'].itm == method.model.losses.itm


def test_softmask_variant_builds_the_method_configs_loss():
    from mmengine.registry import init_default_scope

    from vlreg.registry import LOSSES

    init_default_scope('vlreg')
    ours = LOSSES.build(_cfg('softmask').model.losses.itm_softmask)
    theirs = LOSSES.build(Config.fromfile(str(ROOT / METHOD)).model.losses.itm_softmask)
    keys = ('cross_attn_layer', 'head_reduction', 'label', 'prob', 'apply_to', 'gradcam_mode')
    assert {k: getattr(ours, k) for k in keys} == {k: getattr(theirs, k) for k in keys}


def test_warmup_variant_keeps_the_base_hooks():
    hooks = _cfg('softmask-warmup').custom_hooks
    base = Config.fromfile(str(ROOT / BASE))
    assert hooks[:-1] == base.custom_hooks
    assert hooks[-1] == dict(
        type='SoftMaskWarmupHook', start_iter=base.max_iters // 4, ramp_iters=base.max_iters // 4
    )


def test_schedule_options_scale_every_iteration_count():
    tool = _tool()
    opts = tool.schedule_options(_cfg('softmask-warmup'), 236)  # half of 472
    assert opts == [
        'train_cfg.max_iters=236',
        'train_cfg.val_interval=236',
        'param_scheduler.0.begin=0',
        'param_scheduler.0.end=25',
        'param_scheduler.1.begin=0',
        'param_scheduler.1.end=236',
        'custom_hooks.0.warmup_iters=118',
        'custom_hooks.2.start_iter=59',
        'custom_hooks.2.ramp_iters=59',
    ]
    assert 'custom_hooks.2.start_iter=1' in tool.schedule_options(_cfg('softmask-warmup'), 2)


def test_coco_pointing_fragment_reads_the_photos_with_boxes():
    shared_path('coco_mini_train2017', 'grounding.json')
    import vlreg  # noqa: F401
    from mmengine.registry import init_default_scope

    from vlreg.registry import DATASETS

    init_default_scope('vlreg')
    coco = Config.fromfile(str(ROOT / 'configs/_base_/datasets/coco_mini_pointing.py'))
    dataset = DATASETS.build(coco.pointing_dataloader.dataset)
    assert len(dataset) == 400  # 80 photos x 5 captions
    sample = dataset[0]['data_samples']
    assert sample.gt_bboxes.shape[-1] == 4 and 'gt_word_indices' in sample.metainfo
    assert tuple(dataset[0]['inputs']['image'].shape[-2:]) == (224, 224)


# -- a smoke run --------------------------------------------------------------------------------------------
SMOKE_TRAIN = [
    'train_dataloader.batch_size=8',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.dataset.indices=[800,801,802,803]',
    'val_dataloader.batch_size=4',
    'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False',
    'val_cfg.k=4',
]


@pytest.mark.slow
def test_smoke_run_of_one_variant(tmp_path):
    """softmask-warmup for 2 iterations (batch 8, 4 held-out images, 4 COCO captions): ~45 s."""
    shared_path('flickr8k_train_224', 'captions.json')
    shared_path('coco_mini_train2017', 'grounding.json')
    cmd = [
        sys.executable,
        'tools/run_ablation.py',
        '--dataset',
        'flickr8k-real',
        '--variants',
        'softmask-warmup',
        '--seeds',
        '0',
        '--iters',
        '2',
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        *SMOKE_TRAIN,
        '--pointing-options',
        'test_dataloader.dataset.indices=[0,1,2,3]',
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / 'flickr8k-real/softmask-warmup_seed0/result.json').read_text())
    assert 0 <= result['r_mean'] <= 100 and 0 <= result['pointing_acc'] <= 100
    assert 0 < result['pointing_chance'] < 100
    assert 'softmask-warmup' in (tmp_path / 'flickr8k-real.md').read_text()
    # resumable: a second start skips the finished run
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and '(0 s)' in again.stdout
