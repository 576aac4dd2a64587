"""The fusion's [CLS]-only paths. ``BertFusion.pair_cls`` (the retrieval re-rank): the same [CLS]
as the plain forward on per-pair image tokens, with projections on real tokens only, the last
layer on [CLS] only, and each image's keys / values shared by its pairs. ``cls_only`` (the
training ITM passes): the same [CLS] values and gradients, every row of a Grad-CAM layer kept."""

from __future__ import annotations

import pytest
import torch

from vlreg.models.fusion import BertFusion


def make(num_layers: int) -> BertFusion:
    torch.manual_seed(0)
    return BertFusion(
        hidden_size=32,
        encoder_width=24,
        num_layers=num_layers,
        num_heads=2,
        intermediate_size=48,
        layer_offset=0,
    ).eval()


def inputs(p: int = 7, length: int = 9, g: int = 3, n: int = 5):
    gen = torch.Generator().manual_seed(1)
    text = torch.randn(p, length, 32, generator=gen)
    lengths = torch.tensor([9, 3, 5, 1, 7, 9, 4])[:p]
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    images = torch.randn(g, n, 24, generator=gen)
    index = torch.tensor([0, 0, 2, 1, 1, 0, 2])[:p]  # runs broken up: not sorted
    return text, mask, images, index


@pytest.mark.parametrize('num_layers', [1, 3])
@pytest.mark.parametrize('attended', [False, True])
def test_equals_the_plain_forward(num_layers, attended) -> None:
    fusion = make(num_layers)
    text, mask, images, index = inputs()
    with torch.no_grad():
        want = fusion(text, mask, images[index]).cls
        kv = fusion.image_key_values(images)
        hidden = fusion.text_self_attention(text, mask) if attended else text
        got = fusion.pair_cls(hidden, mask, kv, index, text_attended=attended)
    assert got.shape == (7, 32)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sorted_pairs_equal_the_itm_logits_of_the_model() -> None:
    from tests.models.tiny import tiny_model

    model = tiny_model(dropout=0.0).eval()
    gen = torch.Generator().manual_seed(2)
    images = torch.randn(3, 3, 64, 64, generator=gen)
    ids = torch.randint(5, 100, (6, 8), generator=gen)
    ids[:, 0] = 2
    mask = (torch.arange(8)[None] < torch.tensor([8, 2, 5, 8, 3, 6])[:, None]).long()
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    with torch.no_grad():
        image_tokens, _ = model.encode_image(images)
        text_tokens, _ = model.encode_text(ids, mask)
        want = model.itm_logits(text_tokens, mask, image_tokens[index])
        got = model.itm_pair_logits(
            model.itm_text_cache(text_tokens, mask),
            mask,
            model.itm_image_cache(image_tokens),
            index,
        )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_work_runs_on_real_tokens_and_the_last_layer_on_cls_only() -> None:
    fusion = make(3)
    text, mask, images, index = inputs()
    rows: dict[int, int] = {}

    def watch(i):
        def hook(_module, args):
            rows[i] = args[0].reshape(-1, args[0].shape[-1]).shape[0]

        return hook

    for i, layer in enumerate(fusion.layer):
        layer.intermediate.dense.register_forward_pre_hook(watch(i))
    with torch.no_grad():
        fusion.pair_cls(text, mask, fusion.image_key_values(images), index)
    real = int(mask.sum())
    assert rows == {0: real, 1: real, 2: 7}  # FFN rows: real tokens, then one [CLS] per pair
    assert real < mask.numel()


def test_bad_inputs_are_refused() -> None:
    fusion = make(2)
    text, mask, images, index = inputs()
    kv = fusion.image_key_values(images)
    with pytest.raises(ValueError, match='layers'):
        fusion.pair_cls(text, mask, kv[:1], index)
    with pytest.raises(ValueError, match='image_index'):
        fusion.pair_cls(text, mask, kv, index[:3])
    left_padded = mask.flip(1)
    with pytest.raises(ValueError, match=r'\[CLS\]'):
        fusion.pair_cls(text, left_padded, kv, index)


def test_cls_only_keeps_the_cls_row_and_its_gradients() -> None:
    fusion = make(3)
    text, mask, images, index = inputs()
    rows = images[index]
    results = []
    for cls_only in (False, True):
        t, r = text.clone().requires_grad_(), rows.clone().requires_grad_()
        fusion.zero_grad()
        out = fusion(t, mask, r, cls_only=cls_only)
        assert out.hidden.shape[1] == (1 if cls_only else 9)
        out.cls.square().sum().backward()
        grads = [p.grad.clone() for p in fusion.parameters() if p.grad is not None]
        results.append((out.cls.detach(), t.grad, r.grad, grads))
    (c0, t0, r0, g0), (c1, t1, r1, g1) = results
    torch.testing.assert_close(c1, c0, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(t1, t0, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(r1, r0, atol=1e-6, rtol=1e-6)
    assert len(g1) == len(g0)
    for a, b in zip(g1, g0):  # sums over rows in another order: float noise around exact zeros
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_cls_only_keeps_every_row_of_the_gradcam_layer() -> None:
    fusion = make(3)
    text, mask, images, index = inputs()
    out = fusion(text, mask, images[index], attn_layer=-1, cls_only=True)
    assert out.hidden.shape[1] == 9 and out.cross_attn.shape[2] == 9
    out = fusion(text, mask, images[index], attn_layer=1, cls_only=True)
    assert out.hidden.shape[1] == 1 and out.cross_attn.shape[2] == 9
