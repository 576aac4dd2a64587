"""Each image's cross-attention keys / values projected once per step (``share_image_kv``): the same
losses and gradients as projecting them in every fusion call, and the projections really run once."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.models.tiny import tiny_batch, tiny_model

LOSSES = dict(
    itc=dict(
        type='ITCLoss',
        embed_dim=32,
        queue_size=16,
        views=[('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')],
    ),
    itm=dict(
        type='ITMLoss', views=[('image', 'text'), ('image_aug', 'text'), ('image', 'text_masked')]
    ),
    mlm=dict(type='MLMLoss'),
    itm_softmask=dict(type='SoftMaskITMLoss', layer=0, prob=1.0),
)


def _batch() -> dict:
    batch = tiny_batch(4, seed=3)
    ids = batch['input_ids']
    word_ids = torch.where(
        batch['attention_mask'].bool(), torch.arange(ids.shape[1]) - 1, torch.full_like(ids, -1)
    )
    word_ids[:, 0] = -1
    batch['word_ids'] = word_ids
    batch['content_mask'] = (word_ids >= 0).long()
    batch['image_aug'] = batch['image'].flip(-1) * 0.5
    return batch


def _step(model: torch.nn.Module, share: bool) -> tuple[dict, dict, list[int]]:
    """One training step (dropout on, random negatives) of a copy of ``model``: the outputs, the
    gradients, and the number of image rows each fusion layer's key projection saw."""
    model = copy.deepcopy(model).train()
    model.share_image_kv = share
    rows: list[int] = []
    hooks = [
        layer.crossattention.self.key.register_forward_hook(
            lambda m, args, out: rows.append(args[0].shape[0])
        )
        for layer in model.fusion.layer
    ]
    torch.manual_seed(123)
    out = model(_batch(), None, 'loss')
    for h in hooks:
        h.remove()
    total, _ = model.parse_losses(out)
    total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return out, grads, rows


@pytest.fixture(scope='module')
def both():
    model = tiny_model(losses=LOSSES, dropout=0.2, seed=0)
    return _step(model, True), _step(model, False)


def test_shared_keys_values_give_the_same_losses_and_gradients(both):
    (out_s, grads_s, _), (out_p, grads_p, _) = both
    assert list(out_s) == list(out_p)
    assert float(out_s['loss_itm_softmask'].detach()) > 0  # the soft-mask pass ran (prob 1)
    for k in out_p:
        torch.testing.assert_close(out_s[k], out_p[k], rtol=1e-5, atol=1e-6, msg=k)
    assert grads_s.keys() == grads_p.keys()
    for k in grads_p:
        torch.testing.assert_close(grads_s[k], grads_p[k], rtol=1e-4, atol=1e-6, msg=k)


def test_each_image_view_is_projected_once_per_layer(both):
    (_, _, rows_s), (_, _, rows_p) = both
    b, layers = 4, 2
    # per call, each layer projects its rows: shared, the original images once and the augmented
    # view once (B each); the soft-masked images' keys / values come from the original's by
    # linearity (no projection); the momentum MLM pass runs the momentum fusion, whose projections
    # are other modules
    assert sorted(rows_s) == sorted([b] * (2 * layers))
    # projected per call: positives (B), negatives + extra positives (2B + 2B), MLM (B), soft mask (B)
    assert sorted(rows_p) == sorted([b, 4 * b, b, b] * layers)
    assert sum(rows_s) < sum(rows_p) / 2
