"""The shipped configs keep each fact in one place: inheritance at most two levels deep (a config ->
its bases -> their bases), and no hook or loop restates what the model already says (the Grad-CAM
layer, the distillation weight alpha)."""

from __future__ import annotations

import ast
import glob
import os
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(glob.glob(str(ROOT / 'configs' / '**' / '*.py'), recursive=True))
LEAVES = [p for p in ALL if '_base_' not in p]
IDS = [os.path.relpath(p, ROOT) for p in LEAVES]
MAX_DEPTH = 2
DEFAULT_GRADCAM_LAYER = 2  # the loops' and hooks' documented default (ALBEF's layer)


def bases_of(path: str) -> list[str]:
    """The files named by ``_base_`` in ``path`` (read from the syntax tree, not by MMEngine)."""
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, 'id', None) == '_base_' for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
            return [os.path.normpath(os.path.join(os.path.dirname(path), n)) for n in names]
    return []


def depth(path: str, seen: tuple[str, ...] = ()) -> int:
    """Length of the longest ``_base_`` chain below ``path`` (0: no base)."""
    assert path not in seen, f'inheritance cycle: {" -> ".join(seen + (path,))}'
    assert os.path.isfile(path), f'{seen[-1] if seen else path}: base {path} does not exist'
    below = [depth(b, seen + (path,)) for b in bases_of(path)]
    return 1 + max(below) if below else 0


def test_depth_walker_counts_chains(tmp_path: Path) -> None:
    (tmp_path / 'a.py').write_text('x = 1\n')
    (tmp_path / 'b.py').write_text("_base_ = ['./a.py']\n")
    (tmp_path / 'c.py').write_text("_base_ = ['./b.py', './a.py']\n")
    (tmp_path / 'd.py').write_text("_base_ = './c.py'\n")
    assert [depth(str(tmp_path / f'{n}.py')) for n in 'abcd'] == [0, 1, 2, 3]


@pytest.mark.parametrize('path', LEAVES, ids=IDS)
def test_inheritance_is_at_most_two_levels_deep(path: str) -> None:
    assert depth(path) <= MAX_DEPTH, (
        f'{path}: _base_ chain {depth(path)} deep (at most {MAX_DEPTH})'
    )


def _model_gradcam_layer(model: dict) -> int | None:
    """The layer the model's losses ask Grad-CAM for (what ALBEFPretrainer.gradcam_layer holds)."""
    layers = {
        loss.get('layer', DEFAULT_GRADCAM_LAYER)
        for loss in (model.get('losses') or {}).values()
        if isinstance(loss, dict) and loss.get('type') == 'SoftMaskITMLoss'
    }
    assert len(layers) <= 1
    return layers.pop() if layers else None


@pytest.mark.parametrize('path', LEAVES, ids=IDS)
def test_hooks_and_loops_do_not_restate_the_model(path: str) -> None:
    cfg = Config.fromfile(path)
    model = cfg.model
    wanted = _model_gradcam_layer(model)
    read = DEFAULT_GRADCAM_LAYER if wanted is None else wanted  # what layer=None resolves to
    users = [h for h in cfg.get('custom_hooks', []) if h['type'] == 'SoftMaskVisualizationHook']
    users += [
        c for c in (cfg.get('val_cfg'), cfg.get('test_cfg')) if c and 'GradCAM' in c.get('type', '')
    ]
    for user in users:
        assert user.get('layer', None) != read, (
            f'{path}: {user["type"]} restates Grad-CAM layer {read}, which it reads from the model'
        )
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'AlphaWarmupHook':
            assert hook.get('alpha') is None or hook['alpha'] != model.get('alpha'), (
                f'{path}: AlphaWarmupHook restates model.alpha={model.get("alpha")}'
            )


@pytest.mark.parametrize(
    'path',
    [p for p in LEAVES if os.sep + 'retrieval' + os.sep in p],
    ids=[i for i in IDS if os.sep + 'retrieval' + os.sep in i],
)
def test_coco_retrieval_configs_evaluate_sparse(path: str) -> None:
    """Issue 11: the top-k lists and ITC ranks, not N_img x N_txt matrices (COCO 5K: 125 M entries)."""
    cfg = Config.fromfile(path)
    for loop in (cfg.val_cfg, cfg.test_cfg):
        assert loop.type.startswith('Retrieval') and loop.dense_scores is False, path


def test_full_size_task_leaves_are_short_deltas() -> None:
    """The ALBEF-size task configs state what differs from their bases, not the whole recipe (the
    NLVR2 text-assignment step is left out: it reads the pre-training corpus with its own pipeline)."""
    leaves = sorted(
        p
        for p in glob.glob(str(ROOT / 'configs' / 'tasks' / '*' / 'albef*_vit-b16-bert-base_*.py'))
        if not p.endswith('_4m-ta-1e.py')
    )
    assert len(leaves) >= 10
    for path in leaves:
        # counted in facts, not lines, so that the formatter's line breaks do not count: each
        # top-level statement, keyword argument and dict key is one stated fact
        tree = ast.parse(Path(path).read_text())
        facts = (
            len(tree.body)
            + sum(isinstance(n, ast.keyword) for n in ast.walk(tree))
            + sum(len(n.keys) for n in ast.walk(tree) if isinstance(n, ast.Dict))
        )
        assert facts <= 60, f'{path}: {facts} facts (statements, keywords, dict keys)'
