"""VQA v2 accuracy, computed locally the way the official evaluation defines it.

Definition (VQA v2 evaluation, "Open-Ended" task), implemented here from its description:

* **Prediction normalisation** (:func:`normalize_answer`): new lines and tabs become spaces, the
  text is stripped, then

  1. *punctuation*: each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is deleted when it
     touches a space in the answer, or when the answer holds a comma between two digits
     (``"1,000"`` -> ``"1000"``); otherwise it becomes a space (``"yes/no"`` -> ``"yes no"``).
     A period is deleted unless a digit follows it (``"3.5"`` stays, ``"dog."`` -> ``"dog"``).
     The apostrophe, the colon and ``# $ % & * | ~`` are kept;
  2. *digits and articles*: lower-case, split on white space, number words ``none, zero, one ...
     ten`` -> ``0 ... 10``, the articles ``a, an, the`` are dropped, and contractions written
     without their apostrophe get it back (``"dont"`` -> ``"don't"``, :data:`CONTRACTIONS`);
     words are joined with single spaces.

* **Ground-truth answers** are compared as the official script compares them: only the
  punctuation step is applied to them, and only when the ten answers are not all identical (the
  released annotations are already lower-case, with digits and without articles).
  ``gt_processing='full'`` applies the whole normalisation to them instead, which differs from the
  server only on answers the VQA team did not normalise.

* **Accuracy of one prediction**: for each of the ten annotators, drop that annotator and score
  ``min(#matches among the other nine / 3, 1)``; average the ten scores. With ``m`` matching
  annotators this is 0, 0.3, 0.6, 0.9 for m = 0, 1, 2, 3 and 1 for m >= 4.

Overall accuracy is the mean over questions, reported in percent, with per-answer-type
(``yes/no``, ``number``, ``other``) and per-question-type breakdowns (the official script also
rounds to two decimals; we report the unrounded value).
"""
from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from vlreg.registry import METRICS

__all__ = ['CONTRACTIONS', 'NUMBER_WORDS', 'VQAAccuracyMetric', 'normalize_answer',
           'normalize_punctuation', 'normalize_words', 'vqa_accuracy', 'write_vqa_results']

_PUNCTUATION = (';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<',
                '@', '`', ',', '?', '!')
_COMMA_IN_NUMBER = re.compile(r'\d,\d')
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r'\.(?!\d)')
_ARTICLES = frozenset(('a', 'an', 'the'))

NUMBER_WORDS: dict[str, str] = {
    'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4', 'five': '5',
    'six': '6', 'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10',
}

# The evaluation's contraction table: a word typed without its apostrophe(s) -> the contraction.
# Its four capitalised keys ("Im", "Ive", "Id've", "I'dve") can never match (words are lower-cased
# first), so they are left out, which changes nothing. Some entries are odd but official
# ("somebody'd" -> "somebodyd", "twas" -> "'twas"); they are kept so that scores match the server.
CONTRACTIONS: dict[str, str] = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't", 'couldve': "could've",
    'couldnt': "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    'didnt': "didn't", 'doesnt': "doesn't", 'dont': "don't", 'hadnt': "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", 'hasnt': "hasn't", 'havent': "haven't",
    'hed': "he'd", "hed've": "he'd've", "he'dve": "he'd've", 'hes': "he's", 'howd': "how'd",
    'howll': "how'll", 'hows': "how's", 'isnt': "isn't", 'itd': "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", 'itll': "it'll", "let's": "let's", 'maam': "ma'am",
    'mightnt': "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    'mightve': "might've", 'mustnt': "mustn't", 'mustve': "must've", 'neednt': "needn't",
    'notve': "not've", 'oclock': "o'clock", 'oughtnt': "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", 'shant': "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", 'shouldve': "should've", 'shouldnt': "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": 'somebodyd',
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    'somebodyll': "somebody'll", 'somebodys': "somebody's", 'someoned': "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", 'someonell': "someone'll",
    'someones': "someone's", 'somethingd': "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", 'somethingll': "something'll", 'thats': "that's",
    'thered': "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    'therere': "there're", 'theres': "there's", 'theyd': "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", 'theyll': "they'll", 'theyre': "they're", 'theyve': "they've",
    'twas': "'twas", 'wasnt': "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    'weve': "we've", 'werent': "weren't", 'whatll': "what'll", 'whatre': "what're",
    'whats': "what's", 'whatve': "what've", 'whens': "when's", 'whered': "where'd",
    'wheres': "where's", 'whereve': "where've", 'whod': "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", 'wholl': "who'll", 'whos': "who's", 'whove': "who've",
    'whyll': "why'll", 'whyre': "why're", 'whys': "why's", 'wont': "won't",
    'wouldve': "would've", 'wouldnt': "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", 'yall': "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    'youd': "you'd", "youd've": "you'd've", "you'dve": "you'd've", 'youll': "you'll",
    'youre': "you're", 'youve': "you've",
}

GT_PROCESSING = ('official', 'full', 'none')


def normalize_punctuation(text: str) -> str:
    """Step 1 of the normalisation: punctuation (see the module docstring)."""
    # the decision for each mark looks at the input text, not at the partly cleaned one
    delete_all = _COMMA_IN_NUMBER.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        if delete_all or f'{mark} ' in text or f' {mark}' in text:
            out = out.replace(mark, '')
        else:
            out = out.replace(mark, ' ')
    return _PERIOD_NOT_BEFORE_DIGIT.sub('', out)


def normalize_words(text: str) -> str:
    """Step 2 of the normalisation: lower-case, number words, articles, contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return ' '.join(CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_answer(text: str) -> str:
    """The full normalisation the evaluation applies to a predicted answer.

    Example:
        >>> normalize_answer('Two dogs.'), normalize_answer('1,000'), normalize_answer('3.5')
        ('2 dogs', '1000', '3.5')
    """
    text = text.replace('\n', ' ').replace('\t', ' ').strip()
    return normalize_words(normalize_punctuation(text))


def _clean_gt(answers: Sequence[str], gt_processing: str) -> list[str]:
    answers = [a.replace('\n', ' ').replace('\t', ' ').strip() for a in answers]
    if gt_processing == 'full':
        return [normalize_words(normalize_punctuation(a)) for a in answers]
    if gt_processing == 'official' and len(set(answers)) > 1:
        return [normalize_punctuation(a) for a in answers]
    return answers


def vqa_accuracy(pred: str, gt_answers: Sequence[str], gt_processing: str = 'official') -> float:
    """VQA accuracy of one predicted answer, in ``[0, 1]``.

    Args:
        pred: the predicted answer (raw; it is normalised here).
        gt_answers: the annotators' raw answers (ten in VQA v2; any number >= 1 works: each
            leave-one-out subset then has ``n - 1`` answers).
        gt_processing: ``'official'`` (punctuation step only, only when the answers disagree),
            ``'full'`` (the whole normalisation) or ``'none'``.

    Example:
        >>> vqa_accuracy('Two', ['2'] * 3 + ['3'] * 7)  # 3 of 10 agree
        0.9
    """
    if gt_processing not in GT_PROCESSING:
        raise ValueError(f'gt_processing must be one of {GT_PROCESSING}, got {gt_processing!r}')
    if not gt_answers:
        raise ValueError('vqa_accuracy needs at least one ground-truth answer')
    answer = normalize_answer(pred)
    gts = _clean_gt(gt_answers, gt_processing)
    matches = sum(gt == answer for gt in gts)
    # leaving out a matching annotator leaves matches - 1 among the others, any other leaves all
    scores = [min((matches - (gt == answer)) / 3.0, 1.0) for gt in gts]
    return sum(scores) / len(scores)


def _type_key(name: Any) -> str:
    """A metric-key-safe form of a question / answer type: ``'yes/no'`` -> ``'yes_no'``."""
    return re.sub(r'[^0-9A-Za-z]+', '_', str(name)).strip('_') or 'unknown'


def write_vqa_results(preds: Mapping[Any, str] | Iterable[Mapping[str, Any]], path: str) -> str:
    """Write answers in the evaluation server's format ``[{"question_id": int, "answer": str}]``.

    Args:
        preds: ``{question_id: answer}``, or dicts with ``question_id`` and ``answer`` (or
            ``pred_answer``, as data samples carry it).
        path: the json file to write (parent folders are created).

    Returns:
        ``path``.

    Raises:
        ValueError: an entry without a question id or an answer, a question id that is not an
            integer, or a question answered twice (each message names the entry).

    Example:
        >>> write_vqa_results([{'question_id': 458752000, 'pred_answer': 'net'}], 'vqa_test.json')
        'vqa_test.json'
    """
    items = preds.items() if isinstance(preds, Mapping) else (
        (p.get('question_id'), p.get('answer', p.get('pred_answer'))) for p in preds)
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, (qid, answer) in enumerate(items):
        if qid is None or answer is None:
            raise ValueError(f'write_vqa_results: entry {index} lacks a question id or an answer '
                             f'(question_id={qid!r}, answer={answer!r})')
        try:
            qid_int = int(qid)
        except (TypeError, ValueError) as err:
            raise ValueError(f'write_vqa_results: entry {index}: question_id {qid!r} is not an '
                             'integer') from err
        if qid_int in seen:
            raise ValueError(f'write_vqa_results: entry {index}: question {qid_int} is answered '
                             'twice')
        seen.add(qid_int)
        out.append({'question_id': qid_int, 'answer': str(answer)})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(out, f)
    return path


def _field(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for a dict, ``sample.key`` for a data sample (metainfo or data field)."""
    if isinstance(sample, Mapping):
        return sample.get(key, default)
    return sample.get(key, default) if hasattr(sample, 'get') else getattr(sample, key, default)


@METRICS.register_module()
class VQAAccuracyMetric(BaseMetric):
    """VQA v2 accuracy (see :mod:`vlreg.evaluation.vqa`) with answer-type / question-type splits.

    ``process`` receives data samples (or their dicts, as MMEngine's evaluator hands them) with

    * ``pred_answer`` (str): the model's answer;
    * ``answers`` (list[str]): the annotators' raw answers, from the dataset's metainfo
      (:class:`~vlreg.datasets.downstream.VQADataset`); absent or empty on test splits;
    * optional ``question_id``, ``question_type``, ``answer_type``.

    ``compute_metrics`` returns ``acc`` (percent, over the questions with answers),
    ``answer_type/<type>`` and (with ``question_types``) ``question_type/<type>`` (percent; type
    names made key-safe, ``yes/no`` -> ``yes_no``), ``num_questions`` and, when the samples carry
    ``vqa_protocol`` (a string naming how the model chose its answers, set by
    :class:`~vlreg.models.tasks.ALBEFVQA`), ``protocol``: those strings and ``gt_processing``
    (MMEngine logs a string metric as runtime info). With ``result_file``,
    every prediction (test splits included) is also written in the server's format by
    :func:`write_vqa_results`; samples need ``question_id`` for that. Keys get the prefix ``vqa/``.

    Args:
        gt_processing: how ground-truth answers are normalised, see :func:`vqa_accuracy`.
        question_types: also report the per-question-type accuracies (65 keys on VQA v2).
        result_file: where to write the predictions (None: not written).
        collect_device: ``'cpu'`` or ``'gpu'``, see :class:`mmengine.evaluator.BaseMetric`.
        prefix: key prefix, default ``'vqa'``.

    Example:
        >>> val_evaluator = dict(type='VQAAccuracyMetric', result_file='work_dirs/vqa_val.json')
    """

    default_prefix = 'vqa'

    def __init__(self, gt_processing: str = 'official', question_types: bool = True,
                 result_file: str | None = None, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if gt_processing not in GT_PROCESSING:
            raise ValueError(f'gt_processing must be one of {GT_PROCESSING}, got '
                             f'{gt_processing!r}')
        self.gt_processing = gt_processing
        self.question_types = question_types
        self.result_file = result_file

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Score each sample now and keep only its id, answer, score and types."""
        for sample in data_samples:
            pred = _field(sample, 'pred_answer')
            if not isinstance(pred, str):
                raise KeyError('VQAAccuracyMetric: each sample needs a "pred_answer" string, got '
                               f'{pred!r} (question_id {_field(sample, "question_id")!r})')
            answers = _field(sample, 'answers') or []
            self.results.append(dict(
                question_id=_field(sample, 'question_id'), answer=pred,
                acc=vqa_accuracy(pred, list(answers), self.gt_processing) if answers else None,
                question_type=_field(sample, 'question_type'),
                answer_type=_field(sample, 'answer_type'),
                protocol=_field(sample, 'vqa_protocol')))

    def compute_metrics(self, results: list) -> dict[str, float | str]:
        if self.result_file is not None:
            write_vqa_results(results, self.result_file)
            print_log(f'VQAAccuracyMetric: wrote {len(results)} answers to {self.result_file!r}',
                      logger='current')
        scored = [r for r in results if r['acc'] is not None]
        metrics: dict[str, float | str] = {'num_questions': float(len(scored))}
        protocols = sorted({str(r['protocol']) for r in results if r.get('protocol')})
        if protocols:  # how the model chose its answers (ALBEFVQA sets it), and the scoring
            metrics['protocol'] = f'{"; ".join(protocols)}; gt_processing={self.gt_processing}'
        if not scored:
            return metrics
        metrics['acc'] = 100.0 * sum(r['acc'] for r in scored) / len(scored)
        groups: dict[str, list[float]] = defaultdict(list)
        for r in scored:
            if r['answer_type'] is not None:
                groups[f'answer_type/{_type_key(r["answer_type"])}'].append(r['acc'])
            if self.question_types and r['question_type'] is not None:
                groups[f'question_type/{_type_key(r["question_type"])}'].append(r['acc'])
        for key in sorted(groups):
            metrics[key] = 100.0 * sum(groups[key]) / len(groups[key])
        return metrics
