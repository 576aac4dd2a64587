"""RetrievalGridHook: the evaluation's ranking of fixed queries, drawn and sent to TensorBoard."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.conftest import ROOT
from vlreg.apis import init_model, rank
from vlreg.engine.retrieval_grid_hook import RetrievalGridHook, render_retrieval_grid
from vlreg.registry import DATASETS

CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')


@pytest.fixture(scope='module')
def runner():
    model = init_model(CONFIG)
    cfg = Config.fromfile(CONFIG)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    return SimpleNamespace(model=model, val_dataloader=SimpleNamespace(dataset=dataset), epoch=3)


def test_queries_are_ranked_as_the_evaluation_ranks(runner):
    hook = RetrievalGridHook(num_queries=3, top=4, k=3)
    captions, images, ranked, picks = hook.rank_queries(runner)
    n = len(runner.val_dataloader.dataset)
    assert len(set(picks)) == 3 and picks[0] == 0 and picks[-1] == n - 1
    for caption, row in zip(captions, ranked):
        want = rank(runner.model, caption, images, top=4, k=3, score='itm')
        assert row == want.indices


def _green(grid):
    g = grid.astype(int)
    return int(((g[..., 1] > 170) & (g[..., 0] < 30) & (g[..., 2] < 30)).sum())


def test_the_correct_image_is_outlined_only_when_retrieved():
    rng = np.random.default_rng(0)
    images = [np.full((16, 16, 3), c, np.uint8) for c in (40, 90, 140, 200)]
    images = [np.clip(i + rng.integers(0, 5, i.shape), 0, 255).astype(np.uint8) for i in images]
    hit = render_retrieval_grid(['a query'], images, [[2, 0, 1]], [0])
    miss = render_retrieval_grid(['a query'], images, [[2, 3, 1]], [0])
    assert _green(hit) > 50 and _green(miss) == 0


def test_grid_reaches_tensorboard(runner, tmp_path):
    from mmengine.visualization import Visualizer
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    vis = Visualizer.get_instance(
        'grid_hook_test', save_dir=str(tmp_path), vis_backends=[dict(type='TensorboardVisBackend')]
    )
    runner.visualizer = vis
    with torch.no_grad():
        RetrievalGridHook(num_queries=2, top=3, k=2).after_val_epoch(runner, {})
    vis.close()
    files = list(tmp_path.rglob('events.out.tfevents.*'))
    acc = EventAccumulator(str(files[0]))
    acc.Reload()
    assert 'retrieval/top3' in acc.Tags()['images']
    event = acc.Images('retrieval/top3')[0]
    assert event.step == 3 and event.width > event.height
