"""A non-finite loss or gradient is caught at its step: named, never applied, skipped or stopping."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch import nn

from vlreg.engine.nonfinite import NonFiniteGuard, NonFiniteLossError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')


def _setup(action: str = 'skip', max_skips: int = 2):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    hub = MessageHub.get_instance(f'nonfinite-{action}-{max_skips}')
    logs: list[str] = []
    logger = SimpleNamespace(warning=logs.append)
    runner = SimpleNamespace(model=model, message_hub=hub, logger=logger, iter=6, logs=logs)
    return model, optim, runner, NonFiniteGuard(action=action, max_skips=max_skips)


def _step(model, optim, runner, guard, scale: float, root: bool = False) -> dict:
    """One training step whose ``loss_b`` term is multiplied by ``scale`` (nan / inf poison it)."""
    wrapper = guard.wrap(optim)
    out = model(torch.ones(2, 3)).sum()
    terms = {'loss_a': out**2, 'loss_b': out * scale}
    if root:  # finite loss, non-finite gradient: d sqrt(x) / dx at 0
        terms['loss_b'] = torch.sqrt(out * 0)
    loss = sum(terms.values())
    wrapper.update_params(loss)
    outputs = {k: v.detach() for k, v in terms.items()}
    guard.after_step(runner, outputs)
    return outputs


def test_finite_step_is_applied():
    model, optim, runner, guard = _setup()
    before = model.weight.detach().clone()
    out = model(torch.ones(2, 3)).sum()
    _step(model, optim, runner, guard, 1.0)
    # SGD by hand: d/dw (o^2 + o) = (2 o + 1) * 2 (two identical rows of ones)
    expected = before - 0.1 * (2 * out.detach() + 1) * 2 * torch.ones(1, 3)
    assert torch.allclose(model.weight, expected, atol=1e-6)


def test_nan_loss_term_is_named_and_the_step_skipped():
    model, optim, runner, guard = _setup('skip', max_skips=1)
    before = [p.detach().clone() for p in model.parameters()]
    _step(model, optim, runner, guard, float('nan'))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert runner.logs == [
        'iteration 7: non-finite loss terms: loss_b=nan; non-finite gradient in 2 '
        "parameters ['weight', 'bias']; step skipped (1 of at most 1)"
    ]
    assert runner.message_hub.get_info('nonfinite_skips') == 1
    # the limit: one skip allowed, the second stops training
    with pytest.raises(NonFiniteLossError, match=r'loss_b=-?inf.*2 steps skipped.*max_skips=1'):
        _step(model, optim, runner, guard, float('inf'))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_non_finite_gradient_with_finite_loss_is_caught():
    model, optim, runner, guard = _setup('skip', max_skips=5)
    before = model.weight.detach().clone()
    outputs = _step(model, optim, runner, guard, 1.0, root=True)
    assert all(torch.isfinite(v) for v in outputs.values())
    assert torch.equal(model.weight, before)
    assert runner.message_hub.get_info('nonfinite_skips') == 1
    assert runner.logs[-1].endswith(
        "non-finite gradient in 2 parameters ['weight', 'bias']; step skipped (1 of at most 5)"
    )


def test_stop_action_stops_at_once():
    model, optim, runner, guard = _setup('stop')
    before = model.bias.detach().clone()
    with pytest.raises(NonFiniteLossError, match=r"loss_b=nan.*action='stop'"):
        _step(model, optim, runner, guard, float('nan'))
    assert torch.equal(model.bias, before)


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match='nonfinite.action'):
        NonFiniteGuard(action='ignore')


def test_nan_in_training_stops_with_the_term_named_and_the_last_checkpoint_intact(
    tmp_path, monkeypatch
):
    """The real Runner: ITM's loss goes NaN at iteration 4; with ``action='stop'`` training stops
    naming ``loss_itm``; the newest checkpoint (iter_3.pth) loads and is finite, and no later
    checkpoint was written."""
    sys.path.insert(0, str(ROOT / 'tools'))
    import train as train_tool

    from vlreg.models.losses.itm import ITMLoss
    from vlreg.utils.checkpoint_io import safe_load

    calls = {'n': 0}
    compute = ITMLoss.compute

    def poisoned(self, *args, **kwargs):
        out = compute(self, *args, **kwargs)
        calls['n'] += 1
        if calls['n'] == 4:
            out = {k: (v * float('nan') if k.startswith('loss') else v) for k, v in out.items()}
        return out

    monkeypatch.setattr(ITMLoss, 'compute', poisoned)
    with pytest.raises(
        NonFiniteLossError, match=r'iteration 4: non-finite loss terms: loss_itm=nan'
    ):
        train_tool.main(
            [
                CONFIG,
                '--work-dir',
                str(tmp_path),
                '--cfg-options',
                'train_cfg.nonfinite.action=stop',
            ]
        )
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_3.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_3.pth')
    ckpt = safe_load(tmp_path / 'iter_3.pth')
    assert ckpt['meta']['iter'] == 3
    assert all(
        torch.isfinite(v).all() for v in ckpt['state_dict'].values() if v.is_floating_point()
    )
