"""VQA v2 accuracy, computed locally the way the official evaluation defines it.

Definition (VQA v2 evaluation, "Open-Ended" task), implemented here from its description:

* **Prediction normalisation** (:func:`normalize_answer`, defined in
  :mod:`vlreg.structures.vqa_answers` and re-exported here: the answer-list heads index their
  candidates by the same form): new lines and tabs become spaces, the text is stripped, then
  (1) punctuation (:func:`normalize_punctuation`) and (2) digits, articles and contractions
  (:func:`normalize_words`), as that module describes.

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
from vlreg.structures.vqa_answers import (
    CONTRACTIONS,
    NUMBER_WORDS,
    normalize_answer,
    normalize_punctuation,
    normalize_words,
)

__all__ = [
    'CONTRACTIONS',
    'NUMBER_WORDS',
    'VQAAccuracyMetric',
    'normalize_answer',
    'normalize_punctuation',
    'normalize_words',
    'vqa_accuracy',
    'write_vqa_results',
]

GT_PROCESSING = ('official', 'full', 'none')


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
    items = (
        preds.items()
        if isinstance(preds, Mapping)
        else ((p.get('question_id'), p.get('answer', p.get('pred_answer'))) for p in preds)
    )
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, (qid, answer) in enumerate(items):
        if qid is None or answer is None:
            raise ValueError(
                f'write_vqa_results: entry {index} lacks a question id or an answer '
                f'(question_id={qid!r}, answer={answer!r})'
            )
        try:
            qid_int = int(qid)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f'write_vqa_results: entry {index}: question_id {qid!r} is not an integer'
            ) from err
        if qid_int in seen:
            raise ValueError(
                f'write_vqa_results: entry {index}: question {qid_int} is answered twice'
            )
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

    def __init__(
        self,
        gt_processing: str = 'official',
        question_types: bool = True,
        result_file: str | None = None,
        collect_device: str = 'cpu',
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if gt_processing not in GT_PROCESSING:
            raise ValueError(f'gt_processing must be one of {GT_PROCESSING}, got {gt_processing!r}')
        self.gt_processing = gt_processing
        self.question_types = question_types
        self.result_file = result_file

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Score each sample now and keep only its id, answer, score and types."""
        for sample in data_samples:
            pred = _field(sample, 'pred_answer')
            if not isinstance(pred, str):
                raise KeyError(
                    'VQAAccuracyMetric: each sample needs a "pred_answer" string, got '
                    f'{pred!r} (question_id {_field(sample, "question_id")!r})'
                )
            answers = _field(sample, 'answers') or []
            self.results.append(
                dict(
                    question_id=_field(sample, 'question_id'),
                    answer=pred,
                    acc=vqa_accuracy(pred, list(answers), self.gt_processing) if answers else None,
                    question_type=_field(sample, 'question_type'),
                    answer_type=_field(sample, 'answer_type'),
                    protocol=_field(sample, 'vqa_protocol'),
                )
            )

    def compute_metrics(self, results: list) -> dict[str, float | str]:
        if self.result_file is not None:
            write_vqa_results(results, self.result_file)
            print_log(
                f'VQAAccuracyMetric: wrote {len(results)} answers to {self.result_file!r}',
                logger='current',
            )
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
