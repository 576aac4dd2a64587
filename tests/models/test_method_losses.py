"""The paper's components: focal ITC, the Grad-CAM operator, word choice, soft masks, and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.models.loss_context import model_context, stub_context
from tests.models.tiny import tiny_batch, tiny_model
from vlreg.models.losses import FocalITCLoss, ITCLoss, pick_random_words, word_map


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def itc_features(seed: int = 0, alpha: float = 0.4) -> dict:
    g = torch.Generator().manual_seed(seed)
    v, t, v_m, t_m = (unit(torch.randn(4, 8, generator=g)) for _ in range(4))
    return dict(
        image_embed=v,
        text_embed=t,
        image_embed_m=v_m,
        text_embed_m=t_m,
        temp=torch.tensor(0.07),
        alpha=alpha,
    )


@pytest.mark.parametrize('alpha', [0.0, 0.4])
def test_focal_gamma_zero_is_exactly_albef_itc(alpha):
    torch.manual_seed(0)
    itc = ITCLoss(embed_dim=8, queue_size=12).eval()
    torch.manual_seed(0)
    focal = FocalITCLoss(gamma=0.0, embed_dim=8, queue_size=12).eval()
    assert torch.equal(itc.image_queue, focal.image_queue)
    model = torch.nn.Module().eval()
    a = itc(stub_context(model, **itc_features(alpha=alpha)))['loss_itc']
    b = focal(stub_context(model, **itc_features(alpha=alpha)))['loss_itc']
    assert torch.equal(a, b)


@pytest.mark.parametrize('modulate', ['all', 'positive'])
def test_focal_against_numpy_formula(modulate):
    torch.manual_seed(0)
    # the documented default gamma = 2.0 (not passed: a changed default fails)
    loss = FocalITCLoss(modulate=modulate, embed_dim=8, queue_size=12).eval()
    f = itc_features(alpha=0.4)
    out = loss(stub_context(torch.nn.Module().eval(), **f))['loss_itc'].item()
    q_img, q_txt = loss.image_queue.double().numpy(), loss.text_queue.double().numpy()
    v, t, v_m, t_m = (
        f[k].double().numpy()
        for k in ('image_embed', 'text_embed', 'image_embed_m', 'text_embed_m')
    )
    total = 0.0
    for rows, rows_m, cols in (
        (v, v_m, np.concatenate([t_m, q_txt.T])),
        (t, t_m, np.concatenate([v_m, q_img.T])),
    ):
        s, s_m = rows @ cols.T / 0.07, rows_m @ cols.T / 0.07
        logp = s - s.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        p = np.exp(logp)
        q = np.exp(s_m - s_m.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        onehot = np.eye(4, cols.shape[0])
        if modulate == 'all':
            w = (0.4 * q + 0.6 * onehot) * (1 - p) ** 2
        else:
            w = 0.6 * onehot * (1 - p) ** 2 + 0.4 * q
        total += -(w * logp).sum(1).mean()
    assert math.isclose(out, total / 2, rel_tol=1e-5)
    plain = ITCLoss(embed_dim=8, queue_size=12).eval()
    plain.load_state_dict(loss.state_dict())
    assert (
        out < plain(stub_context(torch.nn.Module().eval(), **f))['loss_itc'].item()
    )  # focal down-weights


def test_word_choice_is_uniform_over_content_words_and_never_special():
    # tokens: [CLS] a big ##gest red , [PAD]; words: a=0, big##gest=1, red=2, ','=3
    word_ids = torch.tensor([[-1, 0, 1, 1, 2, 3, -1]]).repeat(3000, 1)
    content = torch.tensor([[0, 0, 1, 1, 1, 0, 0]]).repeat(
        3000, 1
    )  # 'a' stop word, ',' punctuation
    torch.manual_seed(0)
    word, valid = pick_random_words(word_ids, content)
    assert valid.all()
    counts = torch.bincount(word, minlength=4).float() / 3000
    assert counts[0] == 0 and counts[3] == 0
    # two content words, each with probability 1/2 (the two wordpieces of 'biggest' count once)
    assert abs(counts[1].item() - 0.5) < 4 * math.sqrt(0.25 / 3000)
    none = pick_random_words(torch.tensor([[-1, 0, -1]]), torch.tensor([[0, 0, 0]]))[1]
    assert not none.any()


def test_word_map_averages_the_word_rows():
    cam = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    word_ids = torch.tensor([[-1, 0, 1, 1], [-1, 0, 0, 1]])
    out = word_map(cam, word_ids, torch.tensor([1, 0]))
    assert torch.equal(out[0], (cam[0, 2] + cam[0, 3]) / 2)
    assert torch.equal(out[1], (cam[1, 1] + cam[1, 2]) / 2)


def softmask_batch(b: int = 4) -> dict:
    batch = tiny_batch(b)
    ids = batch['input_ids']
    word_ids = torch.where(ids > 0, torch.arange(ids.shape[1])[None] - 1, torch.full_like(ids, -1))
    word_ids[:, 0] = -1
    batch['word_ids'] = word_ids
    batch['content_mask'] = (word_ids >= 0).long()
    return batch


def softmask_model(seed: int = 0, dropout: float = 0.1):
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(type='ITMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=0),
    )
    return tiny_model(losses=losses, mlm=False, seed=seed, dropout=dropout)


def test_gradcam_equals_explicit_autograd_on_the_true_attention():
    model = softmask_model().eval()
    batch = softmask_batch()
    feats = model.extract_features(batch)
    captured = {}
    layer = model.fusion.layer[0].crossattention.self
    handle = layer.register_forward_hook(lambda m, args, out: captured.update(args=args))
    loss = model.losses['itm_softmask']
    pos, logits = loss.positive_pass(model_context(model, feats))
    handle.remove()
    # the probabilities are softmax(Q K^T / sqrt(d)) of that layer, recomputed here by hand
    # (the keys from the image tokens themselves: the fusion call may pass projected keys instead)
    hidden, context = captured['args'][0], feats.image_tokens
    q = layer._split(layer.query(hidden))
    k = layer._split(layer.key(context))
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(layer.head_dim), dim=-1)
    assert torch.allclose(probs, pos.cross_attn, atol=1e-6)
    (grad,) = torch.autograd.grad(logits[:, 1].sum(), pos.cross_attn, retain_graph=True)
    expected = (pos.cross_attn * grad.clamp(min=0))[..., 1:].mean(dim=1)
    expected = expected * batch['attention_mask'][:, :, None]
    from vlreg.models.utils.gradcam import cross_attention_gradcam

    cam, _ = cross_attention_gradcam(logits[:, 1], pos.cross_attn, batch['attention_mask'])
    assert torch.allclose(cam, expected, atol=1e-9)
    assert cam.abs().sum() > 0


def test_mask_in_unit_interval_and_damps_the_word_peak_most():
    model = softmask_model().eval()
    feats = model.extract_features(softmask_batch())
    loss = model.losses['itm_softmask']
    torch.manual_seed(3)
    mask, valid, word = loss.soft_masks(model_context(model, feats))
    assert valid.all()
    assert ((mask >= 0) & (mask <= 1)).all()
    pos, logits = loss.positive_pass(model_context(model, feats))
    from vlreg.models.utils.gradcam import cross_attention_gradcam

    cam, _ = cross_attention_gradcam(logits[:, 1], pos.cross_attn, feats.text_mask)
    g = word_map(cam, feats.word_ids, word)
    for b in range(mask.shape[0]):
        assert mask[b, g[b].argmax()] == mask[b].min()  # the most relevant patch is damped most
        assert mask[b, g[b].argmin()] == mask[b].max() == 1.0  # the least relevant is kept
        order = g[b].argsort()
        assert (mask[b, order].diff() <= 1e-6).all()  # monotone: more relevant, more damped


def test_parameter_gradients_unchanged_by_the_gradcam_step(monkeypatch):
    """Same losses, same masks: with the Grad-CAM pass, and with the masks handed in (no pass)."""
    from vlreg.models.losses.softmask_itm import SoftMaskITMLoss

    batch = softmask_batch()
    # dropout off: the word draw consumes random numbers only in the first run, which would shift the
    # dropout masks of the passes after it
    model = softmask_model(dropout=0.0).train()
    torch.manual_seed(11)
    recorded = {}
    original = SoftMaskITMLoss.soft_masks

    def record(self, ctx):
        out = original(self, ctx)
        recorded['masks'] = out
        return out

    monkeypatch.setattr(SoftMaskITMLoss, 'soft_masks', record)
    out = model(batch, None, 'loss')
    model.parse_losses(out)[0].backward()
    grads_a = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    model_b = softmask_model(dropout=0.0).train()
    monkeypatch.setattr(SoftMaskITMLoss, 'soft_masks', lambda self, ctx: recorded['masks'])
    torch.manual_seed(11)
    out_b = model_b(batch, None, 'loss')
    model_b.parse_losses(out_b)[0].backward()
    grads_b = {k: p.grad for k, p in model_b.named_parameters() if p.grad is not None}
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for k in grads_a:
        assert torch.equal(grads_a[k], grads_b[k]), k
    assert torch.equal(out['loss_itm_softmask'], out_b['loss_itm_softmask'])


def test_softmask_reuses_the_itm_positive_pass(monkeypatch):
    model = softmask_model().train()
    calls = []
    original = type(model.fusion).forward

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get('attn_layer', args[4] if len(args) > 4 else None))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model.fusion), 'forward', counting)
    out = model(softmask_batch(), None, 'loss')
    # (the loss's value against the formula: tests/models/test_mutation_guards.py)
    # ITM positives (with layer 0's probabilities), ITM negatives, soft-masked pairs: three passes of
    # the online fusion encoder, the first the only one materialising probabilities
    online = calls[:3]
    assert online == [0, None, None]
    assert out['softmask_mean'] < 1.0  # the words' maps are not flat: patches were damped


def test_last_fusion_layer_is_refused():
    """On the last fusion layer the words' cross-attention cannot reach the fused [CLS]."""
    model = softmask_model().eval()
    feats = model.extract_features(softmask_batch())
    out = model.fuse(feats.text_tokens, feats.text_mask, feats.image_tokens, attn_layer=1)
    (grad,) = torch.autograd.grad(model.itm_head(out.cls)[:, 1].sum(), out.cross_attn)
    assert grad[:, :, 1:].abs().max() == 0 and grad[:, :, 0].abs().max() > 0
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(type='ITMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=1),
    )
    with pytest.raises(ValueError, match='last fusion layer'):
        tiny_model(losses=losses, mlm=False)


def test_extra_views_feed_itc_and_itm_as_positives():
    losses = dict(
        itc=dict(
            type='ITCLoss',
            embed_dim=32,
            queue_size=16,
            views=[('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')],
        ),
        itm=dict(type='ITMLoss', views=[('image', 'text'), ('image_aug', 'text')]),
        mlm=dict(type='MLMLoss'),
    )
    model = tiny_model(losses=losses).train()
    batch = tiny_batch(4)
    with pytest.raises(KeyError, match='ImageView'):
        model(batch, None, 'loss')
    batch['image_aug'] = batch['image'].flip(-1)
    out = model(batch, None, 'loss')
    assert model.image_views == ['image_aug'] and model.text_views == ['text_masked']
    # (the values with extra views against formulas: tests/models/test_mutation_guards.py)
    model.parse_losses(out)[0].backward()
    assert model.image_backbone.vit.patch_embed.proj.weight.grad is not None
