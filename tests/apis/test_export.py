"""tools/export.py: weights only, as safetensors + JSON, loaded by every path a checkpoint takes."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from tests.conftest import ROOT
from vlreg.apis import init_model
from vlreg.models.utils.checkpoint import load_state_dict_file

CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')
pytestmark = pytest.mark.slow


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'vlreg_tool_{name}', ROOT / 'tools' / f'{name}.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A checkpoint laid out as the Runner writes one (meta.cfg, state_dict, optimizer,
    message_hub), with weights moved away from the initialisation, then exported."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub

    from vlreg.registry import MODELS

    work = tmp_path_factory.mktemp('export')
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
            p.grad = torch.randn_like(p)
    optimizer.step()
    ckpt = work / 'epoch_1.pth'
    torch.save(
        dict(
            meta=dict(cfg=cfg.pretty_text, epoch=1),
            state_dict=model.state_dict(),
            optimizer=optimizer.state_dict(),
            message_hub=MessageHub.get_current_instance().state_dict(),
        ),
        ckpt,
    )
    info = _tool('export').main([str(ckpt), str(work / 'model')])
    return work, ckpt, work / 'model.safetensors', info


def test_export_keeps_the_online_weights_only(run):
    work, ckpt, out, info = run
    full = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert {'optimizer', 'message_hub', 'state_dict'} <= set(full)
    state = full['state_dict']
    exported = load_state_dict_file(str(out))
    online = {
        k: v for k, v in state.items() if '_m.' not in k and not k.endswith(('_queue', 'queue_ptr'))
    }
    assert set(exported) == set(online)
    for key, value in online.items():
        torch.testing.assert_close(exported[key], value, atol=0, rtol=0)
    n_momentum = sum(k.split('.', 1)[0].endswith('_m') for k in state)
    n_queue = sum(k.startswith('losses.') and k.endswith(('_queue', 'queue_ptr')) for k in state)
    assert n_momentum > 100 and n_queue >= 3
    assert info['dropped'] == {'momentum': n_momentum, 'queue': n_queue, 'task': 0}
    meta = json.loads((work / 'model.json').read_text())
    assert meta['model']['type'] == 'ALBEFPretrainer'
    assert meta['model']['image_backbone']['img_size'] == 64
    assert meta['bytes'] == out.stat().st_size < 0.5 * ckpt.stat().st_size


def test_export_retrieval_task_drops_the_mlm_head(run, tmp_path):
    _, ckpt, _, _ = run
    info = _tool('export').main([str(ckpt), str(tmp_path / 'r.safetensors'), '--task', 'retrieval'])
    keys = set(load_state_dict_file(str(tmp_path / 'r.safetensors')))
    assert info['dropped']['task'] > 0 and not any(k.startswith('mlm_head.') for k in keys)
    assert 'itm_head.fc.weight' in keys


def test_exported_weights_load_in_the_api_test_tool_and_fine_tuning(run, tmp_path):
    work, ckpt, out, _ = run
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    model = init_model(CONFIG, str(out))
    for key, value in model.state_dict().items():
        if key in state and '_m.' not in key and 'queue' not in key:
            torch.testing.assert_close(value, state[key], atol=0, rtol=0)
    torch.testing.assert_close(
        model.image_backbone_m.state_dict()['vit.pos_embed'],
        state['image_backbone.vit.pos_embed'],
        atol=0,
        rtol=0,
    )
    from mmengine.runner.checkpoint import _load_checkpoint  # what load_from reads

    through_runner = _load_checkpoint(str(out), map_location='cpu')['state_dict']
    torch.testing.assert_close(
        through_runner['fusion.layer.1.output.dense.weight'],
        state['fusion.layer.1.output.dense.weight'],
        atol=0,
        rtol=0,
    )
    test = _tool('test')
    a = test.main([CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'a')])
    b = test.main([CONFIG, str(out), '--work-dir', str(tmp_path / 'b')])
    assert a['retrieval/txt_r1'] == b['retrieval/txt_r1']
    assert a['retrieval/img_r_mean'] == b['retrieval/img_r_mean']
    # fine-tuning: model.pretrained; the momentum copies restart from the loaded online weights
    from mmengine.config import Config

    from vlreg.registry import MODELS

    cfg = Config.fromfile(CONFIG)
    cfg.model.pretrained = str(out)
    tuned = MODELS.build(cfg.model)
    tuned.init_weights()
    torch.testing.assert_close(
        tuned.fusion_m.state_dict()['layer.0.crossattention.self.query.weight'],
        state['fusion.layer.0.crossattention.self.query.weight'],
    )
    torch.testing.assert_close(
        tuned.image_backbone.state_dict()['vit.pos_embed'], state['image_backbone.vit.pos_embed']
    )
