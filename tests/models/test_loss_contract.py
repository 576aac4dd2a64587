"""The losses' contract (issue 8, item 1): typed read-only features, a per-step context for shared work,
no dependence on the order of the ``losses`` config, and build-time errors for unmet needs."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tests.models.loss_context import model_context
from tests.models.tiny import tiny_batch, tiny_model
from vlreg.models.losses import ITCLoss, MLMLoss, VLFeatures, check_loss

LOSSES = dict(
    itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
    itm=dict(type='ITMLoss'),
    mlm=dict(type='MLMLoss'),
    itm_softmask=dict(type='SoftMaskITMLoss', layer=0, prob=0.5),
)


def _softmask_batch() -> dict:
    batch = tiny_batch(4, seed=3)
    ids = batch['input_ids']
    word_ids = torch.where(
        batch['attention_mask'].bool(), torch.arange(ids.shape[1]) - 1, torch.full_like(ids, -1)
    )
    word_ids[:, 0] = -1
    batch['word_ids'] = word_ids
    batch['content_mask'] = (word_ids >= 0).long()
    return batch


def _step(model: torch.nn.Module, order: tuple[str, ...], seed: int) -> tuple[dict, dict]:
    """One training step (dropout on, random negatives, words and gate) of a copy of ``model`` whose
    losses are listed in ``order`` (as a config listing them so builds them): the outputs and the
    parameter gradients."""
    model = copy.deepcopy(model).train()
    model.losses = torch.nn.ModuleDict({k: model.losses[k] for k in order})
    torch.manual_seed(seed)
    out = model(_softmask_batch(), None, 'loss')
    total, _ = model.parse_losses(out)
    total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return out, grads


def test_loss_order_in_the_config_does_not_matter():
    model = tiny_model(losses=LOSSES, dropout=0.2, seed=0)
    for seed in range(20):  # the first seed whose soft-mask gate (prob 0.5) opens
        ref_out, ref_grads = _step(model, tuple(LOSSES), seed)
        if ref_out['loss_itm_softmask'] > 0:
            break
    assert ref_out['loss_itm_softmask'] > 0  # the gated loss ran
    for order in (('itm_softmask', 'mlm', 'itm', 'itc'), ('itm', 'itm_softmask', 'itc', 'mlm')):
        out, grads = _step(model, order, seed)
        assert list(out) == list(ref_out), order  # the same entries in the same order (same sum)
        for k in ref_out:
            assert torch.equal(out[k], ref_out[k]), (order, k)
        assert grads.keys() == ref_grads.keys()
        for k in grads:
            assert torch.equal(grads[k], ref_grads[k]), (order, k)


def test_features_are_read_only_and_losses_write_nothing():
    model = tiny_model(losses=LOSSES).train()
    batch = _softmask_batch()
    keys = set(batch)
    feats = model.extract_features(batch)
    with pytest.raises(dataclasses.FrozenInstanceError):
        feats.image_embed = feats.text_embed
    with pytest.raises(TypeError):
        feats.views['image_aug'] = feats.views.get('image_aug')
    with pytest.raises(TypeError):
        feats.inputs['itm_pos'] = feats.image
    before = {f.name: getattr(feats, f.name) for f in dataclasses.fields(VLFeatures)}
    values = {k: v.detach().clone() for k, v in before.items() if isinstance(v, torch.Tensor)}
    ctx = model_context(model, feats)
    for name in reversed(sorted(model.losses)):  # ITM and the soft-mask before ITC: nothing missing
        model.losses[name](ctx)
    for k, v in before.items():
        assert getattr(feats, k) is v, k
    for k, v in values.items():
        assert torch.equal(getattr(feats, k), v), k
    assert set(batch) == keys


def test_context_similarities_are_itc_s_batch_columns():
    """ITM mines its negatives from the batch columns of ITC's [momentum batch ; queue]
    similarities (ALBEF), computed without the queue: equal up to float summation order. The
    momentum embeddings are moved off the online ones (a fresh model's are equal), so that reading the
    online features instead would fail."""
    model = tiny_model(losses=LOSSES).eval()
    with torch.no_grad():
        f = model.extract_features(tiny_batch(4, seed=5))
        g = torch.Generator().manual_seed(0)
        moved = {
            k: F.normalize(
                getattr(f.momentum, k) + torch.randn(getattr(f.momentum, k).shape, generator=g),
                dim=-1,
            )
            for k in ('image_embed', 'text_embed')
        }
        f = dataclasses.replace(f, momentum=dataclasses.replace(f.momentum, **moved))
        ctx = model_context(model, f)
        sim_i2t, sim_t2i = ctx.similarities()
        f, itc = ctx.features, model.losses['itc']
        full_i2t = (
            f.image_embed @ torch.cat([f.momentum.text_embed, itc.text_queue.t()]).t() / f.temp
        )
        full_t2i = (
            f.text_embed @ torch.cat([f.momentum.image_embed, itc.image_queue.t()]).t() / f.temp
        )
    torch.testing.assert_close(sim_i2t, full_i2t[:, :4], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sim_t2i, full_t2i[:, :4], rtol=1e-6, atol=1e-6)
    assert ctx.hard_negatives() is ctx.hard_negatives()  # drawn once per step


def test_shared_positive_pass_runs_once():
    model = tiny_model(losses=LOSSES).train()
    ctx = model_context(model, model.extract_features(_softmask_batch()))
    assert ctx.attn_layer == 0 == model.gradcam_layer
    pos = ctx.positive_fusion()
    assert pos.cross_attn is not None and ctx.positive_fusion() is pos
    assert ctx.positive_itm_logits() is ctx.positive_itm_logits()
    assert model.losses['itm_softmask'].positive_pass(ctx)[0] is pos


@pytest.mark.parametrize(
    'head,loss', [('mlm', 'MLMLoss'), ('itm', 'ITMLoss'), ('itm', 'SoftMaskITMLoss')]
)
def test_a_loss_without_its_head_fails_at_build_naming_the_loss(head, loss):
    losses = dict(itc=LOSSES['itc'], extra=dict(type=loss))
    with pytest.raises(
        ValueError,
        match=rf"losses\.extra \({loss}\) needs the model's {head}_head, "
        'but it is None',
    ):
        tiny_model(losses=losses, itm=head != 'itm', mlm=head != 'mlm')


def test_a_loss_needing_momentum_fails_at_build_without_it(monkeypatch):
    monkeypatch.setattr(MLMLoss, 'needs_momentum', True)
    with pytest.raises(
        ValueError,
        match=r'losses\.mlm \(MLMLoss\) needs the momentum encoders, but '
        r'model\.momentum is None',
    ):
        tiny_model(momentum=None)
    assert tiny_model(momentum=0.995).losses['mlm'].needs_momentum


def test_unknown_declared_feature_fails_naming_the_loss():
    loss = ITCLoss(embed_dim=8, queue_size=0)
    loss.requires = ('image_embed', 'image_feat')
    with pytest.raises(
        ValueError, match=r"losses\.itc \(ITCLoss\) requires features \['image_feat'\]"
    ):
        check_loss('itc', loss, heads={}, has_momentum=True)


def test_conflicting_gradcam_layers_name_both_losses():
    losses = dict(
        itc=LOSSES['itc'],
        a=dict(type='SoftMaskITMLoss', layer=0),
        b=dict(type='SoftMaskITMLoss', layer=1),
    )
    with pytest.raises(
        ValueError,
        match=r'different fusion layers \[0, 1\] \(losses\.a: layer=0, '
        r'losses\.b: layer=1\)',
    ):
        tiny_model(losses=losses, mlm=False)


def test_a_missing_batch_input_fails_naming_it():
    model = tiny_model(losses=LOSSES).train()
    batch = tiny_batch(4)  # no word annotations
    with pytest.raises(
        KeyError, match=r"SoftMaskITMLoss needs features \['word_ids', 'content_mask'\]"
    ):
        model(batch, None, 'loss')
