"""Value checks of the core against formulas written independently here, each one failing on a
plausible single-line bug that the rest of the suite let through (soft-masked ITM's label, [CLS] and
sample weights, the order of the ITM rows of extra views, the Grad-CAM logit, the model's alpha).

Everything goes through public entry points: ``model(batch, mode='loss')``, a loss's return values,
``ITMLoss.loss_with_negatives`` and ``model.gradcam``; the references use only ``encode_image`` /
``encode_text`` / ``fuse`` / ``itm_head`` and ``torch.autograd``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.models.loss_context import model_context
from tests.models.tiny import tiny_batch, tiny_model

ATOL = 1e-5


def softmask_model(**softmask) -> torch.nn.Module:
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(type='ITMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=0, **softmask),
    )
    return tiny_model(losses=losses, mlm=False, dropout=0.0).eval()


def one_word_batch() -> dict:
    """Each sample has exactly one content word (so the random word choice is fixed); sample 3 none.

    Sample 0's word has two wordpieces (positions 2 and 3): its map is the mean of the two rows.
    """
    batch = tiny_batch(4, length=9, seed=5)
    ids, mask = batch['input_ids'], batch['attention_mask']
    word_ids = torch.where(
        mask.bool(), torch.arange(ids.shape[1])[None] - 1, torch.full_like(ids, -1)
    )
    word_ids[:, 0] = -1
    word_ids[0, 3] = word_ids[0, 2]
    content = torch.zeros_like(ids)
    content[0, 2:4] = 1
    content[1, 1] = 1
    content[2, 2] = 1
    batch['word_ids'], batch['content_mask'] = word_ids, content
    return batch


def reference_gradcam(
    model, image, input_ids, mask, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """ALBEF's recipe by hand: d(ITM match logit, column 1)/d(cross-attention probabilities of
    ``layer``), ReLU, times the probabilities, image [CLS] column dropped, mean over heads, padded
    rows zeroed."""
    with torch.enable_grad():
        image_tokens, _ = model.encode_image(image)
        text_tokens, _ = model.encode_text(input_ids, mask)
        fused = model.fuse(text_tokens, mask, image_tokens, attn_layer=layer)
        logits = model.itm_head(fused.cls)
        (grad,) = torch.autograd.grad(logits[:, 1].sum(), fused.cross_attn)
    probs = fused.cross_attn.detach()
    cam = (probs[..., 1:] * grad[..., 1:].clamp(min=0)).mean(dim=1)
    return cam * mask[:, :, None].to(cam.dtype), logits.detach()


def test_model_gradcam_is_the_match_logit_gradcam():
    """``model.gradcam`` (used by grounding, pointing and the visualisation) against the recipe by
    hand; the map of the other logit (column 0) is different, so a wrong column fails."""
    model = tiny_model(mlm=False, dropout=0.0).eval()
    batch = tiny_batch(4, seed=3)
    cam, logits = model.gradcam(
        batch['image'], batch['input_ids'], batch['attention_mask'], layer=0
    )
    ref, ref_logits = reference_gradcam(
        model, batch['image'], batch['input_ids'], batch['attention_mask'], layer=0
    )
    assert torch.allclose(logits, ref_logits, atol=1e-6)
    assert torch.allclose(cam, ref, rtol=1e-4, atol=1e-10), (cam - ref).abs().max()
    assert ref.abs().max() > 0


def expected_softmask_loss(model, batch: dict, label: int = 1) -> torch.Tensor:
    """The soft-masked ITM loss of PAPER.md written out: mask ``1 - minmax(word map)`` on the patch
    tokens only, the pair scored with ``label``, averaged over the samples that have a content
    word."""
    image, ids, mask = batch['image'], batch['input_ids'], batch['attention_mask']
    cam, _ = reference_gradcam(model, image, ids, mask, layer=0)
    with torch.no_grad():
        image_tokens, _ = model.encode_image(image)
        text_tokens, _ = model.encode_text(ids, mask)
        per_sample, weights = [], []
        for b in range(ids.shape[0]):
            rows = batch['content_mask'][b].bool()
            weights.append(float(rows.any()))
            if not rows.any():
                per_sample.append(torch.zeros(()))
                continue
            g = cam[b, rows].mean(0)
            g_hat = (g - g.min()) / (g.max() - g.min())
            m = 1 - g_hat
            tokens = image_tokens[b : b + 1].clone()
            tokens[:, 1:] = tokens[:, 1:] * m[None, :, None]
            logits = model.itm_head(model.fuse(text_tokens[b : b + 1], mask[b : b + 1], tokens).cls)
            per_sample.append(F.cross_entropy(logits, torch.tensor([label])))
    w = torch.tensor(weights)
    return (torch.stack(per_sample) * w).sum() / w.sum()


@pytest.mark.parametrize('label', [1, 0])
def test_softmask_itm_loss_equals_the_formula(label):
    """Label 1 by default (soft-masked pairs stay matches), the image [CLS] is not masked, and a
    sample without a content word (sample 3) does not count."""
    model = softmask_model() if label == 1 else softmask_model(label=label)
    batch = one_word_batch()
    out = model(batch, None, 'loss')
    expected = expected_softmask_loss(model, batch, label)
    assert abs(out['loss_itm_softmask'].item() - expected.item()) < ATOL, (
        out['loss_itm_softmask'].item(),
        expected.item(),
    )
    # the alternatives differ here by far more than the tolerance
    assert abs(expected - expected_softmask_loss(model, batch, 1 - label)) > 1e-3


def test_softmask_mean_diagnostic_is_the_mean_mask_of_valid_samples():
    model = softmask_model()
    batch = one_word_batch()
    out = model(batch, None, 'loss')
    cam, _ = reference_gradcam(
        model, batch['image'], batch['input_ids'], batch['attention_mask'], 0
    )
    masks = []
    for b in range(3):
        g = cam[b, batch['content_mask'][b].bool()].mean(0)
        masks.append(1 - (g - g.min()) / (g.max() - g.min()))
    assert abs(out['softmask_mean'].item() - torch.stack(masks).mean().item()) < 1e-5


def test_itm_extra_view_rows_are_labelled_as_positives():
    """ITM with the distorted image and the masked caption as extra positives, negatives pinned: the
    CE of every pair against its own label, each pair scored by its own fusion call here."""
    views = [('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')]
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16, views=views),
        itm=dict(type='ITMLoss', views=views),
    )
    model = tiny_model(losses=losses, mlm=False, dropout=0.0).eval()
    batch = tiny_batch(4, seed=7)
    batch['image_aug'] = batch['image'].flip(-1) * 0.5
    image_neg, text_neg = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 3, 0, 2])
    with torch.no_grad():
        feats = model.extract_features(batch)
        out = model.losses['itm'].loss_with_negatives(
            model_context(model, feats), image_neg, text_neg
        )
        mask = batch['attention_mask']
        img, _ = model.encode_image(batch['image'])
        img_aug, _ = model.encode_image(batch['image_aug'])
        txt, _ = model.encode_text(batch['input_ids'], mask)
        txt_masked, _ = model.encode_text(batch['mlm_input_ids'], mask)
        groups = [
            (model.itm_logits(txt, mask, img), 1),
            (model.itm_logits(txt, mask, img_aug), 1),
            (model.itm_logits(txt_masked, mask, img), 1),
            (model.itm_logits(txt, mask, img[image_neg]), 0),
            (model.itm_logits(txt[text_neg], mask[text_neg], img), 0),
        ]
    logits = torch.cat([g for g, _ in groups])
    labels = torch.cat([torch.full((4,), y) for _, y in groups])
    assert abs(out['loss_itm'].item() - F.cross_entropy(logits, labels).item()) < ATOL
    acc = (logits.argmax(1) == labels).float().mean().item()
    assert abs(out['itm_acc'].item() - acc) < 1e-6


def test_itm_accuracy_is_the_share_of_correct_pairs():
    """ALBEF's ITM, negatives pinned: ``itm_acc`` is the share of the 3B pairs whose argmax is the
    label."""
    model = tiny_model(mlm=False, dropout=0.0).eval()
    batch = tiny_batch(4, seed=9)
    image_neg, text_neg = torch.tensor([1, 2, 3, 0]), torch.tensor([3, 2, 0, 1])
    with torch.no_grad():
        feats = model.extract_features(batch)
        out = model.losses['itm'].loss_with_negatives(
            model_context(model, feats), image_neg, text_neg
        )
        mask = batch['attention_mask']
        img, _ = model.encode_image(batch['image'])
        txt, _ = model.encode_text(batch['input_ids'], mask)
        logits = torch.cat(
            [
                model.itm_logits(txt, mask, img),
                model.itm_logits(txt, mask, img[image_neg]),
                model.itm_logits(txt[text_neg], mask[text_neg], img),
            ]
        )
    labels = torch.tensor([1] * 4 + [0] * 8)
    assert abs(out['loss_itm'].item() - F.cross_entropy(logits, labels).item()) < ATOL
    assert abs(out['itm_acc'].item() - (logits.argmax(1) == labels).float().mean().item()) < 1e-6


def perturbed_momentum_model(**kwargs) -> torch.nn.Module:
    """A tiny model whose momentum encoders differ from the online ones (as after some training)."""
    model = tiny_model(dropout=0.0, **kwargs).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split('.', 1)[0].endswith('_m'):
                p.add_(0.5 * p.std().nan_to_num() * torch.randn(p.shape, generator=g))
    return model


def itc_formula(model, batch: dict, temp: float, alpha: float) -> float:
    """ALBEF's ITC in float64: rows online, columns [momentum batch ; queue], targets ``alpha *
    softmax(momentum rows @ columns / temp) + (1 - alpha) * one-hot``, directions averaged."""
    with torch.no_grad():
        _, v = model.encode_image(batch['image'])
        _, t = model.encode_text(batch['input_ids'], batch['attention_mask'])
        _, v_m, t_m = model.encode_momentum(
            batch['image'], batch['input_ids'], batch['attention_mask']
        )
    itc = model.losses['itc']
    cols_t = torch.cat([t_m, itc.text_queue.t()]).double()
    cols_v = torch.cat([v_m, itc.image_queue.t()]).double()
    onehot = torch.eye(v.shape[0], cols_t.shape[0], dtype=torch.float64)
    total = 0.0
    for rows, rows_m, cols in ((v, v_m, cols_t), (t, t_m, cols_v)):
        target = alpha * torch.softmax(rows_m.double() @ cols.t() / temp, 1) + (1 - alpha) * onehot
        logp = torch.log_softmax(rows.double() @ cols.t() / temp, 1)
        total += -(logp * target).sum(1).mean().item()
    return total / 2


@pytest.mark.parametrize('alpha', [0.0, 0.25])
def test_forward_uses_the_model_alpha(alpha):
    """The distillation weight of a step is the model's ``alpha`` (AlphaWarmupHook sets it)."""
    model = perturbed_momentum_model(mlm=False, itm=False)
    model.alpha = alpha
    batch = tiny_batch(4, seed=2)
    out = model(batch, None, 'loss')
    assert abs(out['loss_itc'].item() - itc_formula(model, batch, model.temp.item(), alpha)) < ATOL


@pytest.mark.parametrize('value,clamped', [(2.0, 0.5), (1e-6, 0.001)])
def test_temperature_clamped_before_use(value, clamped):
    model = perturbed_momentum_model(mlm=False, itm=False)
    with torch.no_grad():
        model.temp.fill_(value)
    batch = tiny_batch(4, seed=2)
    out = model(batch, None, 'loss')
    assert out['temp'].item() == pytest.approx(clamped, abs=1e-9)
    ref = itc_formula(model, batch, clamped, model.alpha)
    assert abs(out['loss_itc'].item() - ref) < ATOL + 1e-6 * abs(ref)


def test_train_step_distils_from_the_updated_teacher():
    """The EMA update runs before the momentum forward: a train step with coefficient 0.5 gives the
    ITC of an eval pass whose momentum weights were set to ``0.5 * p_m + 0.5 * p`` here, and
    enqueues that teacher's features."""
    model = perturbed_momentum_model(mlm=False, itm=False)
    model.alpha = 0.4
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = perturbed_momentum_model(mlm=False, itm=False)
    expected.alpha = 0.4
    pairs = {}
    for key in state:
        head, _, rest = key.partition('.')
        online = f'{head[:-2]}.{rest}'
        if head.endswith('_m') and online in state and state[key].is_floating_point():
            pairs[key] = 0.5 * state[key] + 0.5 * state[online]
    expected.load_state_dict(pairs, strict=False)
    batch = tiny_batch(4, seed=2)
    want = expected(batch, None, 'loss')['loss_itc'].item()
    assert abs(want - model(batch, None, 'loss')['loss_itc'].item()) > 1e-4  # the update matters
    model.train()
    model.momentum = 0.5
    got = model(batch, None, 'loss')['loss_itc'].item()
    assert abs(got - want) < ATOL
    with torch.no_grad():
        _, v_m, t_m = expected.encode_momentum(
            batch['image'], batch['input_ids'], batch['attention_mask']
        )
    assert torch.allclose(model.losses['itc'].image_queue[:, :4], v_m.t(), atol=1e-6)
    assert torch.allclose(model.losses['itc'].text_queue[:, :4], t_m.t(), atol=1e-6)


def test_context_gives_the_batch_similarities_itm_mines_from():
    """The step's context gives ``sim_i2t`` = online image x momentum text / temp and ``sim_t2i`` =
    online text x momentum image / temp (the batch columns of ITC) for the ITM's hard negatives."""
    model = perturbed_momentum_model(mlm=False, itm=False)
    batch = tiny_batch(4, seed=4)
    with torch.no_grad():
        ctx = model_context(model, model.extract_features(batch))
        sim_i2t, sim_t2i = ctx.similarities()
        _, v = model.encode_image(batch['image'])
        _, t = model.encode_text(batch['input_ids'], batch['attention_mask'])
        _, v_m, t_m = model.encode_momentum(
            batch['image'], batch['input_ids'], batch['attention_mask']
        )
    temp = model.temp.item()
    assert torch.allclose(sim_i2t, v @ t_m.t() / temp, atol=1e-5)
    assert torch.allclose(sim_t2i, t @ v_m.t() / temp, atol=1e-5)
    assert ctx.similarities()[0] is sim_i2t  # computed once per step


@pytest.mark.parametrize('view', [('image_aug', 'text'), ('image', 'text_masked')])
def test_itc_extra_view_rows_against_original_columns(view):
    """An ITC on one extra view alone: its rows are the view's online features, its columns and
    distillation targets the original pair's momentum features (so no weighting of views is
    involved)."""
    losses = dict(itc=dict(type='ITCLoss', embed_dim=32, queue_size=16, views=[view]))
    model = tiny_model(losses=losses, itm=False, mlm=False, dropout=0.0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split('.', 1)[0].endswith('_m'):
                p.add_(0.5 * p.std().nan_to_num() * torch.randn(p.shape, generator=g))
    model.alpha = 0.4
    batch = tiny_batch(4, seed=6)
    batch['image_aug'] = batch['image'].flip(-1)
    out = model(batch, None, 'loss')
    with torch.no_grad():
        image = batch['image_aug'] if view[0] == 'image_aug' else batch['image']
        ids = batch['mlm_input_ids'] if view[1] == 'text_masked' else batch['input_ids']
        _, v = model.encode_image(image)
        _, t = model.encode_text(ids, batch['attention_mask'])
        _, v_m, t_m = model.encode_momentum(
            batch['image'], batch['input_ids'], batch['attention_mask']
        )
    itc = model.losses['itc']
    temp, alpha = model.temp.item(), 0.4
    cols_t = torch.cat([t_m, itc.text_queue.t()]).double()
    cols_v = torch.cat([v_m, itc.image_queue.t()]).double()
    onehot = torch.eye(4, cols_t.shape[0], dtype=torch.float64)
    total = 0.0
    for rows, rows_m, cols in ((v, v_m, cols_t), (t, t_m, cols_v)):
        target = alpha * torch.softmax(rows_m.double() @ cols.t() / temp, 1) + (1 - alpha) * onehot
        logp = torch.log_softmax(rows.double() @ cols.t() / temp, 1)
        total += -(logp * target).sum(1).mean().item()
    assert abs(out['loss_itc'].item() - total / 2) < ATOL
