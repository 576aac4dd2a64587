"""vlreg against ALBEF's own outputs on the *momentum* fixture of ../shared/data/albef_reference.
 In ``albef_micro_momentum.pth`` the momentum encoders differ from the online ones (perturbed by
ALBEF's fixture script) and the temperature is 0.2, so an ITC or MLM that distilled from the online
model, ignored the temperature, ignored the model's ``alpha`` or enqueued the wrong features cannot
reproduce ``outputs_momentum.pt`` (ALBEF's ``ALBEF.forward`` with the hard negatives and MLM masks
pinned and EMA momentum 1.0). Every check goes through the model's public entry points:
``forward(mode='loss')`` (the train step's losses), the ITM loss with given negatives, and
``gradcam``. Tolerance: the fixture README's 1e-5 absolute.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import shared_path
from tests.models.albef_micro import ATOL, close, load_micro, micro_model
from tests.models.loss_context import model_context
from vlreg.models import ALBEFPretrainer

ALPHAS = (0.0, 0.4)


@pytest.fixture(scope='module')
def fixture():
    folder = shared_path('albef_reference')
    if not (folder / 'albef_micro_momentum.pth').exists():
        pytest.skip(f'{folder}/albef_micro_momentum.pth is absent')
    model = load_micro(micro_model(dropout=0.0), str(folder / 'albef_micro_momentum.pth'))
    inputs = torch.load(folder / 'inputs.pt', weights_only=True)
    outputs = torch.load(folder / 'outputs_momentum.pt', weights_only=True)
    first = torch.load(folder / 'outputs.pt', weights_only=True)
    # the fixture is what it claims: the momentum weights differ, the temperature is 0.2
    assert abs(model.temp.item() - 0.2) < 1e-7
    assert not torch.equal(model.text_proj.weight, model.text_proj_m.weight)
    return model, inputs, outputs, first


def batch(inp: dict) -> dict:
    return {
        k: inp[k].clone()
        for k in ('image', 'input_ids', 'attention_mask', 'mlm_input_ids', 'mlm_labels')
    }


def fresh(model: ALBEFPretrainer) -> ALBEFPretrainer:
    return copy.deepcopy(model)  # each test changes alpha / mode / queues on its own copy


@pytest.mark.parametrize('alpha', ALPHAS)
def test_forward_losses_equal_albef_with_distinct_momentum_model(fixture, alpha):
    """``forward(mode='loss')`` at the model's ``alpha``: ITC and MLM distil from the momentum model
    at temperature 0.2 (alpha 0 and 0.4 give different ALBEF values, so an alpha that is ignored
    fails)."""
    base, inp, out, _ = fixture
    model = fresh(base).eval()
    model.alpha = alpha
    ref = out[f'alpha_{alpha}']
    losses = model(batch(inp), None, 'loss')
    close(losses['loss_itc'], ref['loss_itc'])
    close(losses['loss_mlm'], ref['loss_mlm'])
    assert abs(losses['temp'].item() - 0.2) < 1e-7
    # ITM with ALBEF's pinned negatives (it reads no momentum weights)
    ctx = model_context(model, model.extract_features(batch(inp)))
    with torch.no_grad():
        model.losses['itc'](ctx)
        itm = model.losses['itm'].loss_with_negatives(
            ctx, inp['image_neg_idx'], inp['text_neg_idx']
        )
    close(itm['loss_itm'], ref['loss_itm'])


@pytest.mark.parametrize('alpha', ALPHAS)
def test_train_step_enqueues_the_momentum_features_like_albef(fixture, alpha):
    """A training step with EMA coefficient 1.0 (as the fixture ran ALBEF.forward): same ITC / MLM
    losses, and the queues and pointer after the step equal ALBEF's after
    ``_dequeue_and_enqueue``."""
    base, inp, out, _ = fixture
    model = fresh(base).train()
    model.momentum = 1.0
    model.alpha = alpha
    ref = out[f'alpha_{alpha}']
    losses = model(batch(inp), None, 'loss')
    close(losses['loss_itc'], ref['loss_itc'])
    close(losses['loss_mlm'], ref['loss_mlm'])
    itc = model.losses['itc']
    close(itc.image_queue, ref['image_queue_after'])
    close(itc.text_queue, ref['text_queue_after'])
    assert torch.equal(itc.queue_ptr, ref['queue_ptr_after'])


def _momentum_pairs(state: dict) -> dict[str, str]:
    """``{momentum key: online key}`` of the state dict, by the ``<part>_m.`` naming convention."""
    pairs = {}
    for key in state:
        head, _, rest = key.partition('.')
        if head.endswith('_m') and f'{head[:-2]}.{rest}' in state:
            pairs[key] = f'{head[:-2]}.{rest}'
    return pairs


def test_ema_update_comes_before_the_teacher_forward(fixture):
    """ALBEF updates the momentum encoders first, then computes the distillation targets and the
    enqueued features with the updated teacher: a train step with EMA coefficient 0.5 equals an eval
    pass of a copy whose momentum weights were set to ``0.5 * p_m + 0.5 * p`` here."""
    base, inp, _, _ = fixture
    m = 0.5
    model = fresh(base).train()
    model.momentum = m
    model.alpha = 0.4
    expected = fresh(base).eval()
    expected.alpha = 0.4
    state = expected.state_dict()
    pairs = _momentum_pairs(state)
    assert len(pairs) > 100 and any(k.startswith('fusion_m.') for k in pairs)
    with torch.no_grad():
        updated = {
            k: m * state[k] + (1 - m) * state[o] if state[k].is_floating_point() else state[k]
            for k, o in pairs.items()
        }
    expected.load_state_dict(updated, strict=False)
    want = expected(batch(inp), None, 'loss')
    got = model(batch(inp), None, 'loss')
    close(got['loss_itc'], want['loss_itc'])
    close(got['loss_mlm'], want['loss_mlm'])
    # the stale teacher would give other values: the update matters at this coefficient
    stale = fresh(base).eval()
    stale.alpha = 0.4
    assert abs(stale(batch(inp), None, 'loss')['loss_itc'] - want['loss_itc']) > 1e-3
    # the momentum weights after the step, and what it enqueued (the updated teacher's features)
    after = model.state_dict()
    for k in pairs:
        if state[k].is_floating_point():
            close(after[k], updated[k], atol=1e-6)
    with torch.no_grad():
        _, image_m, text_m = expected.encode_momentum(
            inp['image'], inp['input_ids'], inp['attention_mask']
        )
    close(model.losses['itc'].image_queue[:, :4], image_m.t())
    close(model.losses['itc'].text_queue[:, :4], text_m.t())


def test_model_gradcam_equals_albef_notebook_gradcam(fixture):
    """``model.gradcam`` (grounding, pointing and the visualisation use it) is the Grad-CAM of the
    ITM
    *match* logit (column 1): ALBEF's ``gradcam`` output of outputs.pt (the momentum fixture changed
    only momentum weights and the temperature, which ITM does not read)."""
    base, inp, _, first = fixture
    model = fresh(base).eval()
    cam, logits = model.gradcam(inp['image'], inp['input_ids'], inp['attention_mask'], layer=0)
    close(logits, first['gradcam_itm_logits'])
    cam = cam.reshape(4, inp['input_ids'].shape[1], 4, 4)
    assert torch.allclose(cam, first['gradcam'], rtol=1e-3, atol=1e-9), (
        (cam - first['gradcam']).abs().max()
    )
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize('value,clamped', [(0.9, 0.5), (1e-5, 0.001)])
def test_temperature_is_clamped_to_albef_range(fixture, value, clamped):
    """ALBEF clamps the temperature to [0.001, 0.5] before every use: a temperature set outside
    gives the loss of the clamped one (ITC at alpha 0 written out here from the model's encoders and
    queues)."""
    base, inp, _, _ = fixture
    model = fresh(base).eval()
    model.alpha = 0.0
    with torch.no_grad():
        model.temp.fill_(value)
    losses = model(batch(inp), None, 'loss')
    assert abs(losses['temp'].item() - clamped) < 1e-9
    assert abs(model.temp.item() - clamped) < 1e-9
    with torch.no_grad():
        _, v = model.encode_image(inp['image'])
        _, t = model.encode_text(inp['input_ids'], inp['attention_mask'])
        _, v_m, t_m = model.encode_momentum(inp['image'], inp['input_ids'], inp['attention_mask'])
    itc = model.losses['itc']
    cols_t = torch.cat([t_m, itc.text_queue.t()]).double()
    cols_v = torch.cat([v_m, itc.image_queue.t()]).double()
    rows = torch.arange(4)
    i2t = -torch.log_softmax(v.double() @ cols_t.t() / clamped, dim=1)[rows, rows].mean()
    t2i = -torch.log_softmax(t.double() @ cols_v.t() / clamped, dim=1)[rows, rows].mean()
    ref = (i2t + t2i) / 2
    close(losses['loss_itc'], ref, atol=ATOL + 1e-6 * ref.abs().item())  # 160 at temp 0.001
