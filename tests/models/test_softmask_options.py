"""Soft-mask and multi-view options (issue 7 items 5-7, issue 9 item 8): Grad-CAM mode, fp16 Grad-CAM,
which views feed ITC / ITM and their weights, the soft mask's warm-up. References are written here."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub

from tests.conftest import ROOT
from tests.models.loss_context import model_context, stub_context
from tests.models.tiny import tiny_batch, tiny_model
from vlreg.models.losses import EncodedView, ITCLoss, VLFeatures

LAYER = 0  # the tiny fusion has 2 layers; the last one cannot be explained


def softmask_batch(batch: int = 4, seed: int = 1) -> dict:
    out = tiny_batch(batch, seed=seed)
    ids = out['input_ids']
    word_ids = torch.where(
        out['attention_mask'].bool(), torch.arange(ids.shape[1]) - 1, torch.full_like(ids, -1)
    )
    word_ids[:, 0] = -1
    out['word_ids'] = word_ids
    out['content_mask'] = (word_ids >= 0).long()
    return out


def softmask_model(mode: str = 'train', dropout: float = 0.3, seed: int = 0):
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(type='ITMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=LAYER, gradcam_mode=mode),
    )
    return tiny_model(losses=losses, mlm=False, seed=seed, dropout=dropout)


def reference_mask(fusion, itm_head, feats: VLFeatures, word: torch.Tensor) -> torch.Tensor:
    """Grad-CAM -> mask by hand: mean_heads(A * relu(dS/dA)) without [CLS], the word's rows averaged,
    min-max normalised, m = 1 - g_hat; ``fusion`` / ``itm_head`` are used as given (mode, precision)."""
    text, image = feats.text_tokens.detach(), feats.image_tokens.detach()
    out = fusion(text, feats.text_mask, image, None, LAYER)
    (grad,) = torch.autograd.grad(itm_head(out.cls)[:, 1].sum(), out.cross_attn)
    probs, grad = out.cross_attn.double(), grad.double()
    cam = (probs * grad.clamp(min=0)).mean(dim=1)[..., 1:]  # [B, L, N]
    masks = []
    for b in range(cam.shape[0]):
        rows = (feats.word_ids[b] == word[b]).nonzero().view(-1)
        g = cam[b, rows].mean(dim=0)
        masks.append(1 - (g - g.min()) / (g.max() - g.min()))
    return torch.stack(masks).float()


# -- item 5: gradcam_mode ----------------------------------------------------------------------------
def test_eval_mode_mask_is_the_dropout_free_gradcam_and_train_mode_is_not():
    model = softmask_model('eval', dropout=0.3).train()
    batch = softmask_batch()
    feats = model.extract_features(batch)
    ctx = model_context(model, feats)
    assert ctx.attn_layer is None  # the shared positive pass does not materialise probabilities
    loss = model.losses['itm_softmask']
    torch.manual_seed(5)
    mask_eval, valid, word = loss.soft_masks(ctx)
    assert ctx._positive is None  # eval mode ran its own pass, not the shared one
    assert valid.all()
    assert all(m.training for m in model.modules())  # dropout is back on after the pass
    frozen = copy.deepcopy(model).eval()
    expected = reference_mask(frozen.fusion, frozen.itm_head, feats, word)
    assert expected.min() < 0.5  # not a flat map
    assert torch.allclose(mask_eval, expected, atol=1e-5)

    train = softmask_model('train', dropout=0.3)
    train.load_state_dict(model.state_dict())
    train.train()
    torch.manual_seed(5)  # the same word draw
    mask_train, _, word_train = train.losses['itm_softmask'].soft_masks(model_context(train, feats))
    # the training pass draws dropout before the word: compare with the dropout-free map of its word
    expected_train = reference_mask(frozen.fusion, frozen.itm_head, feats, word_train)
    assert (mask_train - expected_train).abs().max() > 1e-2  # dropout changes the map


def test_train_mode_materialises_the_layer_in_the_itm_pass():
    model = softmask_model('train').train()
    assert model.itm_attn_layer == LAYER
    model = softmask_model('eval').train()
    assert model.itm_attn_layer is None
    out = model(
        softmask_batch(), None, 'loss'
    )  # a whole step: the separate pass, then the masked ITM
    model.parse_losses(out)[0].backward()
    assert out['softmask_mean'] < 1.0 and out['loss_itm_softmask'] > 0
    assert model.fusion.layer[0].crossattention.self.query.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='gradcam_mode'):
        softmask_model('test')


# -- item 7: fp16 Grad-CAM -------------------------------------------------------------------------
def _tiny_logit_model(mode: str, device: str = 'cpu'):
    model = softmask_model(mode, dropout=0.0).to(device).eval()
    with torch.no_grad():
        model.itm_head.fc.weight.mul_(1e-6)  # match logits ~1e-6 away from the bias
    return model


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_fp16_autocast_gradcam_does_not_underflow_to_a_flat_mask(mode):
    _check_fp16_mask(mode, 'cpu')


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_fp16_autocast_gradcam_on_cuda(mode):
    _check_fp16_mask(mode, 'cuda')


def _check_fp16_mask(mode: str, device: str) -> None:
    model = _tiny_logit_model(mode, device)
    batch = {k: v.to(device) for k, v in softmask_batch().items()}
    feats = model.extract_features(batch)
    loss = model.losses['itm_softmask']
    with torch.autocast(device_type=device, dtype=torch.float16):
        # the set-up is real: the plain fp16 gradient of the match logit underflows to 0
        out = model.fuse(feats.text_tokens, feats.text_mask, feats.image_tokens, attn_layer=LAYER)
        (plain,) = torch.autograd.grad(model.itm_head(out.cls)[:, 1].sum(), out.cross_attn)
        assert plain.dtype == torch.float16 and (plain[..., 1:] == 0).all()
        torch.manual_seed(2)
        mask, valid, word = loss.soft_masks(model_context(model, feats))
    expected = reference_mask(model.fusion, model.itm_head, feats, word)  # fp32, no autocast
    assert valid.all() and expected.min() < 0.5
    assert (mask.min(dim=1).values < 0.5).all()  # not flat (the old code gave all ones)
    if mode == 'eval':  # the separate pass runs in fp32
        assert torch.allclose(mask, expected, atol=1e-4)
    else:  # the fp16 forward differs a little from fp32; the map must still be the same map
        corr = torch.corrcoef(torch.stack([mask.flatten(), expected.flatten()]))[0, 1]
        assert corr > 0.95, corr


def test_minmax_of_a_map_of_tiny_values_is_not_flat():
    from vlreg.models.utils.softmask import minmax_normalise, soft_mask_from_cam

    tiny = torch.tensor([[0.0, 1e-14, 3e-14, 2e-14]])  # a Grad-CAM row of a near-zero ITM logit
    assert torch.allclose(minmax_normalise(tiny), torch.tensor([[0.0, 1 / 3, 1.0, 2 / 3]]))
    assert torch.allclose(soft_mask_from_cam(tiny), torch.tensor([[1.0, 2 / 3, 0.0, 1 / 3]]))
    # a constant map up to fp32 rounding stays constant (all ones as a mask)
    flat = torch.tensor([[1.0, 1.0 + 1e-7, 1.0]])
    assert torch.equal(soft_mask_from_cam(flat), torch.ones(1, 3))


# -- item 6: views and their weights -------------------------------------------------------------
def _ce(logits: torch.Tensor, label: int) -> torch.Tensor:
    return -F.log_softmax(logits, dim=-1)[:, label]


@pytest.mark.parametrize('weights', [None, [1.0, 0.5]])
def test_itm_masked_text_view_rows_are_positives_in_order(weights):
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(
            type='ITMLoss',
            views=[('image', 'text'), ('image', 'text_masked')],
            view_weights=weights,
        ),
    )
    model = tiny_model(losses=losses, mlm=False, dropout=0.0).eval()
    assert model.text_views == ['text_masked']
    batch = tiny_batch(4)
    feats = model.extract_features(batch)
    img_neg, txt_neg = torch.tensor([1, 2, 3, 0]), torch.tensor([3, 0, 1, 2])
    out = model.losses['itm'].loss_with_negatives(model_context(model, feats), img_neg, txt_neg)
    # independently: the masked caption encoded on its own, every pair scored on its own
    img, _ = model.encode_image(batch['image'])
    txt, _ = model.encode_text(batch['input_ids'], batch['attention_mask'])
    txt_m, _ = model.encode_text(batch['mlm_input_ids'], batch['attention_mask'])
    mask = batch['attention_mask']

    def score(t, m, i):
        return model.itm_head(model.fuse(t[None], m[None], i[None]).cls)

    wo, wm = weights or (1.0, 1.0)
    pairs = (
        [(txt[b], mask[b], img[b], 1, wo) for b in range(4)]  # original positives
        + [(txt_m[b], mask[b], img[b], 1, wm) for b in range(4)]  # masked caption: positives
        + [(txt[b], mask[b], img[img_neg[b]], 0, wo) for b in range(4)]  # text b, negative image
        + [(txt[txt_neg[b]], mask[txt_neg[b]], img[b], 0, wo) for b in range(4)]
    )
    rows = [_ce(score(t, m, i), label) for t, m, i, label, _ in pairs]
    w = [weight for *_, weight in pairs]
    w = torch.tensor(w)
    expected = (torch.cat(rows) * w).sum() / w.sum()
    assert torch.allclose(out['loss_itm'], expected, atol=1e-5), (out['loss_itm'], expected)


def _itc_direction(rows, cols, rows_m, temp, alpha):
    targets = alpha * F.softmax(rows_m @ cols.t() / temp, dim=1) + (1 - alpha) * torch.eye(
        len(rows)
    )
    return -(targets * F.log_softmax(rows @ cols.t() / temp, dim=1)).sum(dim=1).mean()


@pytest.mark.parametrize('weights', [None, [1.0, 0.25, 0.5]])
def test_itc_view_weighting_is_the_documented_formula(weights):
    g = torch.Generator().manual_seed(0)
    unit = [F.normalize(torch.randn(4, 8, generator=g), dim=-1) for _ in range(7)]
    v, t, v_m, t_m, v_aug, t_masked, _ = unit
    temp, alpha = torch.tensor(0.1), 0.4
    ctx = stub_context(
        image_embed=v,
        text_embed=t,
        image_embed_m=v_m,
        text_embed_m=t_m,
        views=dict(
            image_aug=EncodedView(torch.empty(0), v_aug),
            text_masked=EncodedView(torch.empty(0), t_masked),
        ),
        temp=temp,
        alpha=alpha,
    )
    views = [('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')]
    loss = ITCLoss(embed_dim=8, queue_size=0, views=views, view_weights=weights)
    got = loss(ctx)['loss_itc']
    per_view = []
    for rows_v, rows_t in ((v, t), (v_aug, t), (v, t_masked)):
        # columns and distillation targets: always the original pair's momentum features
        per_view.append(
            (
                _itc_direction(rows_v, t_m, v_m, temp, alpha)
                + _itc_direction(rows_t, v_m, t_m, temp, alpha)
            )
            / 2
        )
    w = weights or [1 / 3] * 3
    expected = sum(wk * lk for wk, lk in zip(w, per_view))
    assert torch.allclose(got, expected, atol=1e-6), (got, expected)
    with pytest.raises(ValueError, match='view_weights'):
        ITCLoss(embed_dim=8, queue_size=0, views=views, view_weights=[1.0, 1.0])


def test_paper_configs_feed_the_masked_caption_to_itc_and_itm():
    for name in (
        'softmask_vit-t-bert-t_1xb32_synthetic-demo.py',
        'softmask_vit-s-minilm_1xb32_flickr8k-10e.py',
        'ablation/flickr8k_augment.py',
    ):
        cfg = Config.fromfile(str(ROOT / 'configs' / 'softmask' / name))
        for key in ('itc', 'itm'):
            views = [tuple(v) for v in cfg.model.losses[key].views]
            assert ('image', 'text_masked') in views and ('image_aug', 'text') in views, (name, key)
        assert cfg.model.losses.itc.view_weights == pytest.approx([1 / 3] * 3)


# -- issue 9 item 8: the soft mask's warm-up -------------------------------------------------------
@pytest.mark.parametrize('start, ramp', [(0, 0), (5, 0), (0, 4), (3, 10)])
def test_softmask_warmup_schedule(start, ramp):
    from vlreg.engine import SoftMaskWarmupHook

    hook = SoftMaskWarmupHook(start_iter=start, ramp_iters=ramp)
    model = softmask_model('train', dropout=0.0)
    loss = model.losses['itm_softmask']
    loss.prob = 0.8
    runner = SimpleNamespace(
        model=model, iter=0, message_hub=MessageHub.get_instance('test_softmask_warmup')
    )
    hook.before_train(runner)
    for it in range(0, 20):
        if it < start:
            expected = 0.0
        elif ramp == 0:
            expected = 1.0
        else:
            expected = min(1.0, (it - start) / ramp)
        runner.iter = it
        hook.before_train_iter(runner, it)
        assert loss.warmup_factor == pytest.approx(expected), it
        assert loss.current_prob == pytest.approx(0.8 * expected), it
    assert runner.message_hub.get_scalar('train/softmask_warmup').current() == pytest.approx(
        expected
    )


def test_softmask_is_off_while_warming_up_and_the_hook_needs_the_loss():
    from vlreg.engine import SoftMaskWarmupHook

    model = softmask_model('train', dropout=0.0).train()
    batch = softmask_batch()
    loss = model.losses['itm_softmask']
    loss.warmup_factor = 0.0
    out = model(batch, None, 'loss')
    assert out['loss_itm_softmask'] == 0 and out['softmask_mean'] == 1.0
    loss.warmup_factor = 1.0
    out = model(batch, None, 'loss')
    assert out['loss_itm_softmask'] > 0 and out['softmask_mean'] < 1.0
    plain = tiny_model(mlm=False)
    runner = SimpleNamespace(model=plain, iter=0, message_hub=MessageHub.get_instance('t_sm_w2'))
    with pytest.raises(ValueError, match='no SoftMaskITMLoss'):
        SoftMaskWarmupHook(start_iter=10).before_train(runner)
