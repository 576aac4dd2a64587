"""Hooks, loops, the API and the tools read the Grad-CAM layer and alpha from the model unless given:
``layer=None`` -> the model's ``gradcam_layer`` (else 2), ``alpha=None`` -> the model's ``alpha``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub
from torch import nn

from tests.models.tiny import tiny_model
from vlreg.engine.hooks import AlphaWarmupHook
from vlreg.engine.model_defaults import alpha_of, gradcam_layer_of
from vlreg.engine.pointing_loop import GradCAMEvalMixin


def test_gradcam_layer_reads_the_model_unless_given() -> None:
    assert gradcam_layer_of(SimpleNamespace(gradcam_layer=0)) == 0
    assert gradcam_layer_of(SimpleNamespace(gradcam_layer=None)) == 2  # no loss uses Grad-CAM
    assert gradcam_layer_of(object()) == 2  # a model without the attribute (classifiers, VQA)
    assert gradcam_layer_of(SimpleNamespace(gradcam_layer=0), layer=1) == 1  # explicit wins


def test_gradcam_layer_of_a_built_model() -> None:
    losses = dict(
        itc=dict(type='ITCLoss', embed_dim=32, queue_size=16),
        itm=dict(type='ITMLoss'),
        itm_softmask=dict(type='SoftMaskITMLoss', layer=0),
    )
    assert gradcam_layer_of(tiny_model(losses=losses, momentum=None)) == 0
    assert gradcam_layer_of(tiny_model(momentum=None)) == 2


def test_loop_layer_none_resolves_against_the_fusion_depth() -> None:
    loop = GradCAMEvalMixin()
    loop._init_gradcam(None, 'mean')

    def model(n_layers: int, gradcam_layer: int | None) -> SimpleNamespace:
        return SimpleNamespace(
            gradcam_layer=gradcam_layer,
            fusion=SimpleNamespace(layer=nn.ModuleList(nn.Identity() for _ in range(n_layers))),
        )

    assert loop._resolve_layer(model(3, 1)) == 1
    assert loop._resolve_layer(model(6, None)) == 2
    assert loop._resolve_layer(model(2, None)) == 0  # 2 does not exist: the deepest before the last
    loop._init_gradcam(3, 'mean')
    assert loop._resolve_layer(model(6, 1)) == 3  # an explicit layer overrides the model's


def test_alpha_reads_the_model_unless_given() -> None:
    assert alpha_of(SimpleNamespace(alpha=0.3)) == 0.3
    assert alpha_of(SimpleNamespace(alpha=0.3), alpha=0.1) == 0.1
    with pytest.raises(AttributeError, match='alpha'):
        alpha_of(object())


def test_warmup_hook_ramps_to_the_model_alpha_read_once() -> None:
    """The hook overwrites model.alpha every iteration: the target is read before the first one."""
    model = SimpleNamespace(alpha=0.3)
    hub = MessageHub.get_instance('test_model_defaults')
    hook = AlphaWarmupHook()  # warm-up over one epoch of 8 iterations
    for it in (0, 2, 4, 8, 12):
        runner = SimpleNamespace(model=model, iter=it, train_dataloader=[None] * 8, message_hub=hub)
        hook.before_train_iter(runner, batch_idx=it)
        assert model.alpha == pytest.approx(0.3 * min(1.0, it / 8), abs=1e-12)
    explicit = AlphaWarmupHook(alpha=0.2, warmup_iters=4)
    runner = SimpleNamespace(
        model=SimpleNamespace(alpha=0.3), iter=2, train_dataloader=[None] * 8, message_hub=hub
    )
    explicit.before_train_iter(runner, batch_idx=2)
    assert runner.model.alpha == pytest.approx(0.1, abs=1e-12)
