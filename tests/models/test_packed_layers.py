"""Training on the real tokens only (``packed``): the text encoder and the fusion's [CLS]-only (ITM)
passes skip the padding in every projection, LayerNorm and FFN. Checked against the padded path of the
same weights (``packed=False``), values and parameter gradients, with and without activation
checkpointing; dropout still acts on the packed path."""

from __future__ import annotations

import copy

import pytest
import torch

from vlreg.models.backbones.bert import BertTextBackbone
from vlreg.models.fusion.bert_fusion import BertFusion

SIZES = dict(hidden_size=32, num_heads=4, intermediate_size=64)


def _mask(lengths: list[int], length: int) -> torch.Tensor:
    return (torch.arange(length)[None] < torch.tensor(lengths)[:, None]).long()


def _text(dropout: float = 0.0, attn_dropout: float = 0.0, **kw) -> BertTextBackbone:
    torch.manual_seed(0)
    model = BertTextBackbone(
        vocab_size=50, num_layers=2, dropout=dropout, attn_dropout=attn_dropout, **SIZES, **kw
    )
    with torch.no_grad():  # LayerNorms off their (1, 0) start, so their gradients are not trivial
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def _fusion(dropout: float = 0.0, attn_dropout: float = 0.0, **kw) -> BertFusion:
    torch.manual_seed(1)
    return BertFusion(
        encoder_width=24,
        num_layers=3,
        layer_offset=2,
        dropout=dropout,
        attn_dropout=attn_dropout,
        **SIZES,
        **kw,
    )


def _grads(module: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    module.zero_grad()
    loss.backward()
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _text_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    mask = _mask([7, 3, 5, 1], 7)
    ids = torch.randint(1, 50, (4, 7), generator=torch.Generator().manual_seed(2)) * mask
    return ids, mask


@pytest.mark.parametrize('checkpointed', [False, True])
def test_packed_text_encoder_equals_the_padded_one_on_real_tokens(checkpointed):
    ids, mask = _text_inputs()
    packed = _text(grad_checkpointing=checkpointed).train()
    padded = copy.deepcopy(packed)
    padded.packed = False
    real = mask.bool()
    weight = torch.randn(32, generator=torch.Generator().manual_seed(3))  # a loss on real tokens
    out = packed(ids, mask)
    ref = padded(ids, mask)
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)
    assert torch.equal(out[~real], torch.zeros_like(out[~real]))  # the padding is 0
    got = _grads(packed, (out[real] @ weight).square().sum())
    want = _grads(padded, (ref[real] @ weight).square().sum())
    assert got.keys() == want.keys() and len(got) > 10
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-4, msg=k)


def test_text_encoder_in_eval_mode_keeps_every_position():
    ids, mask = _text_inputs()
    model = _text().eval()
    padded = copy.deepcopy(model)
    padded.packed = False
    with torch.no_grad():
        out, ref = model(ids, mask), padded(ids, mask)
    assert torch.equal(out, ref)
    assert out[~mask.bool()].abs().sum() > 0  # padding positions computed, as ALBEF's


def _fusion_inputs(p: int = 5):
    g = torch.Generator().manual_seed(4)
    text = torch.randn(p, 6, 32, generator=g)
    mask = _mask([6, 2, 4, 1, 5][:p], 6)
    image = torch.randn(p, 9, 24, generator=g)
    return text, mask, image


@pytest.mark.parametrize('checkpointed', [False, True])
@pytest.mark.parametrize('by_kv', [False, True])
def test_packed_itm_pass_equals_the_padded_one(checkpointed, by_kv):
    text, mask, image = _fusion_inputs()
    packed = _fusion(grad_checkpointing=checkpointed).train()
    padded = copy.deepcopy(packed)
    padded.packed = False
    weight = torch.randn(32, generator=torch.Generator().manual_seed(5))
    outs, grads = [], []
    for model in (packed, padded):
        t, img = text.clone().requires_grad_(True), image.clone().requires_grad_(True)
        kw = dict(image_kv=model.image_key_values(img)) if by_kv else {}
        out = model(t, mask, None if by_kv else img, cls_only=True, **kw)
        assert out.hidden.shape == (5, 1, 32)
        g = _grads(model, (out.cls @ weight).square().sum())
        g['text'], g['image'] = t.grad, img.grad
        outs.append(out.cls)
        grads.append(g)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys()
    for k in grads[1]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-5, rtol=1e-4, msg=k)
    # the texts' padding never reaches the [CLS] in either path
    assert torch.equal(grads[0]['text'][~mask.bool()], torch.zeros(int((~mask.bool()).sum()), 32))


def test_fusion_packs_only_cls_only_passes_without_probabilities():
    text, mask, image = _fusion_inputs()
    model = _fusion().eval()
    padded = copy.deepcopy(model)
    padded.packed = False
    with torch.no_grad():
        full = model(text, mask, image)  # every row wanted: the padded layout
        assert full.hidden.shape == (5, 6, 32)
        with_probs = model(text, mask, image, attn_layer=1, cls_only=True)
        assert with_probs.cross_attn.shape == (5, 4, 6, 9)  # asked for: the padded path
        first_padded = mask.clone()
        first_padded[1, 0] = 0  # the [CLS] is not a real token: the padded path
        out = model(text, first_padded, image, cls_only=True)
        ref = padded(text, first_padded, image, cls_only=True)
    assert torch.equal(out.cls, ref.cls)
    torch.testing.assert_close(with_probs.cls, full.cls, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('which', ['dropout', 'attn_dropout'])
def test_dropout_acts_on_the_packed_paths(which):
    ids, mask = _text_inputs()
    text, fmask, image = _fusion_inputs()
    for model, args in (
        (_text(**{which: 0.5}), (ids, mask)),
        (_fusion(**{which: 0.5}), (text, fmask, image)),
    ):
        kw = {} if isinstance(model, BertTextBackbone) else dict(cls_only=True)
        with torch.no_grad():
            clean = model.eval()(*args, **kw)
            torch.manual_seed(6)
            noisy = model.train()(*args, **kw)
            torch.manual_seed(6)
            again = model(*args, **kw)
        clean = clean if isinstance(clean, torch.Tensor) else clean.cls
        noisy = noisy if isinstance(noisy, torch.Tensor) else noisy.cls
        again = again if isinstance(again, torch.Tensor) else again.cls
        real = mask.bool() if kw == {} else slice(None)
        assert (noisy[real] - clean[real]).abs().max() > 1e-3, (type(model).__name__, which)
        assert torch.equal(noisy, again)  # the draws come from torch's stream


def test_packed_full_fusion_pass_in_training_equals_the_padded_one_on_real_tokens():
    text, mask, image = _fusion_inputs()
    packed = _fusion().train()
    padded = copy.deepcopy(packed)
    padded.packed = False
    real = mask.bool()
    weight = torch.randn(32, generator=torch.Generator().manual_seed(7))
    out, ref = packed(text, mask, image).hidden, padded(text, mask, image).hidden
    assert out.shape == ref.shape == (5, 6, 32)
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)
    assert torch.equal(out[~real], torch.zeros_like(out[~real]))
    got = _grads(packed, (out[real] @ weight).square().sum())
    want = _grads(padded, (ref[real] @ weight).square().sum())
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-4, msg=k)
    with torch.no_grad():  # evaluation keeps every position (as ALBEF's)
        out, ref = packed.eval()(text, mask, image).hidden, padded.eval()(text, mask, image).hidden
    assert torch.equal(out, ref) and out[~real].abs().sum() > 0


def test_packed_and_grouped_cross_attention_drop_probabilities_in_training_only():
    from vlreg.models.utils.bert_layers import (
        BertSelfAttention,
        grouped_cross_attention,
        packed_cross_attention,
    )

    torch.manual_seed(8)
    attn = BertSelfAttention(32, 4, kv_width=24, dropout=0.5)
    _, mask, image = _fusion_inputs()
    valid = mask.bool()
    rows = torch.randn(int(valid.sum()), 32)
    kv = attn.key_value(image)
    runs = list(zip(range(5), valid.sum(1).tolist()))  # each text's tokens on its own image
    with torch.no_grad():
        # the reference: plain attention of each real token to its text's image, no dropout
        q = attn.query(rows).view(-1, 4, 8)
        owner = torch.arange(5).repeat_interleave(valid.sum(1))
        scores = torch.einsum('thd,thnd->thn', q, kv[0][owner]) / 8**0.5
        want = torch.einsum('thn,thnd->thd', scores.softmax(-1), kv[1][owner]).reshape(-1, 32)
        attn.eval()
        for got in (
            packed_cross_attention(attn, rows, valid, kv),
            grouped_cross_attention(attn, rows, kv, runs),
        ):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        attn.train()
        for got in (
            packed_cross_attention(attn, rows, valid, kv),
            grouped_cross_attention(attn, rows, kv, runs),
        ):
            assert (got - want).abs().max() > 1e-2  # dropout on the probabilities acts
