"""Checkpoints from strangers and from crashes: weights-only on every path, fit checks, atomic files,
auto-resume fallback (fast: no training)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vlreg.engine.runner import CheckpointFitError, check_fit
from vlreg.utils.checkpoint_io import CheckpointError, atomic_write_text, find_resumable, safe_load

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')


class _Payload:
    """Unpickling this calls ``os.system``: it would write ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.system, (f'echo pwned > {self.target}',)


@pytest.fixture
def evil(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A .pth whose unpickling would write a file, with the circulating workaround switched on."""
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': {'x': _Payload(target)}}, path)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    # the environment variable really would run the payload for a plain torch.load
    assert not target.exists()
    return path, target


def test_environment_variable_does_run_a_plain_torch_load(evil):
    """The premise: without an explicit ``weights_only``, torch honours the variable and runs code."""
    path, target = evil
    with pytest.warns(UserWarning):
        torch.load(path)
    assert target.exists()


def test_safe_load_refuses_the_payload_whatever_the_environment_says(evil):
    path, target = evil
    with pytest.raises(CheckpointError, match=str(path)):
        safe_load(path)
    assert not target.exists()


def test_mmengine_loader_is_routed_through_the_weights_only_loader(evil):
    from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

    path, target = evil
    with pytest.raises(CheckpointError, match='refused'):
        _load_checkpoint(str(path))
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(nn.Linear(2, 2), str(path))
    assert not target.exists()


def test_pretrained_converter_and_api_paths_refuse_the_payload(evil):
    from vlreg.apis.inference import init_model
    from vlreg.models.utils.checkpoint import load_state_dict_file

    path, target = evil
    with pytest.raises(RuntimeError, match=str(path)):
        load_state_dict_file(str(path))  # every backbone's / model's ``pretrained=``
    with pytest.raises(RuntimeError, match=str(path)):
        init_model(CONFIG, str(path))
    sys.path.insert(0, str(ROOT / 'tools'))
    import convert_albef

    with pytest.raises(RuntimeError, match=str(path)):
        convert_albef.main([str(path), str(path.with_name('out.pth'))])
    assert not target.exists()


def test_tools_test_refuses_the_payload_and_a_random_fit(evil, tmp_path):
    """tools/test.py: the payload is refused (file named, nothing run); a checkpoint holding none of the
    model's tensors is an error listing them instead of an evaluation at chance."""
    sys.path.insert(0, str(ROOT / 'tools'))
    import test as test_tool

    path, target = evil
    with pytest.raises(CheckpointError, match=str(path)):
        test_tool.main([CONFIG, str(path), '--work-dir', str(tmp_path / 'w1')])
    assert not target.exists()
    stranger = tmp_path / 'stranger.pth'
    torch.save({'state_dict': {'encoder.weight': torch.zeros(3, 3)}}, stranger)
    with pytest.raises(
        CheckpointFitError,
        match=r'stranger\.pth does not fit the model: (\d+) of '
        r"the model's \1 tensors missing.*"
        r'does not have: encoder\.weight',
    ):
        test_tool.main([CONFIG, str(stranger), '--work-dir', str(tmp_path / 'w2')])


def test_check_fit_lists_missing_unexpected_and_shapes():
    model = {
        'a.weight': torch.zeros(2, 3),
        'a.bias': torch.zeros(2),
        'bn.num_batches_tracked': torch.zeros(()),
    }
    check_fit(model, dict(model), 'same.pth')  # a perfect fit passes
    check_fit(model, {'a.weight': torch.ones(2, 3), 'a.bias': torch.ones(2)}, 'x')  # allow-listed
    with pytest.raises(CheckpointFitError, match=r'f\.pth.*1 of the model.*a\.bias'):
        check_fit(model, {'a.weight': torch.zeros(2, 3)}, 'f.pth')
    with pytest.raises(CheckpointFitError, match=r'does not have: extra'):
        check_fit(model, {**model, 'extra': torch.zeros(1)}, 'f.pth')
    with pytest.raises(CheckpointFitError, match=r'a\.weight: file \(3, 2\) vs model \(2, 3\)'):
        check_fit(model, {**model, 'a.weight': torch.zeros(3, 2)}, 'f.pth', partial=True)
    # a deliberate partial load lets missing / unexpected keys through and reports them
    missing, unexpected = check_fit(
        model, {'a.weight': torch.zeros(2, 3), 'z': torch.zeros(1)}, 'f.pth', partial=True
    )
    assert missing == ['a.bias'] and unexpected == ['z']


def _checkpoint(path: Path, it: int) -> Path:
    torch.save({'state_dict': {'w': torch.full((4,), float(it))}, 'meta': {'iter': it}}, path)
    return path


def test_truncated_checkpoint_is_refused_with_its_path(tmp_path):
    good = _checkpoint(tmp_path / 'good.pth', 1)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f'{cut}: not a complete'):
        safe_load(cut)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x00' * 100)
    with pytest.raises(CheckpointError, match=str(garbage)):
        safe_load(garbage)


def test_auto_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    _checkpoint(tmp_path / 'iter_3.pth', 3)
    _checkpoint(tmp_path / 'epoch_1.pth', 4)
    newest = _checkpoint(tmp_path / 'iter_7.pth', 7)
    newest.write_bytes(newest.read_bytes()[:-100])  # truncated
    (tmp_path / '.epoch_2.pth.123.tmp').write_bytes(b'partial')
    atomic_write_text(str(tmp_path / 'last_checkpoint'), str(newest))
    with pytest.warns(UserWarning, match=r'iter_7\.pth.*incomplete; resuming from .*epoch_1\.pth'):
        assert find_resumable(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')
    # a complete file named by last_checkpoint wins, even if it is not the newest
    atomic_write_text(str(tmp_path / 'last_checkpoint'), str(tmp_path / 'iter_3.pth'))
    assert find_resumable(str(tmp_path)) == str(tmp_path / 'iter_3.pth')
    # an empty pointer (killed while writing it with a non-atomic writer) falls back too
    (tmp_path / 'last_checkpoint').write_text('')
    assert find_resumable(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')
    assert find_resumable(str(tmp_path / 'nothing')) is None


def test_resume_from_a_corrupt_checkpoint_names_it(tmp_path):
    sys.path.insert(0, str(ROOT / 'tools'))
    import train as train_tool

    cut = tmp_path / 'cut.pth'
    cut.write_bytes(b'PK\x03\x04' + b'\x00' * 64)
    with pytest.raises(CheckpointError, match=str(cut)):
        train_tool.main([CONFIG, '--work-dir', str(tmp_path / 'w'), '--resume', str(cut)])


def test_load_checked_judges_after_the_models_load_hooks():
    from vlreg.engine.runner import load_checked

    model = nn.Linear(3, 2)
    with pytest.raises(
        CheckpointFitError, match=r'(?s)f\.pth does not fit.*size mismatch for weight'
    ):
        load_checked(model, {'weight': torch.zeros(3, 3), 'bias': torch.zeros(2)}, 'f.pth')
    with pytest.raises(CheckpointFitError, match=r"1 of the model's 2 tensors missing.*: bias"):
        load_checked(model, {'weight': torch.ones(2, 3)}, 'f.pth')
    assert load_checked(model, {'weight': torch.ones(2, 3)}, 'f.pth', partial=True) == (
        ['bias'],
        [],
    )
    assert torch.equal(model.weight, torch.ones(2, 3))

    class Renaming(nn.Linear):  # a model whose load hook renames an old key
        def _load_from_state_dict(self, state, prefix, *args, **kwargs):
            if prefix + 'w_old' in state:
                state[prefix + 'weight'] = state.pop(prefix + 'w_old')
            super()._load_from_state_dict(state, prefix, *args, **kwargs)

    renaming = Renaming(3, 2)
    load_checked(renaming, {'w_old': torch.full((2, 3), 2.0), 'bias': torch.zeros(2)}, 'old.pth')
    assert torch.equal(renaming.weight, torch.full((2, 3), 2.0))
