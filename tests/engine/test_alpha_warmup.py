"""AlphaWarmupHook sets the model's distillation weight (the value the losses read) every
iteration."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub

from tests.models.tiny import tiny_model
from vlreg.engine.hooks import AlphaWarmupHook


@pytest.mark.parametrize('it,expected', [(0, 0.0), (3, 0.4 * 3 / 8), (8, 0.4), (20, 0.4)])
def test_hook_sets_model_alpha_ramp_over_one_epoch(it, expected):
    model = tiny_model(itm=False, mlm=False)
    model.alpha = -1.0
    hub = MessageHub.get_instance('test_alpha_warmup')
    runner = SimpleNamespace(model=model, iter=it, train_dataloader=[None] * 8, message_hub=hub)
    AlphaWarmupHook(alpha=0.4).before_train_iter(runner, batch_idx=it)
    assert model.alpha == pytest.approx(expected, abs=1e-12)
    assert hub.get_scalar('train/alpha').current() == pytest.approx(expected, abs=1e-12)
    AlphaWarmupHook(alpha=0.4, warmup_iters=2).before_train_iter(runner, batch_idx=it)
    assert model.alpha == pytest.approx(0.4 * min(1.0, it / 2), abs=1e-12)
