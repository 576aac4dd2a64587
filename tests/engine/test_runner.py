"""The real MMEngine Runner on a tiny config: train, evaluate, save, resume identically, test, DDP."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')
sys.path.insert(0, str(ROOT / 'tools'))

import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('full')
    train_tool.main([CONFIG, '--work-dir', str(work)])
    return work


def load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def test_training_saves_checkpoints_and_evaluates(full_run):
    ckpt = load(full_run / 'epoch_2.pth')
    # 8 images x 2 captions at batch 4: 4 iterations per epoch, 2 epochs
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 8
    assert 'rng_state' in ckpt and 'optimizer' in ckpt
    first = load(full_run / 'epoch_1.pth')
    assert int(first['state_dict']['losses.itc.queue_ptr']) == 0  # 4 x 4 = 16 = queue size
    assert not torch.equal(
        first['state_dict']['losses.itc.image_queue'], ckpt['state_dict']['losses.itc.image_queue']
    )
    scalars = [
        json.loads(line) for line in open(glob.glob(str(full_run / '*/vis_data/scalars.json'))[0])
    ]
    train = [s for s in scalars if 'loss_itc' in s]
    assert len(train) == 8
    # AlphaWarmupHook: the distillation weight ramps over the first epoch (4 iterations)
    assert [s['alpha'] for s in train] == pytest.approx([0.4 * min(1.0, i / 4) for i in range(8)])
    assert {'lr', 'temp', 'alpha', 'loss_itm', 'loss_mlm', 'itm_acc'} <= set(train[0])
    val = [s for s in scalars if 'retrieval/txt_r1' in s]
    assert len(val) == 1
    recalls = [val[0][f'retrieval/{d}_r{k}'] for d in ('txt', 'img') for k in (1, 5, 10)]
    assert val[0]['retrieval/r_mean'] == pytest.approx(sum(recalls) / 6)
    for d in ('txt', 'img'):  # recall at k never decreases with k
        r1, r5, r10 = (val[0][f'retrieval/{d}_r{k}'] for k in (1, 5, 10))
        assert r1 <= r5 <= r10


def test_tensorboard_receives_losses_lr_temperature_and_metrics(full_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = glob.glob(str(full_run / '*/vis_data/events.out.tfevents.*'))
    assert files, 'no TensorBoard event file written'
    acc = EventAccumulator(files[0])
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {
        'loss',
        'loss_itc',
        'loss_itm',
        'loss_mlm',
        'lr',
        'temp',
        'alpha',
        'retrieval/txt_r1',
        'retrieval/img_r10',
        'retrieval/r_mean',
    } <= tags


def test_resume_continues_the_same_run(full_run, tmp_path):
    work = tmp_path / 'resumed'
    work.mkdir()
    train_tool.main([CONFIG, '--work-dir', str(work), '--resume', str(full_run / 'epoch_1.pth')])
    a, b = load(full_run / 'epoch_2.pth'), load(work / 'epoch_2.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 8
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), f'{key} differs after resume'
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert torch.equal(sa['exp_avg'], sb['exp_avg'])
    assert a['param_schedulers'] == b['param_schedulers']


def test_auto_resume_picks_latest_checkpoint(full_run, tmp_path):
    work = tmp_path / 'auto'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(full_run / 'epoch_1.pth'))
    train_tool.main([CONFIG, '--work-dir', str(work), '--resume'])
    assert (work / 'epoch_2.pth').exists()


def test_test_tool_writes_metrics(full_run, tmp_path):
    out = tmp_path / 'metrics.json'
    metrics = test_tool.main(
        [
            CONFIG,
            str(full_run / 'epoch_2.pth'),
            '--out',
            str(out),
            '--work-dir',
            str(tmp_path / 'test'),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved['metrics']['retrieval/txt_r10'] == metrics['retrieval/txt_r10']
    assert 'itc top-4 -> itm' in saved['metrics']['retrieval/protocol']


def test_checkpoint_with_unknown_global_is_refused(full_run, tmp_path):
    """Weights-only loading stays on: a checkpoint that would run code on load is refused."""

    class Payload:
        def __reduce__(self):
            return (os.system, ('echo pwned > ' + str(tmp_path / 'pwned'),))

    ckpt = load(full_run / 'epoch_1.pth')
    ckpt['meta']['evil'] = Payload()
    bad = tmp_path / 'evil.pth'
    torch.save(ckpt, bad)
    with pytest.raises(Exception, match='Unsupported global|weights_only|Weights only'):
        train_tool.main([CONFIG, '--work-dir', str(tmp_path / 'w'), '--resume', str(bad)])
    assert not (tmp_path / 'pwned').exists()


def test_torchrun_two_processes_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--nproc_per_node=2',
        f'--master_port={port}',
        str(ROOT / 'tools' / 'train.py'),
        CONFIG,
        '--launcher',
        'pytorch',
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'train_dataloader.dataset.num_images=4',
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = load(tmp_path / 'epoch_1.pth')
    # 4 images x 2 captions over 2 ranks at batch 4: one iteration; the queue took the global batch
    # of 8 from both ranks
    assert ckpt['meta']['iter'] == 1
    assert int(ckpt['state_dict']['losses.itc.queue_ptr']) == 8
    assert 'retrieval/txt_r1' in proc.stdout + proc.stderr


# ------------------------------------------------------------------ crashes, restarts, determinism
def scalars_of(work: Path, run: int = -1) -> list[dict]:
    """The scalars.json lines of one run (timestamp folder) of ``work``; the last run by default."""
    files = sorted(glob.glob(str(work / '*/vis_data/scalars.json')))
    return [json.loads(line) for line in open(files[run])]


def train_losses(scalars: list[dict]) -> dict[int, dict]:
    keys = ('loss', 'loss_itc', 'loss_itm', 'loss_mlm', 'lr', 'alpha', 'temp')
    return {s['step']: {k: s[k] for k in keys} for s in scalars if 'loss_itc' in s}


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 900) -> None:
    start = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(
                f'child exited early ({proc.returncode}): ' + proc.stdout.read()[-3000:]
            )
        if time.monotonic() - start > timeout:
            proc.kill()
            raise AssertionError('child too slow')
        time.sleep(0.05)


def test_kill_9_mid_epoch_then_resume_continues_exactly(full_run, tmp_path):
    """Two children are killed by SIGKILL: one (num_workers=0) hangs in the middle of writing its second
    checkpoint (epoch_1.pth, after iter_3.pth), one (num_workers=2, persistent workers) right after its
    first checkpoint. ``--resume`` continues each; every later iteration's losses, lr, alpha and
    temperature equal the uninterrupted run's (``full_run``, num_workers=0) to 1e-6, and the final
    weights, queues and momentum encoders equal it too."""
    # the children compute with as many threads as this process (the reference): another thread count
    # sums in another order and the runs drift apart by float rounding
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(torch.get_num_threads()))
    child = str(ROOT / 'tests' / 'engine' / 'crash_child.py')
    works = {0: tmp_path / 'nw0', 2: tmp_path / 'nw2'}
    procs = {
        0: subprocess.Popen(
            [sys.executable, child, '--block-save', '2', CONFIG, '--work-dir', str(works[0])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        2: subprocess.Popen(
            [
                sys.executable,
                child,
                CONFIG,
                '--work-dir',
                str(works[2]),
                '--cfg-options',
                'train_dataloader.num_workers=2',
                'train_dataloader.persistent_workers=True',
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    }
    try:
        wait_for(lambda: (works[0] / 'BLOCKED').exists(), procs[0])
        wait_for(lambda: (works[2] / 'last_checkpoint').exists(), procs[2])
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # killed while writing epoch_1.pth: the previous checkpoint and the pointer to it are intact
    blocked = Path((works[0] / 'BLOCKED').read_text())
    assert blocked.name.startswith('.epoch_1.pth') and blocked.exists()
    assert not (works[0] / 'epoch_1.pth').exists()
    assert (works[0] / 'last_checkpoint').read_text() == str(works[0] / 'iter_3.pth')
    assert load(works[0] / 'iter_3.pth')['meta']['iter'] == 3

    reference = train_losses(scalars_of(full_run))
    final = load(full_run / 'epoch_2.pth')['state_dict']
    for nw, work in works.items():
        resumed_from = Path((work / 'last_checkpoint').read_text())
        start = load(resumed_from)['meta']['iter']
        train_tool.main(
            [
                CONFIG,
                '--work-dir',
                str(work),
                '--resume',
                '--cfg-options',
                f'train_dataloader.num_workers={nw}',
                f'train_dataloader.persistent_workers={nw > 0}',
            ]
        )
        resumed = train_losses(scalars_of(work))
        assert sorted(resumed) == list(range(start + 1, 9)), (nw, resumed_from, sorted(resumed))
        for step, values in resumed.items():
            for key, value in values.items():
                assert value == pytest.approx(reference[step][key], abs=1e-6, rel=0), (
                    f'num_workers={nw}, resumed from {resumed_from.name}: {key} at iteration {step}'
                )
        state = load(work / 'epoch_2.pth')['state_dict']
        for key in ('losses.itc.image_queue', 'losses.itc.text_queue', 'losses.itc.queue_ptr'):
            assert torch.allclose(state[key].float(), final[key].float(), atol=1e-6), (nw, key)
        momentum = [k for k in final if '_m.' in k or k.endswith('_m')]
        assert momentum and all(torch.allclose(state[k], final[k], atol=1e-6) for k in momentum)


def test_deterministic_runs_are_bit_identical(full_run, tmp_path):
    """``randomness.deterministic=True`` (the tiny config): a second run gives the same losses and
    retrieval metrics, bit for bit."""
    train_tool.main([CONFIG, '--work-dir', str(tmp_path)])
    first, second = scalars_of(full_run, run=0), scalars_of(tmp_path)
    strip = (
        [{k: v for k, v in s.items() if k not in ('time', 'data_time', 'eta')} for s in first],
        [{k: v for k, v in s.items() if k not in ('time', 'data_time', 'eta')} for s in second],
    )
    assert any('retrieval/r_mean' in s for s in strip[0]) and len(strip[0]) >= 9
    assert strip[0] == strip[1]
