"""FSDP (``VLFSDPStrategy``) on 2 gloo CPU processes takes the same steps as one unsharded process.

A tiny ALBEF with ITC (momentum distillation, queue), ITM, soft-masked ITM (Grad-CAM on fusion layer 0,
``gradcam_mode='train'``) and MLM (momentum distillation, tied decoder), dropout off, at a global batch
of 8 (4 per rank). After two SGD steps (weight decay with ``paramwise_cfg``, so the parameter groups
count) the losses, every online parameter, every momentum parameter (EMA), the queues and the Grad-CAM
map of both steps equal the single-process run; the rank-0 checkpoint has the unsharded layout, loads
into a plain model, and loads back into the sharded one.

Two draws differ by design between 1 and 2 processes, so both are made deterministic here: ITM's hard
negatives are mined within each rank's batch (ALBEF), so the sampler is replaced by a fixed rule within
blocks of 4 (the per-rank batch) in both runs; the soft mask's random word is the first content word.
"""

from __future__ import annotations

import os
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.models.test_distributed import free_port
from tests.models.test_softmask_options import softmask_batch
from tests.models.tiny import tiny_model

GLOBAL_BATCH = 8
LOCAL = 4  # per rank, also the block of the deterministic negatives
STEPS = 2
ATOL = 1e-5  # losses; parameters, momentum copies, queues: relative to max(1, |tensor|)
CAM_RTOL = 1e-4  # Grad-CAM map, relative to its largest value

OPTIM = dict(
    type='OptimWrapper',
    constructor='VLOptimWrapperConstructor',
    # SGD: linear in the gradient (Adam's first step amplifies float noise of near-zero gradients)
    optimizer=dict(type='SGD', lr=0.1, weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0, bypass_duplicate=True
    ),
)


def _model():
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(type='ITMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=0, gradcam_mode='train'),
        mlm=dict(type='MLMLoss'),
    )
    # momentum 0.9: an EMA error would show after 2 steps
    return tiny_model(losses=losses, dropout=0.0, momentum=0.9, share_image_kv=False)


def _batch(step: int) -> dict[str, torch.Tensor]:
    return softmask_batch(GLOBAL_BATCH, seed=1 + step)


def _blockwise_negatives(sim_i2t, sim_t2i, image_ids=None):
    """Negative of row i: another row of its block of LOCAL rows (fixed, as two ranks would mine)."""
    i = torch.arange(sim_i2t.shape[0])
    base = (i // LOCAL) * LOCAL
    return base + (i + 1) % LOCAL, base + (i + 2) % LOCAL


def _first_word(word_ids, content_mask):
    selectable = content_mask.bool() & (word_ids >= 0)
    first = torch.where(selectable, word_ids, torch.full_like(word_ids, 10**6)).amin(dim=1)
    return first.clamp(max=int(word_ids.max().clamp(min=0))), selectable.any(dim=1)


def _patch(setattr_like, cams: list) -> None:
    """Deterministic draws, and record every Grad-CAM map the soft-mask loss computes."""
    import vlreg.models.losses.itm as itm
    import vlreg.models.losses.softmask_itm as softmask

    original = softmask.cross_attention_gradcam

    def recording(*args, **kwargs):
        cam, grad = original(*args, **kwargs)
        cams.append(cam.detach().clone())
        return cam, grad

    setattr_like(itm, 'sample_hard_negatives', _blockwise_negatives)
    setattr_like(softmask, 'pick_random_words', _first_word)
    setattr_like(softmask, 'cross_attention_gradcam', recording)


def _vlreg_scope() -> None:
    """Registry names resolve in vlreg's scope, as under a config with ``default_scope='vlreg'``."""
    from mmengine.registry import DefaultScope

    if DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('test_fsdp', scope_name='vlreg')


def _losses(log_vars: dict) -> dict[str, float]:
    return {k: float(v) for k, v in log_vars.items() if k.startswith('loss')}


def reference_run(setattr_like) -> dict:
    """One process, unsharded, the global batch (``setattr_like`` applies the patches)."""
    from mmengine.optim import build_optim_wrapper

    _vlreg_scope()
    cams: list = []
    _patch(setattr_like, cams)
    model = _model().train()
    optim = build_optim_wrapper(model, dict(OPTIM))
    losses = [_losses(model.train_step({'inputs': _batch(s)}, optim)) for s in range(STEPS)]
    return dict(
        losses=losses, cams=cams, state={k: v.clone() for k, v in model.state_dict().items()}
    )


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        _sharded_run(rank, world, out_dir)
    finally:
        dist.destroy_process_group()


def _sharded_run(rank: int, world: int, out_dir: str) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from vlreg.engine.fsdp import VLFSDPStrategy

    _vlreg_scope()
    cams: list = []
    _patch(setattr, cams)  # a spawned process of its own: nothing to restore
    strategy = VLFSDPStrategy(
        work_dir=osp.join(out_dir, 'work'),
        env_kwargs=dict(launcher='pytorch', dist_cfg=dict(backend='gloo')),
    )
    strategy.prepare(_model(), optim_wrapper=dict(OPTIM))
    net, optim = strategy.model, strategy.optim_wrapper
    net.train()
    # what this rank holds: the layers' shards (orig params are views of them) and the NO_SHARD root
    local_numel = sum(p.numel() for p in net.parameters())
    units = len(FSDP.fsdp_modules(net))
    sl = slice(rank * LOCAL, (rank + 1) * LOCAL)
    losses = []
    for s in range(STEPS):
        local = {k: v[sl] for k, v in _batch(s).items()}
        out = _losses(net.train_step({'inputs': local}, optim))
        mean = torch.tensor([out[k] for k in sorted(out)], dtype=torch.float64)
        dist.all_reduce(mean)
        losses.append(dict(zip(sorted(out), (mean / world).tolist())))
    gathered = []
    for cam in cams:
        parts = [torch.empty_like(cam) for _ in range(world)]
        dist.all_gather(parts, cam.contiguous())
        gathered.append(torch.cat(parts))
    ckpt = osp.join(out_dir, 'fsdp.pth')
    strategy.save_checkpoint(ckpt)
    state = strategy.model_state_dict()  # full, rank 0
    dist.barrier()
    # load back into the sharded model after another step moved it away
    local = {k: v[sl] for k, v in _batch(STEPS).items()}
    net.train_step({'inputs': local}, optim)
    strategy.load_checkpoint(ckpt)
    reloaded = strategy.model_state_dict()
    if rank == 0:
        torch.save(
            dict(
                losses=losses,
                cams=gathered,
                state=state,
                reloaded=reloaded,
                ckpt=ckpt,
                local_numel=local_numel,
                units=units,
            ),
            osp.join(out_dir, 'result.pt'),
        )


def _worst(a: dict, b: dict, keys) -> tuple[float, str]:
    """The largest difference of ``a`` from ``b`` over ``keys``, relative to ``max(1, |b|)`` of each
    tensor (float32 summation order differs between one process and two), and its key."""
    diffs = [
        (
            (a[k].double() - b[k].double()).abs().max().item()
            / max(1.0, b[k].double().abs().max().item()),
            k,
        )
        for k in keys
    ]
    return max(diffs) if diffs else (0.0, '')


@pytest.mark.slow
def test_fsdp_two_processes_equal_one_unsharded_process(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    got = torch.load(tmp_path / 'result.pt', weights_only=True)
    ref = reference_run(monkeypatch.setattr)

    # the model was sharded: root + 2 ViT blocks + 2 text + 2 fusion layers, online and momentum
    assert got['units'] == 1 + 2 * 6
    full_numel = sum(p.numel() for p in _model().parameters())
    assert got['local_numel'] < 0.75 * full_numel, (got['local_numel'], full_numel)

    # losses of both steps
    for step, (g, r) in enumerate(zip(got['losses'], ref['losses'])):
        assert g.keys() == r.keys(), step
        for k in r:
            assert abs(g[k] - r[k]) < ATOL, (step, k, g[k], r[k])

    # the rank-0 checkpoint state has the unsharded keys, shapes and values
    state, want = got['state'], ref['state']
    assert state.keys() == want.keys()
    assert all(state[k].shape == want[k].shape for k in want)
    online = [k for k in want if '_m.' not in k and not k.startswith('losses.')]
    momentum = [k for k in want if '_m.' in k]
    queues = [k for k in want if k.startswith('losses.')]
    assert online and momentum and queues
    worst, key = _worst(state, want, online)
    assert worst < ATOL, f'online parameter {key} differs by {worst}'
    worst, key = _worst(state, want, momentum)
    assert worst < ATOL, f'momentum parameter {key} differs by {worst} (EMA)'
    worst, key = _worst(state, want, queues)
    assert worst < ATOL, f'queue {key} differs by {worst}'
    assert int(state['losses.itc.queue_ptr']) == STEPS * GLOBAL_BATCH % 16

    # the checks can fail: the online weights moved, and the momentum copies moved by the EMA
    init = _model().state_dict()
    assert (want['vision_proj.weight'] - init['vision_proj.weight']).abs().max() > 1e-3
    assert (want['vision_proj_m.weight'] - init['vision_proj_m.weight']).abs().max() > 1e-4
    layer = 'fusion_m.layer.0.crossattention.self.query.weight'  # a sharded layer's momentum copy
    assert (want[layer] - init[layer]).abs().max() > 1e-5

    # the Grad-CAM maps of both steps (taken inside the sharded forward), gathered over ranks
    assert len(got['cams']) == len(ref['cams']) == STEPS
    for step, (g, r) in enumerate(zip(got['cams'], ref['cams'])):
        assert g.shape == r.shape and r.abs().max() > 0, step
        err = (g - r).abs().max() / r.abs().max()
        assert err < CAM_RTOL, f'Grad-CAM of step {step} differs by {err:.2e} (relative)'

    # the checkpoint: loads into a plain model (checked fit) and back into the sharded one
    from vlreg.engine.runner import load_checked
    from vlreg.utils.checkpoint_io import safe_load

    file_state = safe_load(got['ckpt'], map_location='cpu')['state_dict']
    plain = _model()
    load_checked(plain, file_state, got['ckpt'])
    worst, key = _worst(plain.state_dict(), want, want)
    assert worst < ATOL, f'{key} of the loaded checkpoint differs by {worst}'
    worst, key = _worst(got['reloaded'], state, state)
    assert worst == 0.0, f'{key} differs after loading the checkpoint back: {worst}'
