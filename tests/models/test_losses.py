"""Losses and model utilities against formulas written independently here (float64 numpy)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.models.loss_context import model_context, stub_context
from tests.models.tiny import tiny_batch, tiny_model
from vlreg.models.losses import ITCLoss, sample_hard_negatives
from vlreg.models.utils.ema import copy_params, ema_update


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def reference_itc(v, t, v_m, t_m, img_q, txt_q, temp, alpha):
    """ALBEF's ITC written out in numpy: rows online, columns [momentum batch ; queue]."""
    v, t, v_m, t_m, img_q, txt_q = (
        np.asarray(a, dtype=np.float64) for a in (v, t, v_m, t_m, img_q, txt_q)
    )
    cols_t = np.concatenate([t_m, txt_q.T])
    cols_v = np.concatenate([v_m, img_q.T])
    n = v.shape[0]
    onehot = np.zeros((n, cols_t.shape[0]))
    onehot[np.arange(n), np.arange(n)] = 1
    total = 0.0
    for rows, rows_m, cols in ((v, v_m, cols_t), (t, t_m, cols_v)):
        sim = rows @ cols.T / temp
        sim_m = rows_m @ cols.T / temp
        soft = np.exp(np_log_softmax(sim_m))
        target = alpha * soft + (1 - alpha) * onehot
        total += -(np_log_softmax(sim) * target).sum(axis=1).mean()
    return total / 2


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


@pytest.mark.parametrize('alpha', [0.0, 0.4])
def test_itc_matches_reference_and_enqueues_in_order(alpha):
    torch.manual_seed(0)
    loss = ITCLoss(embed_dim=8, queue_size=12).train()
    img_q, txt_q = loss.image_queue.clone(), loss.text_queue.clone()
    v, t, v_m, t_m = (unit(torch.randn(4, 8)) for _ in range(4))
    temp = torch.tensor(0.07)
    model = torch.nn.Module()  # only .training is read by ITC
    ctx = stub_context(
        model,
        image_embed=v,
        text_embed=t,
        image_embed_m=v_m,
        text_embed_m=t_m,
        temp=temp,
        alpha=alpha,
    )
    out = loss(ctx)['loss_itc']
    ref = reference_itc(v, t, v_m, t_m, img_q, txt_q, 0.07, alpha)
    assert abs(out.item() - ref) < 1e-5
    # the momentum features went into the queue as columns 0..3, in batch order; pointer moved by 4
    assert torch.equal(loss.image_queue[:, :4], v_m.t())
    assert torch.equal(loss.text_queue[:, :4], t_m.t())
    assert torch.equal(loss.image_queue[:, 4:], img_q[:, 4:])
    assert int(loss.queue_ptr) == 4


def test_itc_gradients_read_the_queue_as_it_was_before_the_enqueue():
    """Backward runs after the step's enqueue: the gradient of every step must still be the one of
    the queue the loss scored (a copy), over successive steps, for image and text rows; a second
    forward overwriting that copy before the first backward must raise, not mix queues."""
    torch.manual_seed(1)
    loss = ITCLoss(embed_dim=8, queue_size=6).train()
    model = torch.nn.Module()
    temp = 0.07
    for _ in range(3):  # the queue wraps (batch 4 of 6 columns): every column changes over time
        img_q, txt_q = loss.image_queue.clone().double(), loss.text_queue.clone().double()
        v, t = unit(torch.randn(4, 8)).requires_grad_(), unit(torch.randn(4, 8)).requires_grad_()
        v_m, t_m = unit(torch.randn(4, 8)), unit(torch.randn(4, 8))
        fields = dict(image_embed_m=v_m, text_embed_m=t_m, temp=torch.tensor(temp), alpha=0.0)
        ctx = stub_context(model, image_embed=v, text_embed=t, **fields)
        grad_v, grad_t = torch.autograd.grad(loss(ctx)['loss_itc'], (v, t))
        assert not torch.equal(loss.text_queue.double(), txt_q)  # the enqueue happened first
        # the same loss in float64, written here: one-hot targets over [momentum batch ; queue]
        v64, t64 = v.detach().double().requires_grad_(), t.detach().double().requires_grad_()
        eye = torch.arange(4)
        ref = 0.5 * (
            torch.nn.functional.cross_entropy(
                v64 @ torch.cat([t_m.double(), txt_q.t()]).t() / temp, eye
            )
            + torch.nn.functional.cross_entropy(
                t64 @ torch.cat([v_m.double(), img_q.t()]).t() / temp, eye
            )
        )
        ref_v, ref_t = torch.autograd.grad(ref, (v64, t64))
        torch.testing.assert_close(grad_v.double(), ref_v, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grad_t.double(), ref_t, atol=1e-6, rtol=1e-5)
    first = loss(stub_context(model, image_embed=v, text_embed=t, **fields))['loss_itc']
    loss(stub_context(model, image_embed=v, text_embed=t, **fields))
    with pytest.raises(RuntimeError, match='inplace'):
        first.backward()


def test_queue_wraps_around_and_rejects_bad_sizes():
    loss = ITCLoss(embed_dim=4, queue_size=8).train()
    model = torch.nn.Module()
    batches = []
    for step in range(3):
        v_m, t_m = unit(torch.randn(4, 4)), unit(torch.randn(4, 4))
        batches.append(v_m)
        loss(
            stub_context(
                model,
                image_embed=v_m,
                text_embed=t_m,
                image_embed_m=v_m,
                text_embed_m=t_m,
                temp=torch.tensor(0.1),
                alpha=0.0,
            )
        )
    # third batch overwrote the first slot
    assert torch.equal(loss.image_queue[:, :4], batches[2].t())
    assert torch.equal(loss.image_queue[:, 4:], batches[1].t())
    assert int(loss.queue_ptr) == 4


def _ring_reference(queue: np.ndarray, ptr: int, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """A ring buffer written one element at a time: row i goes to column ptr, then ptr + 1 ..."""
    queue = queue.copy()
    for row in rows:
        queue[:, ptr] = row
        ptr = (ptr + 1) % queue.shape[1]
    return queue, ptr


@pytest.mark.parametrize(
    'queue_size,batches', [(6, (4, 4, 4, 3)), (3, (4, 2)), (8, (4, 4, 4)), (5, (2, 1, 3, 5))]
)
def test_queue_is_a_ring_buffer_of_any_size(queue_size, batches):
    """Any queue size works (no multiple-of-the-batch rule, short last batches too): the queues
    equal an element-by-element ring buffer, and the loss reads exactly that queue."""
    torch.manual_seed(1)
    loss = ITCLoss(embed_dim=4, queue_size=queue_size, use_image_ids=True).train()
    model = torch.nn.Module()
    img_q, txt_q = loss.image_queue.double().numpy(), loss.text_queue.double().numpy()
    idx_q, ptr = loss.idx_queue.double().numpy(), 0
    for step, n in enumerate(batches):
        v, t, v_m, t_m = (unit(torch.randn(n, 4)) for _ in range(4))
        ids = torch.arange(n) + 100 * (step + 1)
        out = loss(
            stub_context(
                model,
                image_embed=v,
                text_embed=t,
                image_embed_m=v_m,
                text_embed_m=t_m,
                temp=torch.tensor(0.1),
                alpha=0.0,
                image_ids=ids,
            )
        )['loss_itc']
        if step == len(batches) - 1:  # ids never repeat across steps: targets are the diagonal
            assert abs(out.item() - reference_itc(v, t, v_m, t_m, img_q, txt_q, 0.1, 0.0)) < 1e-5
        img_q, _ = _ring_reference(img_q, ptr, v_m.double().numpy())
        txt_q, _ = _ring_reference(txt_q, ptr, t_m.double().numpy())
        idx_q, ptr = _ring_reference(idx_q, ptr, ids.double().numpy()[:, None])
        assert np.allclose(loss.image_queue.double().numpy(), img_q, atol=1e-7)
        assert np.allclose(loss.text_queue.double().numpy(), txt_q, atol=1e-7)
        assert np.array_equal(loss.idx_queue.double().numpy(), idx_q)
        assert int(loss.queue_ptr) == ptr


def test_itc_with_image_ids_treats_same_image_as_positive():
    loss = ITCLoss(embed_dim=4, queue_size=0, use_image_ids=True)
    v = unit(torch.randn(4, 4))
    t = unit(torch.randn(4, 4))
    ids = torch.tensor([7, 7, 3, 5])
    out = loss(
        stub_context(
            torch.nn.Module(),
            image_embed=v,
            text_embed=t,
            image_embed_m=v,
            text_embed_m=t,
            image_ids=ids,
            temp=torch.tensor(0.1),
            alpha=0.0,
        )
    )['loss_itc']
    pos = (ids[:, None] == ids[None]).double()
    target = pos / pos.sum(1, keepdim=True)
    ref = 0.0
    for a, b in ((v, t), (t, v)):
        logp = torch.log_softmax(a.double() @ b.double().t() / 0.1, dim=1)
        ref += -(logp * target).sum(1).mean().item()
    assert abs(out.item() - ref / 2) < 1e-5


def test_hard_negatives_are_never_positive():
    torch.manual_seed(0)
    n = 6
    sim = torch.randn(n, n) * 5
    for _ in range(200):
        img_neg, txt_neg = sample_hard_negatives(sim, sim.t())
        assert (img_neg != torch.arange(n)).all() and (txt_neg != torch.arange(n)).all()
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    for _ in range(200):
        img_neg, txt_neg = sample_hard_negatives(sim, sim.t(), ids)
        assert (ids[img_neg] != ids).all() and (ids[txt_neg] != ids).all()
    with pytest.raises(ValueError, match='no valid negative'):
        sample_hard_negatives(sim[:2, :2], sim[:2, :2], torch.tensor([1, 1]))


def test_hard_negative_frequencies_follow_softmax():
    torch.manual_seed(1)
    sim_t2i = torch.tensor([[5.0, 1.0, 0.0], [0.0, 5.0, 2.0], [1.0, 1.0, 5.0]])
    draws = 4000
    counts = torch.zeros(3, 3)
    for _ in range(draws):
        img_neg, _ = sample_hard_negatives(sim_t2i.t(), sim_t2i)
        counts[torch.arange(3), img_neg] += 1
    expected = torch.softmax(sim_t2i, dim=1) + 1e-5
    expected.fill_diagonal_(0)
    expected = expected / expected.sum(1, keepdim=True)
    freq = counts / draws
    assert (freq - expected).abs().max() < 4 * (0.25 / draws) ** 0.5


def test_ema_update_formula_and_tied_weights():
    model = tiny_model()
    online, shadow = model._momentum_modules()
    with torch.no_grad():
        for p in model.text_backbone.parameters():
            p.add_(torch.randn_like(p))
    before_m = {n: p.clone() for n, p in model.text_backbone_m.named_parameters()}
    online_now = dict(model.text_backbone.named_parameters())
    ema_update(online, shadow, 0.9)
    for n, p_m in model.text_backbone_m.named_parameters():
        assert torch.allclose(p_m, 0.9 * before_m[n] + 0.1 * online_now[n], atol=1e-6), n
    # the MLM decoder is tied to the word embeddings in both copies, and updated once
    assert (
        model.mlm_head_m.decoder.weight is model.text_backbone_m.embeddings.word_embeddings.weight
    )
    copy_params(online, shadow)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.text_backbone.parameters(), model.text_backbone_m.parameters())
    )
    assert not any(p.requires_grad for m in shadow for p in m.parameters())


def test_mlm_distillation_formula():
    model = tiny_model().eval()
    batch = tiny_batch()
    feats = dataclasses.replace(model.extract_features(batch), alpha=0.4)
    out = model.losses['mlm'](model_context(model, feats))['loss_mlm']
    masked = batch['mlm_labels'] != -100
    with torch.no_grad():
        hid = model.fusion(
            model.text_backbone(batch['mlm_input_ids'], batch['attention_mask']),
            batch['attention_mask'],
            feats.image_tokens,
        ).hidden
        logits = model.mlm_head(hid)[masked].double()
        hid_m = model.fusion_m(
            model.text_backbone_m(batch['mlm_input_ids'], batch['attention_mask']),
            batch['attention_mask'],
            feats.momentum.image_tokens,
        ).hidden
        soft = torch.softmax(model.mlm_head_m(hid_m)[masked].double(), dim=1)
    logp = torch.log_softmax(logits, dim=1)
    ce = -logp[torch.arange(len(logp)), batch['mlm_labels'][masked]]
    ref = (0.6 * ce + 0.4 * -(soft * logp).sum(1)).mean()
    assert abs(out.item() - ref.item()) < 1e-5


def test_training_step_updates_and_losses_are_summed_explicitly():
    model = tiny_model().train()
    out = model(tiny_batch(), None, 'loss')
    assert {'loss_itc', 'loss_itm', 'loss_mlm', 'itm_acc', 'mlm_acc', 'temp'} <= set(out)
    total, log_vars = model.parse_losses(out)
    assert torch.allclose(total, out['loss_itc'] + out['loss_itm'] + out['loss_mlm'])
    total.backward()
    assert model.temp.grad is not None and model.vision_proj.weight.grad is not None
    assert all(p.grad is None for m in model._momentum_modules()[1] for p in m.parameters())


def test_wrong_slot_names_the_slot():
    with pytest.raises(
        KeyError,
        match=r"'image_backbone' expects a component from the 'backbone'"
        r'.*ITCLoss.*is a loss',
    ):
        tiny_model().__class__(
            image_backbone=dict(type='ITCLoss'), text_backbone={}, fusion={}, losses={}
        )
