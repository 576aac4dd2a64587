"""VQA v2 accuracy: answer normalisation, the leave-one-annotator-out score, metric, result file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_path
from vlreg.evaluation.vqa import (
    VQAAccuracyMetric,
    normalize_answer,
    normalize_punctuation,
    vqa_accuracy,
    write_vqa_results,
)
from vlreg.registry import METRICS
from vlreg.structures import DataSample


# --- normalisation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    'raw, expected',
    [
        ('Two', '2'),  # lower-case, then number word -> digit
        ('none', '0'),
        ('dont', "don't"),  # contraction gets its apostrophe back
        ('the dog.', 'dog'),  # period not before a digit deleted, article dropped
        ('A man', 'man'),
        ('an apple?', 'apple'),  # '?' touches no space: becomes a space, then collapses
        ('1,000', '1000'),  # a comma between digits: every mark is deleted, not spaced
        ('3.5', '3.5'),  # a period before a digit is kept
        ('10.', '10'),
        ('yes/no', 'yes no'),  # '/' touching no space becomes a space
        ('hi, there', 'hi there'),  # ', ' touches a space: deleted
        ('left-handed', 'left handed'),
        ('  Red \n\tcar ', 'red car'),
        ("it's", "it's"),  # the apostrophe is not punctuation here
        ('12:30', '12:30'),  # nor is the colon
        ('Three Dogs', '3 dogs'),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_punctuation_rule_looks_at_the_whole_answer() -> None:
    # '1,000 (approx)': the digit comma switches every mark to deletion, even the brackets
    assert normalize_punctuation('1,000 (approx)') == '1000 approx'
    # without a digit comma each mark is decided alone: '(' touches a space (' (') and is deleted,
    # ')' touches none and becomes a space
    assert normalize_punctuation('red (dark)') == 'red dark '


# --- accuracy of one answer -----------------------------------------------------------------------
# With m of the 10 annotators giving the predicted answer, leaving out one of the m matching
# annotators leaves m - 1 matches among the other 9, leaving out one of the 10 - m others leaves m:
#   acc = (m * min((m - 1) / 3, 1) + (10 - m) * min(m / 3, 1)) / 10
#   m = 0: 0                      m = 1: (1 * 0 + 9 * 1/3) / 10 = 0.3
#   m = 2: (2 * 1/3 + 8 * 2/3) / 10 = 6/10 = 0.6
#   m = 3: (3 * 2/3 + 7 * 1) / 10 = 9/10 = 0.9
#   m = 4: (4 * 1 + 6 * 1) / 10 = 1.0   (and 1.0 for every m >= 4)
@pytest.mark.parametrize(
    'm, expected', [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)]
)
def test_leave_one_out_accuracy(m: int, expected: float) -> None:
    gts = ['cat'] * m + ['dog'] * (10 - m) if m < 10 else ['cat'] * 10
    assert vqa_accuracy('cat', gts) == pytest.approx(expected, abs=1e-12)


def test_prediction_is_normalised_before_matching() -> None:
    assert vqa_accuracy('Two.', ['2'] * 3 + ['3'] * 7) == pytest.approx(0.9)
    assert vqa_accuracy('The Dog', ['dog'] * 10) == pytest.approx(1.0)
    assert vqa_accuracy('dont know', ["don't know"] * 2 + ['no'] * 8) == pytest.approx(0.6)


def test_ground_truth_processing_follows_the_official_script() -> None:
    # answers that disagree get the punctuation step: 'dog.' counts as 'dog' (4 matches -> 1.0)
    assert vqa_accuracy(
        'dog', ['dog.', 'dog.', 'dog', 'dog', 'cat', 'cat', 'cat', 'cat', 'cat', 'cat']
    ) == pytest.approx(1.0)
    # ten identical answers are compared as they are (the released ones are already normalised)
    assert vqa_accuracy('net', ['Net'] * 10) == 0.0
    assert vqa_accuracy('net', ['Net'] * 10, gt_processing='full') == pytest.approx(1.0)
    # only the punctuation step: 'two' in the ground truth is not turned into '2'
    assert vqa_accuracy('2', ['two'] * 5 + ['3'] * 5) == 0.0
    assert vqa_accuracy('2', ['two'] * 5 + ['3'] * 5, gt_processing='full') == pytest.approx(1.0)
    with pytest.raises(ValueError, match='gt_processing'):
        vqa_accuracy('a', ['a'], gt_processing='lenient')
    with pytest.raises(ValueError, match='at least one'):
        vqa_accuracy('a', [])


def test_real_vqa_annotations() -> None:
    path = shared_path('vl_task_samples', 'vqav2', 'annotations.json')
    anns = {
        a['question_id']: [x['answer'] for x in a['answers']]
        for a in json.loads(Path(path).read_text())['annotations']
    }
    # 458752000: net x6, netting, mesh, pitcher, orange
    assert vqa_accuracy('net', anns[458752000]) == pytest.approx(1.0)
    assert vqa_accuracy('Netting', anns[458752000]) == pytest.approx(0.3)
    assert vqa_accuracy('catcher', anns[458752001]) == pytest.approx(0.3)  # 1 of 10
    assert vqa_accuracy('orange', anns[458752002]) == pytest.approx(1.0)  # 10 of 10
    assert vqa_accuracy('blue', anns[458752002]) == 0.0


# --- the metric -----------------------------------------------------------------------------------
def _sample(qid: int, pred: str, answers: list[str], qtype: str, atype: str) -> DataSample:
    sample = DataSample(
        metainfo=dict(question_id=qid, answers=answers, question_type=qtype, answer_type=atype)
    )
    sample.pred_answer = pred
    return sample


def test_metric_overall_and_breakdowns(tmp_path: Path) -> None:
    metric = METRICS.build(
        dict(type='VQAAccuracyMetric', result_file=str(tmp_path / 'out' / 'val.json'))
    )
    assert isinstance(metric, VQAAccuracyMetric)
    yes = ['yes'] * 10
    metric.process(
        None,
        [
            _sample(1, 'yes', yes, 'is the', 'yes/no'),  # 1.0
            _sample(2, 'no', yes, 'is the', 'yes/no'),  # 0.0
            _sample(3, 'two', ['2'] * 2 + ['3'] * 8, 'how many', 'number'),  # 0.6
        ],
    )
    # a plain dict, as MMEngine's evaluator hands data samples over
    metric.process(
        None,
        [
            dict(
                question_id=4,
                pred_answer='red',
                answers=['red'] * 3 + ['blue'] * 7,
                question_type='what color is the',
                answer_type='other',
            )
        ],
    )  # 0.9
    out = metric.evaluate(4)
    assert out['vqa/acc'] == pytest.approx(100 * (1.0 + 0.0 + 0.6 + 0.9) / 4)
    assert out['vqa/answer_type/yes_no'] == pytest.approx(50.0)
    assert out['vqa/answer_type/number'] == pytest.approx(60.0)
    assert out['vqa/answer_type/other'] == pytest.approx(90.0)
    assert out['vqa/question_type/is_the'] == pytest.approx(50.0)
    assert out['vqa/question_type/what_color_is_the'] == pytest.approx(90.0)
    assert out['vqa/num_questions'] == 4
    written = json.loads((tmp_path / 'out' / 'val.json').read_text())
    assert written == [
        {'question_id': 1, 'answer': 'yes'},
        {'question_id': 2, 'answer': 'no'},
        {'question_id': 3, 'answer': 'two'},
        {'question_id': 4, 'answer': 'red'},
    ]


def test_metric_on_a_test_split_only_writes_results(tmp_path: Path) -> None:
    metric = VQAAccuracyMetric(question_types=False, result_file=str(tmp_path / 'test.json'))
    metric.process(
        None,
        [dict(question_id=7, pred_answer='cat', answers=[]), dict(question_id=8, pred_answer='2')],
    )
    out = metric.evaluate(2)
    assert out == {'vqa/num_questions': 0.0}
    assert json.loads((tmp_path / 'test.json').read_text()) == [
        {'question_id': 7, 'answer': 'cat'},
        {'question_id': 8, 'answer': '2'},
    ]


def test_metric_needs_a_prediction() -> None:
    with pytest.raises(KeyError, match='pred_answer.*question_id 5'):
        VQAAccuracyMetric().process(None, [dict(question_id=5, answers=['a'] * 10)])
    with pytest.raises(ValueError, match='gt_processing'):
        VQAAccuracyMetric(gt_processing='loose')


# --- the result file ------------------------------------------------------------------------------
def test_write_vqa_results_format(tmp_path: Path) -> None:
    path = write_vqa_results({'458752000': 'net', 458752001: 'pitcher'}, str(tmp_path / 'r.json'))
    data = json.loads(Path(path).read_text())
    assert data == [
        {'question_id': 458752000, 'answer': 'net'},
        {'question_id': 458752001, 'answer': 'pitcher'},
    ]
    assert all(isinstance(d['question_id'], int) and isinstance(d['answer'], str) for d in data)
    path = write_vqa_results(
        [{'question_id': 3, 'pred_answer': 'yes'}, {'question_id': 4, 'answer': 'no'}],
        str(tmp_path / 'r2.json'),
    )
    assert json.loads(Path(path).read_text()) == [
        {'question_id': 3, 'answer': 'yes'},
        {'question_id': 4, 'answer': 'no'},
    ]


@pytest.mark.parametrize(
    'preds, message',
    [
        (
            [{'question_id': 1, 'answer': 'a'}, {'question_id': 1, 'answer': 'b'}],
            'entry 1: question 1 is answered twice',
        ),
        ([{'question_id': 'q1', 'answer': 'a'}], "entry 0: question_id 'q1' is not an integer"),
        ([{'answer': 'a'}], 'entry 0 lacks a question id'),
    ],
)
def test_write_vqa_results_rejects_bad_entries(tmp_path: Path, preds: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_vqa_results(preds, str(tmp_path / 'bad.json'))
