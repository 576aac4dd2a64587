"""VQA v2: ALBEF's answer decoder, the soft-score classifier head, the data preparation, and
Runner runs of both heads on the real samples of ../shared/data/vl_task_samples."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import shared_path
from vlreg.datasets import VQADataset
from vlreg.datasets.downstream import answer_weights
from vlreg.datasets.prepare import vqa as prepare_vqa
from vlreg.evaluation.vqa import vqa_accuracy
from vlreg.models import ALBEFPretrainer
from vlreg.models.heads.answer_decoder import AnswerDecoderHead
from vlreg.models.heads.vqa import AnswerClassifierHead, soft_scores
from vlreg.models.tasks import ALBEFVQA
from vlreg.structures import DataSample

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / 'tools'))

import prepare_data as prepare_tool  # noqa: E402  (tools/prepare_data.py)
import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

D = 32
WORDS = (
    'net',
    'netting',
    'mesh',
    'pitcher',
    'catcher',
    'orange',
    'tennis',
    'racket',
    'bat',
    'glove',
)
TOKENIZER = dict(type='SyntheticTokenizer', add_sep=True, extra_words=WORDS)
ANSWERS = [
    'net',
    'orange',
    'pitcher',
    'tennis racket',
    'red',
    'blue circle',
    'bat',
    'glove',
    'red tennis racket',
]
ENCODERS = dict(
    image_backbone=dict(
        type='TimmViTBackbone',
        model_name='vit_tiny_patch16_224',
        img_size=32,
        embed_dim=D,
        depth=1,
        num_heads=2,
    ),
    fusion=dict(
        type='BertFusion',
        hidden_size=D,
        encoder_width=D,
        num_layers=2,
        num_heads=2,
        intermediate_size=2 * D,
        layer_offset=1,
    ),
)
SAMPLES_CONFIGS = {
    'decoder': 'configs/tasks/vqa/albef_vit-t-bert-t_1xb3_vqa-samples.py',
    'classifier': 'configs/tasks/vqa/albef-cls_vit-t-bert-t_1xb3_vqa-samples.py',
}


def _tokenizer():
    from vlreg.datasets.tokenizers import build_tokenizer

    return build_tokenizer(TOKENIZER)


def _text_backbone() -> dict:
    return dict(
        type='BertTextBackbone',
        vocab_size=_tokenizer().vocab_size,
        hidden_size=D,
        num_layers=1,
        num_heads=2,
        intermediate_size=2 * D,
        max_position_embeddings=16,
    )


def _decoder_cfg(**kwargs) -> dict:
    return dict(
        type='AnswerDecoderHead',
        num_layers=2,
        num_heads=2,
        intermediate_size=2 * D,
        max_position_embeddings=16,
        tokenizer=TOKENIZER,
        **kwargs,
    )


def _decoder(**kwargs) -> AnswerDecoderHead:
    cfg = _decoder_cfg(**kwargs)
    cfg.pop('type')
    head = AnswerDecoderHead(hidden_size=D, vocab_size=_tokenizer().vocab_size, **cfg).eval()
    head.set_answer_list(ANSWERS)
    return head


def _sample(qid: int, answers: list[str]) -> DataSample:
    unique, weights = answer_weights(answers)
    ids = [np.asarray(_tokenizer().encode(a, 10)) for a in unique]
    return DataSample(
        metainfo=dict(
            question_id=qid,
            answers=answers,
            weighted_answers=unique,
            answer_weights=weights,
            weighted_answers_ids=ids,
        )
    )


def _states(batch: int = 3, length: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 3:] = 0
    return torch.randn(batch, length, D, generator=g), mask


def _log_likelihood(
    head: AnswerDecoderHead, answer: str, states: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """log p(answer | question), one unpadded sequence at a time, from the logits directly."""
    ids = torch.tensor([_tokenizer().encode(answer, head.answer_max_length)])
    logits = head.decode(ids, torch.ones_like(ids), states[None], mask[None])[0]
    logp = logits.log_softmax(-1)
    return sum(logp[t - 1, ids[0, t]] for t in range(1, ids.shape[1]))


# --- soft scores and the classifier head -------------------------------------------------------
def test_soft_scores_by_hand() -> None:
    answers = ['Net.', 'a net', 'two', '2', '2', 'mesh', 'mesh', 'mesh', 'mesh', 'Mesh']
    # normalised: net x2, 2 x3, mesh x5; 'vqa' = leave-one-out average of min(n/3, 1)
    assert soft_scores(answers) == pytest.approx({'net': 0.6, '2': 0.9, 'mesh': 1.0})
    assert soft_scores(answers, 'min3') == pytest.approx({'net': 2 / 3, '2': 1.0, 'mesh': 1.0})
    for answer, score in soft_scores(answers).items():  # it is the VQA accuracy of the answer
        assert score == pytest.approx(vqa_accuracy(answer, answers, gt_processing='full'))
    with pytest.raises(ValueError, match='soft score'):
        soft_scores(answers, 'max')


def test_classifier_targets_and_loss() -> None:
    torch.manual_seed(0)
    head = AnswerClassifierHead(hidden_size=D, num_answers=6)
    with pytest.raises(ValueError, match='num_answers=6'):
        head.set_answer_list(['a', 'b'])
    head.set_answer_list(['orange', 'pitcher', 'net', 'catcher', 'mesh', '2'])
    samples = [
        DataSample(
            metainfo=dict(
                question_id=1, answers=['net'] * 6 + ['netting', 'mesh', 'pitcher', 'orange']
            )
        ),
        DataSample(metainfo=dict(question_id=2, answers=['pitcher'] * 9 + ['catcher'])),
        DataSample(metainfo=dict(question_id=3, answers=['two', 'Two', '2'] + ['x'] * 7)),
    ]
    targets = head.targets(samples, torch.device('cpu'))['scores']
    expected = torch.tensor(
        [
            [0.3, 0.3, 1.0, 0.0, 0.3, 0.0],  # 'netting' is not in the list
            [0.0, 1.0, 0.0, 0.3, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.9],
        ]
    )
    torch.testing.assert_close(targets, expected)
    states, mask = _states()
    out = head.loss(states, mask, {'scores': targets})
    x = head.mlp(states[:, 0])
    p = torch.sigmoid(x)
    direct = -(targets * p.log() + (1 - targets) * (1 - p).log()).sum(1).mean()
    torch.testing.assert_close(out['loss_vqa'], direct, rtol=1e-5, atol=1e-5)
    teacher = torch.randn(3, 6)
    soft = 0.6 * targets + 0.4 * teacher.sigmoid()
    direct = -(soft * p.log() + (1 - soft) * (1 - p).log()).sum(1).mean()
    got = head.loss(states, mask, {'scores': targets}, teacher, 0.4)['loss_vqa']
    torch.testing.assert_close(got, direct, rtol=1e-5, atol=1e-5)
    index, score = head.predict(states, mask)
    assert torch.equal(index, x.argmax(1)) and torch.allclose(score, p.max(1).values)
    with pytest.raises(KeyError, match='question_id 7'):
        head.targets([DataSample(metainfo=dict(question_id=7, answers=[]))], torch.device('cpu'))


# --- the decoder: loss and ranking ---------------------------------------------------------------
def test_weighted_answer_loss_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    head = _decoder()
    answers = [
        ['net'] * 6 + ['mesh'] * 3 + ['tennis racket'],  # 3 answers, unequal lengths
        ['pitcher'] * 10,
        ['red tennis racket'] * 5 + ['glove'] * 5,
    ]
    samples = [_sample(i, a) for i, a in enumerate(answers)]
    states, mask = _states()
    targets = head.targets(samples, torch.device('cpu'))
    assert targets['answer_ids'].shape[0] == 6  # answers of all questions, padded together
    loss = head.loss(states, mask, targets)['loss_vqa']
    # ALBEF: sum over (question, answer) of weight * sequence NLL, divided by the questions
    direct = 0.0
    for b, gts in enumerate(answers):
        for answer, weight in zip(*answer_weights(gts)):
            direct = direct - weight * _log_likelihood(head, answer, states[b], mask[b])
    direct = direct / len(answers)
    torch.testing.assert_close(loss, direct, rtol=1e-5, atol=1e-5)

    # momentum distillation: per token (1 - alpha) * CE + alpha * CE(softmax(teacher))
    teacher = torch.randn(targets['answer_ids'].shape + (head.vocab_size,))
    alpha = 0.4
    got = head.loss(states, mask, targets, teacher=teacher, alpha=alpha)['loss_vqa']
    logits = head.logits(states, mask, targets)
    direct = 0.0
    for j in range(targets['answer_ids'].shape[0]):
        ids = targets['answer_ids'][j]
        n = int(targets['answer_mask'][j].sum())
        for t in range(1, n):
            logp = logits[j, t - 1].log_softmax(-1)
            soft = teacher[j, t - 1].softmax(-1)
            term = (1 - alpha) * -logp[ids[t]] + alpha * -(soft * logp).sum()
            direct = direct + targets['weights'][j] * term
    torch.testing.assert_close(got, direct / 3, rtol=1e-5, atol=1e-5)

    with pytest.raises(KeyError, match='question_id 9'):
        head.targets([DataSample(metainfo=dict(question_id=9, answers=['a']))], torch.device('cpu'))


def test_label_smoothing_is_off_by_default_and_matches_its_formula() -> None:
    torch.manual_seed(0)
    eps = 0.1
    plain, smooth = _decoder(), _decoder(label_smoothing=eps)
    smooth.load_state_dict(plain.state_dict())
    assert plain.label_smoothing == 0.0
    samples = [_sample(0, ['bat'] * 10)]
    states, mask = _states(batch=1)
    targets = plain.targets(samples, torch.device('cpu'))
    logp = plain.logits(states, mask, targets)[0].log_softmax(-1)
    ids = targets['answer_ids'][0]
    direct = sum(
        (1 - eps) * -logp[t - 1, ids[t]] - eps * logp[t - 1].mean() for t in range(1, len(ids))
    )
    torch.testing.assert_close(
        smooth.loss(states, mask, targets)['loss_vqa'], direct, rtol=1e-5, atol=1e-5
    )


def test_ranking_with_all_candidates_is_the_exhaustive_maximum_likelihood() -> None:
    torch.manual_seed(1)
    head = _decoder(rank_chunk_size=5)  # 4 x 9 candidate sequences in 8 decoder passes
    states, mask = _states(batch=4, seed=2)
    with torch.no_grad():
        exhaustive = torch.stack(
            [
                torch.stack([_log_likelihood(head, a, states[b], mask[b]) for a in ANSWERS])
                for b in range(4)
            ]
        )
    indices, scores = head.rank(states, mask, k=len(ANSWERS))
    assert torch.equal(indices, exhaustive.argsort(dim=1, descending=True))
    torch.testing.assert_close(
        scores, exhaustive.sort(dim=1, descending=True).values, rtol=1e-5, atol=1e-5
    )
    assert torch.equal(head.predict(states, mask)[0], exhaustive.argmax(1))  # k_test >= len

    # k < all: the k candidates whose first token is likeliest, re-ranked by full likelihood
    first_ids = [_tokenizer().encode(a, 10)[1] for a in ANSWERS]
    start = torch.full((4, 1), _tokenizer().cls_token_id)
    first_logp = head.decode(start, torch.ones_like(start), states, mask)[:, 0].log_softmax(-1)
    k = 3
    for b in range(4):
        pool = first_logp[b, first_ids].topk(k).indices.tolist()
        top, top_scores = head.rank(states[b : b + 1], mask[b : b + 1], k=k)
        assert sorted(top[0].tolist()) == sorted(pool)
        assert top[0].tolist() == sorted(pool, key=lambda j: -exhaustive[b, j].item())
    # ALBEF's released code: + the first token's log-probability once more
    twice = _decoder(count_first_token_twice=True)
    twice.load_state_dict(head.state_dict())
    indices, scores = twice.rank(states, mask, k=len(ANSWERS))
    albef = exhaustive + first_logp[:, first_ids]
    assert torch.equal(indices, albef.argsort(dim=1, descending=True))
    assert 'first token again' in twice.protocol


def test_decoder_self_attention_is_causal_and_ignores_padding() -> None:
    torch.manual_seed(0)
    head = _decoder()
    states, mask = _states(batch=1)
    ids = torch.tensor([_tokenizer().encode('red tennis racket', 10)])
    ones = torch.ones_like(ids)
    with torch.no_grad():
        full = head.decode(ids, ones, states, mask)[0]
        changed = ids.clone()
        changed[0, -2] = _tokenizer().encode('bat', 10)[1]
        moved = head.decode(changed, ones, states, mask)[0]
        padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
        pad_mask = torch.cat([ones, torch.zeros(1, 3, dtype=torch.long)], dim=1)
        with_pad = head.decode(padded, pad_mask, states, mask)[0]
    n = ids.shape[1]
    torch.testing.assert_close(moved[: n - 2], full[: n - 2])  # earlier positions do not see it
    assert not torch.allclose(moved[n - 2], full[n - 2])
    torch.testing.assert_close(with_pad[:n], full, rtol=1e-5, atol=1e-5)


def test_decoder_needs_an_end_token() -> None:
    with pytest.raises(ValueError, match='add_sep=True'):
        AnswerDecoderHead(hidden_size=D, vocab_size=50, tokenizer=dict(type='SyntheticTokenizer'))


# --- initialisation from a pre-training checkpoint ----------------------------------------------
def _pretrain_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    pretrainer = ALBEFPretrainer(
        **ENCODERS,
        text_backbone=_text_backbone(),
        embed_dim=16,
        losses=dict(itc=dict(type='ITCLoss', embed_dim=16, queue_size=8), mlm=dict(type='MLMLoss')),
    )
    with torch.no_grad():  # make the MLM head distinguishable from a fresh one
        pretrainer.mlm_head.bias.add_(1.0)
        pretrainer.mlm_head.transform.LayerNorm.weight.mul_(2.0)
    state = {k: v.clone() for k, v in pretrainer.state_dict().items()}
    path = tmp_path / 'pretrain.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': state}, path)
    return path, state


def _vqa_model(head: dict, **kwargs) -> ALBEFVQA:
    return ALBEFVQA(
        **ENCODERS, text_backbone=_text_backbone(), head=head, answer_list=ANSWERS, **kwargs
    )


def test_decoder_is_initialised_from_the_fusion_layers(tmp_path: Path) -> None:
    path, state = _pretrain_checkpoint(tmp_path)
    torch.manual_seed(2)
    model = _vqa_model(_decoder_cfg(), pretrained=str(path))
    model.init_weights()
    decoder = model.head.state_dict()
    checked = 0
    for key, value in decoder.items():
        if key.startswith('layer.'):  # decoder layer i <- fusion layer i, every sub-module
            source = state[f'fusion.{key}']
        elif key.startswith('embeddings.'):
            source = state[f'text_backbone.{key}']
        elif key == 'lm_head.decoder.weight':  # tied to the (copied) word embeddings
            source = state['text_backbone.embeddings.word_embeddings.weight']
        else:
            source = state[key.replace('lm_head.', 'mlm_head.')]
        assert torch.equal(value, source), key
        checked += 1
    assert checked == len(decoder)
    assert any('crossattention' in k for k in decoder) and 'layer.1.output.dense.weight' in decoder
    assert (
        model.head.init_map(2)['layer.1.crossattention.self.key.weight']
        == 'fusion.layer.1.crossattention.self.key.weight'
    )
    # the encoders are the checkpoint's; the momentum copies restart from the online model
    for key, value in model.state_dict().items():
        if key.startswith(('image_backbone.', 'text_backbone.', 'fusion.')):
            assert torch.equal(value, state[key]), key
    for online, shadow in (('head', 'head_m'), ('fusion', 'fusion_m')):
        for (k, p), (_, q) in zip(
            getattr(model, online).named_parameters(), getattr(model, shadow).named_parameters()
        ):
            assert torch.equal(p, q) and not q.requires_grad, k
    # a decoder deeper than the fusion keeps its extra layer as initialised
    deeper = _vqa_model(_decoder_cfg() | dict(num_layers=3), pretrained=str(path))
    before = deeper.head.layer[2].output.dense.weight.clone()
    deeper.init_weights()
    assert torch.equal(deeper.head.layer[2].output.dense.weight, before)


def test_model_loss_predict_and_protocol() -> None:
    torch.manual_seed(0)
    inputs = dict(
        image=torch.randn(3, 3, 32, 32),
        input_ids=torch.randint(5, 20, (3, 6)),
        attention_mask=torch.ones(3, 6, dtype=torch.long),
    )
    answers = [['net'] * 10, ['bat'] * 4 + ['glove'] * 6, ['orange'] * 10]
    for head in (_decoder_cfg(), dict(type='AnswerClassifierHead')):
        model = _vqa_model(head)
        model.init_weights()
        out = model(inputs, [_sample(i, a) for i, a in enumerate(answers)], mode='loss')
        assert set(out) == {'loss_vqa'} and torch.isfinite(out['loss_vqa'])
        model.eval()
        preds = model(inputs, [_sample(i, a) for i, a in enumerate(answers)], mode='predict')
        assert [p.question_id for p in preds] == [0, 1, 2]
        assert all(p.pred_answer == ANSWERS[p.pred_answer_index] for p in preds)
        assert preds[0].vqa_protocol == model.head.protocol
    with pytest.raises(ValueError, match='num_answers'):
        ALBEFVQA(
            **ENCODERS,
            text_backbone=_text_backbone(),
            head=dict(type='AnswerClassifierHead'),
            answer_list='answers.json',
        )
    with pytest.raises(ValueError, match='repeats'):
        ALBEFVQA(
            **ENCODERS,
            text_backbone=_text_backbone(),
            head=_decoder_cfg(),
            answer_list=['a', 'b', 'a'],
        )


# --- data preparation ---------------------------------------------------------------------------
def _prepare(tmp_path: Path, *extra: str) -> tuple[int, argparse.Namespace]:
    parser = argparse.ArgumentParser()
    prepare_vqa.add_arguments(parser)
    args = parser.parse_args(list(extra))
    return prepare_vqa.run(args), args


def test_prepare_vqa_on_a_copy_of_the_samples(tmp_path: Path, capsys) -> None:
    root = shared_path('vl_task_samples')
    src = tmp_path / 'src'
    shutil.copytree(root / 'vqav2', src)
    ques, anns = src / 'questions.json', src / 'annotations.json'
    images = str(root / 'images' / 'vqav2')
    name = 'COCO_{split}_{image_id:012d}.jpg'
    out = tmp_path / 'out'
    # the committed candidate list of the tiny configs is what this command writes
    rc = prepare_tool.main(
        [
            'vqa',
            '--questions',
            str(ques),
            '--annotations',
            str(anns),
            '--out-dir',
            str(out),
            '--count-field',
            'answers',
            '--min-count',
            '1',
        ]
    )
    assert rc == 0
    written = json.loads((out / 'answer_list.json').read_text())
    # counted answers: orange 1 + 10, pitcher 1 + 9, net 6, catcher / mesh / netting 1 each
    assert written == ['orange', 'pitcher', 'net', 'catcher', 'mesh', 'netting']
    committed = ROOT / 'configs/tasks/vqa/vqav2_samples_answer_list.json'
    assert json.loads(committed.read_text()) == written

    # corrupt entries: each one is skipped and reported with its file and entry
    q = json.loads(ques.read_text())
    a = json.loads(anns.read_text())
    q['questions'].append({'question_id': 7, 'image_id': 458752, 'question': ''})
    q['questions'].append({'question_id': 8, 'image_id': 1, 'question': 'where?'})
    a['annotations'][1]['answers'] = 'pitcher'
    ques.write_text(json.dumps(q))
    anns.write_text(json.dumps(a))
    capsys.readouterr()
    rc, _ = _prepare(
        tmp_path,
        '--questions',
        str(ques),
        '--annotations',
        str(anns),
        '--out-dir',
        str(out),
        '--min-count',
        '1',
        '--image-root',
        images,
        '--image-name',
        name,
    )
    assert rc == 0
    report = capsys.readouterr().out
    assert 'train2014: 2 of 5 questions' in report
    assert 'entry 3' in report and 'empty question' in report
    assert 'entry 4 (question_id 8)' in report and 'not found' in report
    assert 'entry 1 (question_id 458752001)' in report and 'question without' in report
    assert 'num_answers=2' in report
    # multiple_choice_answer is absent from the samples: derived as the most frequent answer
    assert json.loads((out / 'answer_list.json').read_text()) == ['net', 'orange']
    entries = json.loads((out / 'vqa_train2014.json').read_text())
    assert [e['question_id'] for e in entries] == [458752000, 458752002]
    assert entries[0]['image'] == 'COCO_train2014_000000458752.jpg'
    # the ALBEF file reads back as the official files do
    albef = VQADataset(ques_file=str(out / 'vqa_train2014.json'), image_root=images)
    official = VQADataset(
        ques_file=str(root / 'vqav2/questions.json'),
        ann_file=str(root / 'vqav2/annotations.json'),
        image_root=images,
    )
    for i, j in ((0, 0), (1, 2)):
        mine, ref = albef.get_data_info(i), official.get_data_info(j)
        for key in (
            'question_id',
            'question',
            'answers',
            'weighted_answers',
            'answer_weights',
            'img_path',
        ):
            assert mine[key] == ref[key], key

    assert (
        _prepare(tmp_path, '--questions', str(tmp_path / 'none.json'), '--out-dir', str(out))[0]
        == 1
    )
    assert 'none.json' in capsys.readouterr().out
    assert (
        _prepare(tmp_path, '--questions', str(ques), '--out-dir', str(out), '--min-count', '0')[0]
        == 2
    )


# --- Runner runs on the real samples -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('head', sorted(SAMPLES_CONFIGS))
def test_train_and_test_on_real_samples(head: str, tmp_path: Path) -> None:
    root = shared_path('vl_task_samples')
    config = str(ROOT / SAMPLES_CONFIGS[head])
    options = [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    work = tmp_path / 'work'
    train_tool.main(
        [config, '--work-dir', str(work), '--cfg-options', *options, 'train_cfg.val_interval=2']
    )  # one iteration, no validation inside training
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    result_file = tmp_path / 'vqa_result.json'
    metrics = test_tool.main(
        [
            config,
            str(checkpoint),
            '--work-dir',
            str(tmp_path / 'test'),
            '--cfg-options',
            *options,
            f'test_evaluator.result_file={result_file}',
        ]
    )
    results = json.loads(result_file.read_text())
    # the evaluation server's format
    assert isinstance(results, list) and len(results) == 3
    assert all(
        set(r) == {'question_id', 'answer'}
        and isinstance(r['question_id'], int)
        and isinstance(r['answer'], str)
        for r in results
    )
    candidates = json.loads((ROOT / 'configs/tasks/vqa/vqav2_samples_answer_list.json').read_text())
    assert all(r['answer'] in candidates for r in results)
    acc = metrics['vqa/acc'] / 100
    assert 0.0 <= acc <= 1.0 and metrics['vqa/num_questions'] == 3
    annotations = json.loads((root / 'vqav2/annotations.json').read_text())['annotations']
    gts = {a['question_id']: [x['answer'] for x in a['answers']] for a in annotations}
    recomputed = np.mean([vqa_accuracy(r['answer'], gts[r['question_id']]) for r in results])
    assert acc == pytest.approx(recomputed)
    expected = 'answer decoder' if head == 'decoder' else 'answer classifier'
    assert expected in metrics['vqa/protocol']


# --- ALBEF's VQA learning-rate schedule ------------------------------------------------------------
def _albef_vqa_lr(epoch: int, it: int) -> float:
    """The rate ALBEF's VQA.py uses, written from timm's CosineLRScheduler as VQA.yaml configures it
    (lr 2e-5, min_lr 1e-6, t_initial 8, warmup_lr 1e-5, warmup_t 4, warmup_prefix=True) and as
    VQA.py steps it: t = i // 100 every 100 iterations of epoch 0 while i <= 400, t = epoch + 4 at
    the start of every later epoch."""
    import math

    t = min(it // 100, 4) if epoch == 0 else epoch + 4
    if t < 4:
        return 1e-5 + t * (2e-5 - 1e-5) / 4
    t -= 4  # the warm-up prefix
    return 1e-6 + 0.5 * (2e-5 - 1e-6) * (1 + math.cos(math.pi * t / 8))


def test_vqa_config_reproduces_albef_learning_rate() -> None:
    """Each iteration's rate from the config's schedulers, stepped as MMEngine's ParamSchedulerHook
    steps them (iteration-based ones after each iteration, epoch-based ones after each epoch)."""
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    from vlreg.registry import PARAM_SCHEDULERS

    for name in ('albef', 'albef-cls'):
        cfg = Config.fromfile(
            str(ROOT / f'configs/tasks/vqa/{name}_vit-b16-bert-base_8xb32_vqa-8e.py')
        )
        assert cfg.optim_wrapper.optimizer.lr == 2e-5 and cfg.train_cfg.max_epochs == 8
        optim = OptimWrapper(
            torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=cfg.optim_wrapper.optimizer.lr)
        )
        iters = 450
        schedulers = []
        for s in cfg.param_scheduler:  # built as MMEngine's Runner builds them
            s = dict(s)
            kind = PARAM_SCHEDULERS.get(s.pop('type'))
            if s.pop('convert_to_iter_based', False):
                schedulers.append(kind.build_iter_from_epoch(optim, **s, epoch_length=iters))
            else:
                schedulers.append(kind(optim, **s))
        for epoch in range(8):
            for it in range(iters):
                used = optim.param_groups[0]['lr']
                assert abs(used - _albef_vqa_lr(epoch, it)) < 1e-12, (name, epoch, it, used)
                optim.step()
                for s in schedulers:
                    if not s.by_epoch:
                        s.step()
            for s in schedulers:
                if s.by_epoch:
                    s.step()
    # the numbers the formula gives, as ALBEF's run logs them
    assert [round(_albef_vqa_lr(0, i) * 1e6, 2) for i in (0, 150, 399, 400)] == [10, 12.5, 17.5, 20]
    assert [round(_albef_vqa_lr(e, 0) * 1e7) for e in (1, 2, 7)] == [193, 172, 17]
