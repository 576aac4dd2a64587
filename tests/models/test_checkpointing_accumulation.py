"""Activation checkpointing (ViT, text and fusion layers) and gradient accumulation.

* checkpointing changes memory, not numbers: losses, gradients and the Grad-CAM equal the plain
  model's;
* the momentum encoders, deep copies of checkpointed online encoders, still run their own weights
  when their blocks are recomputed (LAVIS's bug: the copies' checkpointed blocks ran the online
  weights);
* accumulation 2 at batch B takes the step of one batch 2B for the deterministic parts: the EMA
  (updated once per optimizer step), the queue contents and pointer, and the MLM gradient (equal
  masked-token counts per half, so the mean over 2B is the mean of the two halves' means).
"""

from __future__ import annotations

import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

from tests.models.tiny import tiny_batch, tiny_model


def perturbed(model):
    """Online weights moved away from the momentum copies (which keep the initial ones)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def test_checkpointing_keeps_losses_gradients_and_gradcam() -> None:
    batch = tiny_batch(4)
    results = []
    for ckpt in (False, True):
        model = tiny_model(itm=True, dropout=0.0, grad_checkpointing=ckpt).train()
        torch.manual_seed(5)  # the ITM negatives are drawn at random
        out = model.loss(batch)
        total = sum(v for k, v in out.items() if k.startswith('loss'))
        total.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        cam, _ = model.gradcam(batch['image'], batch['input_ids'], batch['attention_mask'], layer=1)
        results.append((total.detach(), grads, cam))
    (l0, g0, c0), (l1, g1, c1) = results
    torch.testing.assert_close(l1, l0)
    assert g0.keys() == g1.keys() and any('fusion.layer' in k for k in g0)
    for key in g0:
        torch.testing.assert_close(g1[key], g0[key], atol=1e-5, rtol=1e-4, msg=key)
    torch.testing.assert_close(c1, c0, atol=1e-6, rtol=1e-5)


def _run(module, *inputs):
    """Train mode, gradients on (so the checkpointed path runs): output and the gradients of the
    module's own weights (the momentum copies' weights are switched to requires_grad here)."""
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    inputs = [x.clone().requires_grad_(True) if x.is_floating_point() else x for x in inputs]
    out = module(*inputs)
    out = out.hidden if hasattr(out, 'hidden') else out
    out.square().sum().backward()
    return out.detach(), [p.grad for p in params]


@pytest.mark.parametrize('name', ['image_backbone', 'text_backbone', 'fusion'])
def test_momentum_encoders_run_their_own_weights(name: str) -> None:
    model = perturbed(tiny_model(itm=False, dropout=0.0, grad_checkpointing=True)).train()
    online, momentum = getattr(model, name), getattr(model, f'{name}_m')
    batch = tiny_batch(2)
    if name == 'image_backbone':
        inputs = (batch['image'],)
    elif name == 'text_backbone':
        inputs = (batch['input_ids'], batch['attention_mask'])
    else:
        g = torch.Generator().manual_seed(3)
        inputs = (
            torch.randn(2, 9, 64, generator=g),
            batch['attention_mask'],
            torch.randn(2, 17, 64, generator=g),
        )
    # reference: the momentum weights in a module that is not checkpointed
    plain = copy.deepcopy(momentum)
    if name == 'image_backbone':
        plain.vit.set_grad_checkpointing(False)
    else:
        plain.grad_checkpointing = False
    want, want_grads = _run(plain, *inputs)
    got, got_grads = _run(momentum, *inputs)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    online_out, _ = _run(online, *inputs)
    assert (online_out - got).abs().max() > 1e-2  # the online weights would give other numbers


def _equal_count_batch(batch: int) -> dict:
    """tiny_batch with exactly two masked tokens per caption."""
    data = tiny_batch(batch, length=9)
    ids, mask = data['input_ids'], data['attention_mask']
    labels = torch.full_like(ids, -100)
    labels[:, 1:3] = ids[:, 1:3]
    data['mlm_labels'] = labels
    data['mlm_input_ids'] = torch.where(labels >= 0, torch.full_like(ids, 4), ids)
    assert bool((mask[:, :3] == 1).all())
    return data


def test_accumulation_two_equals_one_double_batch() -> None:
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16, loss_weight=0.0),
        mlm=dict(type='MLMLoss'),
    )
    full = _equal_count_batch(8)
    halves = [{k: v[s : s + 4] for k, v in full.items()} for s in (0, 4)]
    models = []
    for counts, batches in ((1, [full]), (2, halves)):
        model = perturbed(tiny_model(losses=dict(losses), itm=False, dropout=0.0)).train()
        model.momentum = 0.5  # a large EMA step: one update vs two is plain to see
        params = [p for p in model.parameters() if p.requires_grad]
        wrapper = OptimWrapper(torch.optim.SGD(params, lr=0.5), accumulative_counts=counts)
        for data in batches:
            model.train_step(dict(inputs=data, data_samples=None), wrapper)
        models.append(model)
    one, acc = (m.state_dict() for m in models)
    assert one.keys() == acc.keys()
    momentum_keys = [k for k in one if k.split('.')[0].endswith('_m')]
    queue_keys = [k for k in one if 'queue' in k]
    assert momentum_keys and queue_keys
    assert int(one['losses.itc.queue_ptr']) == 8
    for key in one:  # EMA, queues, pointer and the SGD step of the MLM gradient
        torch.testing.assert_close(acc[key], one[key], atol=1e-6, rtol=1e-5, msg=key)
