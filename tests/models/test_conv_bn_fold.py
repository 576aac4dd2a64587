"""Frozen CNN stages with their BatchNorms folded into the convolutions: the same outputs as the stages
as registered (non-trivial running statistics), every BatchNorm of EfficientNet-Lite folded, a copy
rebuilt when the weights change, and a fold that would be wrong detected and not used."""

from __future__ import annotations

import torch
from torch import nn

from vlreg.models.backbones import TimmCNNBackbone
from vlreg.models.utils.conv_bn_fold import FrozenStages, fold_conv_bn, run_stage


def _randomise_norms(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


def _stages(seed: int = 0, frozen: int = 8) -> tuple[TimmCNNBackbone, list[nn.Module]]:
    torch.manual_seed(seed)
    b = TimmCNNBackbone('tf_efficientnet_lite0', img_size=64, frozen_stages=frozen, norm_eval=True)
    _randomise_norms(b, seed)
    return b, b.stages()[:frozen]


def _reference(stages: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        for stage in stages:
            x = run_stage(stage, x)
    return x


def test_folded_stages_equal_the_registered_ones_and_fold_every_norm() -> None:
    b, stages = _stages()
    x = torch.randn(3, 3, 64, 64)
    ref = _reference(stages, x)
    modes = [m.training for s in stages for m in s.modules()]
    fast = FrozenStages()
    out = fast(stages, x, probe=x[:2])
    assert fast.folded
    # checking the copy ran the registered stages in eval mode and left every module as it was
    # (a ModuleList wrapper is in training mode while its frozen modules are not)
    assert [m.training for s in stages for m in s.modules()] == modes
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    # EfficientNet-Lite: every BatchNorm follows its convolution, so none is left after folding
    norms = sum(isinstance(m, nn.BatchNorm2d) for s in stages for m in s.modules())
    assert norms > 10
    for stage in stages:
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_conv_bn(stage).modules())
    # the backbone itself is unchanged: its state dict holds no copy and its norms are still there
    keys = set(b.state_dict())
    b(x)
    assert set(b.state_dict()) == keys
    assert sum(isinstance(m, nn.BatchNorm2d) for s in stages for m in s.modules()) == norms


def test_the_copy_follows_new_weights() -> None:
    b, stages = _stages(seed=0)
    x = torch.randn(2, 3, 64, 64)
    fast = FrozenStages()
    before = fast(stages, x, probe=x)
    other, _ = _stages(seed=1)
    b.load_state_dict(other.state_dict())  # in place: the same tensors, new values
    ref = _reference(stages, x)
    after = fast(stages, x, probe=x)
    assert not torch.allclose(before, ref, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(after, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


class _NormThenConv(nn.Module):
    """A convolution registered before a BatchNorm that runs first: folding by registration order
    would compute conv(x) scaled, not conv(bn(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def test_a_wrong_fold_is_detected_and_the_stages_run_as_registered() -> None:
    torch.manual_seed(0)
    stage = _NormThenConv().eval()
    _randomise_norms(stage, 3)
    x = torch.randn(2, 4, 8, 8)
    folded = fold_conv_bn(stage)
    assert not torch.allclose(folded(x), stage(x), rtol=1e-3, atol=1e-3)  # the trap is real
    fast = FrozenStages()
    out = fast([stage], x, probe=x)
    assert not fast.folded
    torch.testing.assert_close(out, stage(x))
