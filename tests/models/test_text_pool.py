"""The ITC text summary: [CLS] (ALBEF) or the mean of the non-padding tokens (sentence-transformers)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlreg.models.pretrainers.albef import pool_text

from .tiny import tiny_model


def test_pool_text_cls_and_masked_mean_match_a_direct_computation():
    tokens = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    assert torch.equal(pool_text(tokens, mask, 'cls'), tokens[:, 0])
    expected = torch.stack([tokens[0].mean(0), tokens[1, :2].mean(0), tokens[2, 0]])
    torch.testing.assert_close(pool_text(tokens, mask, 'mean'), expected)


def _tiny(text_pool: str):
    return tiny_model(text_pool=text_pool)


def test_the_pretrainer_projects_the_pooled_text_online_and_momentum(tiny_pretrainer):
    model = tiny_pretrainer.eval()
    model.text_pool = 'mean'
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    tokens, embed = model.encode_text(ids, mask)
    mean = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(embed, F.normalize(model.text_proj(mean), dim=-1))
    image = torch.randn(2, 3, 64, 64)
    if model.has_momentum:
        _, _, text_m = model.encode_momentum(image, ids, mask)
        tokens_m = model.text_backbone_m(ids, mask)
        mean_m = (tokens_m * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        torch.testing.assert_close(text_m, F.normalize(model.text_proj_m(mean_m), dim=-1))


def test_an_unknown_text_pool_is_refused_by_name():
    with pytest.raises(ValueError, match='text_pool'):
        _tiny('max')
