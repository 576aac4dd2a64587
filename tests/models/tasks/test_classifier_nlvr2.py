"""SNLI-VE and NLVR2: the task head, the classifiers, ALBEF's NLVR2 pair fusion, and Runner runs on
the real samples of ../shared/data/vl_task_samples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import shared_path
from vlreg.models import ALBEFPretrainer
from vlreg.models.fusion.pair_fusion import BertPairFusion
from vlreg.models.heads.classification import MLPClassifierHead
from vlreg.models.tasks import (
    ALBEFClassifier,
    ALBEFPairClassifier,
    ALBEFTextAssignmentPretrainer,
    text_assignment_pairs,
)
from vlreg.structures import DataSample

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / 'tools'))

import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

D = 32  # micro width everywhere
VOCAB = 100
ENCODERS = dict(
    image_backbone=dict(
        type='TimmViTBackbone',
        model_name='vit_tiny_patch16_224',
        img_size=32,
        embed_dim=D,
        depth=1,
        num_heads=2,
    ),
    text_backbone=dict(
        type='BertTextBackbone',
        vocab_size=VOCAB,
        hidden_size=D,
        num_layers=1,
        num_heads=2,
        intermediate_size=2 * D,
        max_position_embeddings=16,
    ),
)
FUSION = dict(
    hidden_size=D,
    encoder_width=D,
    num_layers=2,
    num_heads=2,
    intermediate_size=2 * D,
    layer_offset=1,
)
PREFIXES = ('image_backbone.', 'text_backbone.', 'fusion.')


def _classifier(**kwargs) -> ALBEFClassifier:
    return ALBEFClassifier(
        **ENCODERS,
        fusion=dict(type='BertFusion', **FUSION),
        head=dict(type='MLPClassifierHead'),
        num_classes=3,
        **kwargs,
    )


def _pair_classifier(**kwargs) -> ALBEFPairClassifier:
    return ALBEFPairClassifier(
        **ENCODERS,
        fusion=dict(type='BertPairFusion', **FUSION),
        head=dict(type='MLPClassifierHead'),
        num_classes=2,
        **kwargs,
    )


def _batch(batch: int = 4, pair: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    inputs = dict(
        image=torch.randn(batch, 3, 32, 32, generator=g), input_ids=ids, attention_mask=mask
    )
    if pair:
        inputs['image_2'] = torch.randn(batch, 3, 32, 32, generator=g)
    return inputs


# --- head -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('mlp_hidden', [None, 16])
def test_mlp_head_shapes(mlp_hidden: int | None) -> None:
    head = MLPClassifierHead(hidden_size=D, num_classes=3, mlp_hidden=mlp_hidden)
    assert head(torch.randn(5, D)).shape == (5, 3)
    first, act, last = head.mlp
    assert isinstance(act, torch.nn.ReLU)
    assert first.weight.shape == (mlp_hidden or D, D)
    assert last.weight.shape == (3, mlp_hidden or D)
    with pytest.raises(ValueError):
        MLPClassifierHead(hidden_size=D, num_classes=1)


# --- classifier ---------------------------------------------------------------------------------
@pytest.mark.parametrize('pair', [False, True])
def test_loss_is_cross_entropy_and_predict(pair: bool) -> None:
    torch.manual_seed(0)
    # distill=False: plain cross-entropy; eval: no dropout, same logits
    model = (_pair_classifier(distill=False) if pair else _classifier(distill=False)).eval()
    assert not any(n.endswith('_m') for n, _ in model.named_children())
    inputs = _batch(pair=pair)
    labels = [0, 1, 1, 0] if pair else [2, 0, 1, 2]
    samples = [DataSample(metainfo=dict(label=t)) for t in labels]
    out = model(inputs, samples, mode='loss')
    logits = model(inputs, mode='tensor')
    assert logits.shape == (4, 2 if pair else 3)
    expected = F.cross_entropy(logits, torch.tensor(labels))
    torch.testing.assert_close(out['loss_cls'], expected)
    assert [k for k in out if 'loss' in k] == ['loss_cls']
    loss, log_vars = model.parse_losses(out)
    torch.testing.assert_close(loss, expected)
    preds = model(inputs, [DataSample(metainfo=dict(label=t)) for t in labels], mode='predict')
    for p, row in zip(preds, logits.softmax(-1)):
        torch.testing.assert_close(p.pred_score, row)
        assert int(p.pred_label) == int(row.argmax())
    with pytest.raises(KeyError, match='label'):
        model(inputs, [DataSample() for _ in labels], mode='loss')


def _no_dropout(build, **kwargs):
    """A classifier whose training-mode forward is deterministic (no dropout anywhere)."""
    text = dict(ENCODERS['text_backbone'], dropout=0.0, attn_dropout=0.0)
    fusion = dict(FUSION, dropout=0.0, attn_dropout=0.0)
    cls, kind, classes = (
        (ALBEFPairClassifier, 'BertPairFusion', 2)
        if build == 'pair'
        else (ALBEFClassifier, 'BertFusion', 3)
    )
    return cls(
        image_backbone=ENCODERS['image_backbone'],
        text_backbone=text,
        fusion=dict(type=kind, **fusion),
        head=dict(type='MLPClassifierHead'),
        num_classes=classes,
        **kwargs,
    )


@pytest.mark.parametrize('kind', ['single', 'pair'])
def test_momentum_distillation_loss_and_ema(kind: str) -> None:
    """ALBEF's model_ve.py / model_nlvr.py: EMA update first, then the momentum forward, then
    (1 - alpha) CE + alpha soft-CE; checked against formulas and a separate teacher model."""
    torch.manual_seed(0)
    alpha, m = 0.4, 0.9
    model = _no_dropout(kind, distill=True, alpha=alpha, momentum=m).train()
    shadow = {n: p for n, p in model.named_parameters() if n.split('.')[0].endswith('_m')}
    online = {n: p for n, p in model.named_parameters() if n not in shadow}
    assert {n.split('.')[0] for n in shadow} == {
        'image_backbone_m',
        'text_backbone_m',
        'fusion_m',
        'head_m',
    }

    def twin(name: str) -> str:
        first, rest = name.split('.', 1)
        return f'{first.removesuffix("_m")}.{rest}'

    assert all(torch.equal(p, online[twin(n)]) and not p.requires_grad for n, p in shadow.items())
    with torch.no_grad():  # momentum weights away from the online ones; confident logits
        for p in shadow.values():
            p.add_(0.05 * torch.randn_like(p))
        model.head.mlp[-1].weight.mul_(40)
        model.head_m.mlp[-1].weight.mul_(40)
    before = {n: p.detach().clone() for n, p in shadow.items()}
    now = {n: p.detach().clone() for n, p in online.items()}
    inputs = _batch(pair=kind == 'pair')
    labels = [0, 1, 1, 0] if kind == 'pair' else [2, 0, 1, 2]
    out = model(inputs, [DataSample(metainfo=dict(label=t)) for t in labels], mode='loss')
    # EMA, written out here
    expected_m = {n: m * before[n] + (1 - m) * now[twin(n)] for n in shadow}
    for n, p in shadow.items():
        torch.testing.assert_close(p, expected_m[n], rtol=0, atol=1e-6)
    # the teacher: a separate plain model holding the updated momentum weights
    teacher = _no_dropout(kind, distill=False).train()
    result = teacher.load_state_dict({twin(n): v for n, v in expected_m.items()}, strict=False)
    # only the pair blocks' shared key / value projections are listed once
    assert all(
        'crossattention.self.key' in k or 'crossattention.self.value' in k
        for k in result.missing_keys
    )
    stale = _no_dropout(kind, distill=False).train()
    stale.load_state_dict({twin(n): v for n, v in before.items()}, strict=False)
    target = torch.tensor(labels)
    with torch.no_grad():
        student = model.logits(inputs)
        log_p = student.log_softmax(-1)
        ce = -log_p[torch.arange(4), target].mean()

        def expected(teacher_logits: torch.Tensor) -> torch.Tensor:
            soft = -(teacher_logits.softmax(-1) * log_p).sum(-1).mean()
            return (1 - alpha) * ce + alpha * soft

        want, stale_want = expected(teacher.logits(inputs)), expected(stale.logits(inputs))
    torch.testing.assert_close(out['loss_cls'], want)
    assert (want - ce).abs() > 1e-3 and (want - stale_want).abs() > 1e-4  # the checks can fail
    out['loss_cls'].backward()
    assert all(p.grad is None for p in shadow.values())
    # alpha = 0 (the start of NLVR2's warm-up): plain CE, the EMA still moves
    model.alpha = 0.0
    out = model(inputs, [DataSample(metainfo=dict(label=t)) for t in labels], mode='loss')
    torch.testing.assert_close(out['loss_cls'], F.cross_entropy(model.logits(inputs), target))
    assert not torch.equal(next(iter(shadow.values())), next(iter(expected_m.values())))


def test_distillation_config_defaults() -> None:
    """ALBEF's VE.yaml / NLVR.yaml: distill True, alpha 0.4; warm-up for NLVR2 only."""
    from mmengine.config import Config

    for path, warm_up in (
        ('configs/tasks/snli_ve/albef_vit-b16-bert-base_8xb32_snli-ve-5e.py', False),
        ('configs/tasks/nlvr2/albef_vit-b16-bert-base_8xb16_nlvr2-10e.py', True),
        ('configs/tasks/snli_ve/albef_vit-t-bert-t_1xb8_snli-ve-samples.py', False),
        ('configs/tasks/nlvr2/albef_vit-t-bert-t_1xb4_nlvr2-samples.py', True),
    ):
        cfg = Config.fromfile(str(ROOT / path))
        assert cfg.model.distill is True and cfg.model.alpha == 0.4, path
        assert cfg.model.momentum == 0.995, path
        hooks = [h for h in cfg.custom_hooks if h['type'] == 'AlphaWarmupHook']
        # the hook ramps to the model's alpha (set once, in the model): no alpha of its own
        assert (hooks == [dict(type='AlphaWarmupHook')]) is warm_up, path
    ta = Config.fromfile(
        str(ROOT / 'configs/tasks/nlvr2/albef_vit-b16-bert-base_8xb64_4m-ta-1e.py')
    )
    assert ta.model.distill is False


def test_pair_classifier_rejects_single_image_fusion() -> None:
    with pytest.raises(TypeError, match='pair fusion'):
        ALBEFPairClassifier(**ENCODERS, fusion=dict(type='BertFusion', **FUSION), num_classes=2)


# --- ALBEF's NLVR2 fusion -------------------------------------------------------------------------
def test_pair_fusion_alternates_images_and_shares_key_value() -> None:
    torch.manual_seed(0)
    fusion = BertPairFusion(**FUSION).eval()
    assert fusion.num_layers == 4  # 2 source layers, each doubled
    for i in range(0, 4, 2):
        first, second = fusion.layer[i].crossattention.self, fusion.layer[i + 1].crossattention.self
        assert second.key is first.key and second.value is first.value
        assert second.query is not first.query
        assert fusion.layer[i].attention is not fusion.layer[i + 1].attention
    text, mask = torch.randn(2, 6, D), torch.ones(2, 6, dtype=torch.long)
    img0, img1 = torch.randn(2, 5, D), torch.randn(2, 5, D)

    def run(a: torch.Tensor, b: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outs, contexts = [], []
        hooks = [
            layer.register_forward_hook(lambda m, args, out: outs.append(out[0]))
            for layer in fusion.layer
        ]
        hooks += [
            layer.crossattention.register_forward_hook(
                lambda m, args, out: contexts.append(args[2])
            )
            for layer in fusion.layer
        ]
        with torch.no_grad():
            final = fusion(text, mask, (a, b)).hidden
        for h in hooks:
            h.remove()
        assert torch.equal(outs[-1], final)
        return outs, contexts

    base, contexts = run(img0, img1)
    assert [c is img0 for c in contexts] == [True, False, True, False]
    assert [c is img1 for c in contexts] == [False, True, False, True]
    # perturbing image 1 leaves block 0 (image 0) untouched and changes block 1 (image 1)
    moved1, _ = run(img0, img1 + 1.0)
    assert torch.equal(moved1[0], base[0])
    assert not torch.allclose(moved1[1], base[1])
    # perturbing image 0 changes block 0 already
    moved0, _ = run(img0 + 1.0, img1)
    assert not torch.allclose(moved0[0], base[0])
    # block 3 reads image 1 only: with its input fixed, changing image 0 does nothing to it
    h = base[2]
    with torch.no_grad():
        out_a = fusion.layer[3](h, None, img1)[0]
        out_b = fusion.layer[3](h, None, img1 + 1.0)[0]
    assert not torch.allclose(out_a, out_b)
    with pytest.raises(ValueError, match='pair'):
        fusion(text, mask, img0)


# --- loading a pre-training checkpoint ---------------------------------------------------------
def _pretrain_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    pretrainer = ALBEFPretrainer(
        **ENCODERS,
        fusion=dict(type='BertFusion', **FUSION),
        embed_dim=16,
        losses=dict(itc=dict(type='ITCLoss', embed_dim=16, queue_size=8), itm=dict(type='ITMLoss')),
    )
    state = pretrainer.state_dict()
    path = tmp_path / 'pretrain.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': state}, path)  # as a Runner checkpoint
    return path, state


def test_pretrained_checkpoint_loads_into_classifier(tmp_path: Path) -> None:
    path, state = _pretrain_checkpoint(tmp_path)
    assert any(k.startswith('image_backbone_m.') for k in state)  # pre-training-only keys present
    torch.manual_seed(2)
    for model in (
        _classifier(pretrained=str(path)),
        _classifier(init_cfg=dict(type='Pretrained', checkpoint=str(path))),
    ):
        model.init_weights()
        own = model.state_dict()
        encoder_keys = [k for k in own if k.startswith(PREFIXES)]
        assert encoder_keys and all(k in state for k in encoder_keys)
        for k in encoder_keys:
            assert torch.equal(own[k], state[k]), k


def test_pretrained_checkpoint_at_another_resolution(tmp_path: Path) -> None:
    """A higher fine-tuning resolution (256 -> 384 px in ALBEF) resizes the position embedding."""
    path, state = _pretrain_checkpoint(tmp_path)
    encoders = dict(ENCODERS, image_backbone=dict(ENCODERS['image_backbone'], img_size=48))
    model = ALBEFClassifier(
        **encoders, fusion=dict(type='BertFusion', **FUSION), num_classes=3, pretrained=str(path)
    )
    model.init_weights()
    pos = model.image_backbone.vit.pos_embed
    assert pos.shape[1] == 1 + 9 and state['image_backbone.vit.pos_embed'].shape[1] == 1 + 4
    torch.testing.assert_close(pos[:, 0], state['image_backbone.vit.pos_embed'][:, 0])
    torch.testing.assert_close(
        model.image_backbone.vit.patch_embed.proj.weight,
        state['image_backbone.vit.patch_embed.proj.weight'],
    )


def test_pretrained_checkpoint_loads_into_pair_classifier(tmp_path: Path) -> None:
    path, state = _pretrain_checkpoint(tmp_path)
    torch.manual_seed(2)
    model = _pair_classifier(pretrained=str(path))
    model.init_weights()
    own = model.state_dict()
    checked = 0
    for k, v in own.items():
        if k.startswith('fusion.layer.'):
            block, rest = k[len('fusion.layer.') :].split('.', 1)
            src = f'fusion.layer.{int(block) // 2}.{rest}'  # blocks 2i and 2i+1 <- layer i
        elif k.startswith(PREFIXES):
            src = k
        else:
            continue
        assert torch.equal(v, state[src]), k
        checked += 1
    assert checked == sum(k.startswith(PREFIXES) for k in own)
    assert any(k.startswith('fusion.layer.3.') for k in own)


# --- text-assignment pre-training ----------------------------------------------------------------
def test_text_assignment_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    first, second, label = text_assignment_pairs(torch.randn(6, 6, generator=g), generator=g)
    own = torch.arange(6)
    assert set(label.tolist()) <= {0, 1, 2}
    for b in range(6):
        if label[b] == 0:
            assert first[b] == own[b] and second[b] != own[b]
        elif label[b] == 1:
            assert second[b] == own[b] and first[b] != own[b]
        else:
            assert first[b] != own[b] and second[b] != own[b] and first[b] != second[b]
    labels = text_assignment_pairs(torch.zeros(300, 300), generator=g)[2]
    counts = torch.bincount(labels, minlength=3)
    assert counts.min() > 60  # the three cases are drawn uniformly
    with pytest.raises(ValueError, match='at least 3'):
        text_assignment_pairs(torch.zeros(2, 2))


def test_text_assignment_step_and_finetune_load(tmp_path: Path) -> None:
    path, state = _pretrain_checkpoint(tmp_path)
    torch.manual_seed(3)
    ta = ALBEFTextAssignmentPretrainer(
        **ENCODERS,
        fusion=dict(type='BertPairFusion', **FUSION),
        head=dict(type='MLPClassifierHead', mlp_hidden=0),
        embed_dim=16,
        pretrained=str(path),
    )
    ta.init_weights()
    assert ta.head.num_classes == 3 and len(ta.head.mlp) == 1
    torch.testing.assert_close(ta.vision_proj.weight, state['vision_proj.weight'])
    out = ta(_batch(batch=4), mode='loss')
    assert set(out) == {'loss_ta', 'ta_acc'} and torch.isfinite(out['loss_ta'])
    out['loss_ta'].backward()
    # the TA checkpoint (pair layout) initialises the NLVR2 classifier block for block
    ta_path = tmp_path / 'ta.pth'
    with torch.no_grad():
        ta.fusion.layer[3].output.dense.weight.add_(1.0)  # blocks now differ from their source
    torch.save({'state_dict': ta.state_dict()}, ta_path)
    model = _pair_classifier(pretrained=str(ta_path))
    model.init_weights()
    ta_state = ta.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith(PREFIXES):
            assert torch.equal(v, ta_state[k]), k
    with pytest.raises(ValueError, match='fits neither'):
        model.fusion.convert_state({'layer.2.x': torch.zeros(1)})


# --- Runner runs on the real samples -------------------------------------------------------------
TASKS = {
    'snli_ve': ('configs/tasks/snli_ve/albef_vit-t-bert-t_1xb8_snli-ve-samples.py', 16),
    'nlvr2': ('configs/tasks/nlvr2/albef_vit-t-bert-t_1xb4_nlvr2-samples.py', 8),
}


def _recomputed_accuracy(config: str, options: list[str], checkpoint: str) -> tuple[float, int]:
    """Accuracy from the model's own predictions, outside the metric."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint

    from vlreg.registry import MODELS

    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(o.split('=', 1) for o in options))
    init_default_scope('vlreg')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu')
    model.eval()
    hits = total = 0
    for batch in Runner.build_dataloader(cfg.test_dataloader):
        for sample in model.test_step(batch):
            hits += int(sample.pred_label) == int(sample.label)
            total += 1
    return 100.0 * hits / total, total


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(TASKS))
def test_train_and_test_on_real_samples(task: str, tmp_path: Path) -> None:
    root = shared_path('vl_task_samples')
    config, num_samples = TASKS[task]
    config = str(ROOT / config)
    options = [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    work = tmp_path / 'work'
    train_tool.main(
        [config, '--work-dir', str(work), '--cfg-options', *options, 'train_cfg.val_interval=2']
    )  # 2 iterations, no validation inside training
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    metrics = test_tool.main(
        [config, str(checkpoint), '--work-dir', str(tmp_path / 'test'), '--cfg-options', *options]
    )
    acc = metrics['accuracy/acc']
    assert metrics['accuracy/num_samples'] == num_samples
    recomputed, total = _recomputed_accuracy(config, options, str(checkpoint))
    assert total == num_samples
    assert acc == pytest.approx(recomputed)
