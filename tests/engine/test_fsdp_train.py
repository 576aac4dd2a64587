"""``tools/train.py --fsdp``: the flag's config changes, the base-preset FSDP config, and 2 gloo CPU
processes under FlexibleRunner that train, save an ordinary checkpoint, resume exactly and refuse a
checkpoint that does not fit (the sharded step's numbers against one process: tests/engine/test_fsdp.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from tests.models.test_distributed import free_port
from vlreg.engine.launch import RANK0_FORWARD_HOOKS, enable_fsdp

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')
DEMO = ROOT / 'configs' / 'softmask' / 'softmask_vit-t-bert-t_1xb32_synthetic-demo.py'
SOFTMASK_4M = ROOT / 'configs' / 'softmask' / 'softmask_vit-b16-bert-base_8xb64_4m-30e.py'
FSDP_4M = ROOT / 'configs' / 'softmask' / 'softmask_vit-b16-bert-base_8xb64_4m-30e-fsdp.py'


def test_enable_fsdp_makes_a_config_sharded() -> None:
    cfg = Config.fromfile(str(DEMO))
    assert cfg.model.get('share_image_kv', True) and cfg.val_cfg.k > 0
    assert {h['type'] for h in cfg.custom_hooks} & set(RANK0_FORWARD_HOOKS)
    cfg.load_partial = True
    changes = enable_fsdp(cfg)
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy == dict(
        type='vlreg.VLFSDPStrategy', state_dict_cfg='full', load_partial=True
    )
    assert cfg.model.share_image_kv is False and cfg.val_cfg.k == 0
    assert [h['type'] for h in cfg.custom_hooks] == ['AlphaWarmupHook', 'RNGStateHook']
    assert len(changes) == 4 and any('RetrievalGridHook' in c for c in changes)
    assert enable_fsdp(cfg) == []  # nothing left to change
    other = Config(dict(runner_type='MyRunner', model=dict()))
    with pytest.raises(ValueError, match="runner_type='MyRunner'"):
        enable_fsdp(other)


def test_base_preset_fsdp_config_is_the_recipe_with_the_flag() -> None:
    want = Config.fromfile(str(SOFTMASK_4M))
    enable_fsdp(want)
    got = Config.fromfile(str(FSDP_4M))
    for key in (
        'runner_type',
        'model',
        'train_dataloader',
        'val_cfg',
        'custom_hooks',
        'optim_wrapper',
    ):
        assert got[key] == want[key], key
    assert got.strategy.type == 'vlreg.VLFSDPStrategy'
    assert got.strategy.model_wrapper.sharding_strategy == 'FULL_SHARD'


def _train(
    work: Path, *extra: str, epochs: int = 2, fsdp: bool = True
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2']
    cmd += [f'--master_port={free_port()}', str(ROOT / 'tools' / 'train.py'), TINY]
    cmd += ['--launcher', 'pytorch', *(['--fsdp'] if fsdp else []), '--work-dir', str(work), *extra]
    cmd += ['--cfg-options', f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=2']
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _state(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


@pytest.mark.slow
@pytest.mark.parametrize('fsdp', [True, False], ids=['fsdp', 'ddp'])
def test_two_ranks_resume_exactly(tmp_path: Path, fsdp: bool) -> None:
    """Two epochs straight equal one epoch, then --resume for the second: weights, momentum copies
    and queues (each rank restores its own random states: their dropout and negatives differ)."""
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    proc = _train(straight, fsdp=fsdp)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert ('--fsdp: runner: FlexibleRunner with VLFSDPStrategy' in out) == fsdp
    assert 'retrieval/txt_r1' in out  # validation ran (ITC ranking under FSDP)
    assert not list(straight.glob('.*.tmp'))  # written under a temporary name, then renamed
    proc = _train(split, epochs=1, fsdp=fsdp)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    proc = _train(split, '--resume', fsdp=fsdp)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    want, got = _state(straight / 'epoch_2.pth'), _state(split / 'epoch_2.pth')
    first = _state(split / 'epoch_1.pth')
    assert want.keys() == got.keys()
    moved = max((want[k].float() - first[k].float()).abs().max().item() for k in want)
    assert moved > 1e-4  # the second epoch changed the weights: equality below can fail
    worst, key = max(((want[k].float() - got[k].float()).abs().max().item(), k) for k in want)
    assert worst < 1e-6, f'resumed run differs from the straight one by {worst} ({key})'
    ckpt = torch.load(split / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert len(ckpt['rng_states']) == 2
    assert not torch.equal(ckpt['rng_states'][0]['torch'], ckpt['rng_states'][1]['torch'])


@pytest.mark.slow
def test_fsdp_checkpoint_is_ordinary_and_a_poor_fit_is_refused(tmp_path: Path) -> None:
    proc = _train(tmp_path / 'run', epochs=1)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    got = _state(tmp_path / 'run' / 'epoch_1.pth')

    # an ordinary, unsharded file: it loads into the plain model with every key
    from vlreg.engine.runner import load_checked
    from vlreg.registry import MODELS

    cfg = Config.fromfile(TINY)
    plain = MODELS.build(cfg.model)
    assert load_checked(plain, got, 'epoch_1.pth') == ([], [])

    # a checkpoint that does not fit is refused under FSDP too, naming the keys
    ckpt = torch.load(tmp_path / 'run' / 'epoch_1.pth', map_location='cpu', weights_only=True)
    ckpt['state_dict']['not_a_layer.weight'] = torch.zeros(3)
    del ckpt['state_dict']['vision_proj.weight']
    bad = tmp_path / 'bad.pth'
    torch.save(ckpt, bad)
    proc = _train(tmp_path / 'refused', '--resume', str(bad))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'vision_proj.weight' in out and 'not_a_layer.weight' in out, out[-4000:]
