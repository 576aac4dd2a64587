"""VQA v2 questions (PAPER.md, "Downstream protocols"): official files and ALBEF's json.

Samples, bad-entry handling and image paths follow :mod:`vlreg.datasets.base`.
Converter (official files -> checked ALBEF json): :mod:`vlreg.datasets.prepare.vqa`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from vlreg.registry import DATASETS

from .base import EntryCollector, VLBaseDataset, join_image_path, join_root
from .fields import as_int, require_keys, text_field
from .reader import read_json
from .transforms.formatting import DEFAULT_META_KEYS

__all__ = ['VQADataset', 'VQA_IMAGE_NAMES', 'VQA_META_KEYS', 'answer_weights']

VQA_META_KEYS = DEFAULT_META_KEYS + (
    'question',
    'question_id',
    'answers',
    'weighted_answers',
    'answer_weights',
    'question_type',
    'answer_type',
    'multiple_choice_answer',
)


#: Image file names tried, in order, for official VQA files (``split``: the images' folder name).
VQA_IMAGE_NAMES = (
    'COCO_{split}_{image_id:012d}.jpg',
    '{split}/COCO_{split}_{image_id:012d}.jpg',
    '{image_id:012d}.jpg',
    '{image_id}.jpg',
)


def _image_split(data_subtype: str | None) -> str | None:
    """Image folder of a VQA subtype: test-dev questions use the test images."""
    if not data_subtype:
        return None
    return re.sub(r'^test-dev', 'test', data_subtype)


def answer_weights(answers: Sequence[str]) -> tuple[list[str], list[float]]:
    """ALBEF's answer targets: each distinct answer weighted by its count / number of answers."""
    counts = Counter(answers)
    unique = list(dict.fromkeys(answers))
    return unique, [counts[a] / len(answers) for a in unique]


@DATASETS.register_module()
class VQADataset(VLBaseDataset):
    """VQA v2 questions, one sample per question.

    Formats (detected from ``ques_file``'s content):

    * **official**: ``ques_file`` = ``{"data_subtype": "val2014", "questions": [{"question_id",
      "image_id", "question"}]}`` and ``ann_file`` = ``{"annotations": [{"question_id", "answers":
      [{"answer", ...}] x 10, "question_type", "answer_type", "multiple_choice_answer", ...}]}``
      (omit ``ann_file`` for the test splits). The image of a question is found under
      ``image_root`` by :data:`VQA_IMAGE_NAMES`: ``COCO_<split>_<12-digit id>.jpg`` with the split
      from ``data_subtype`` (``test-dev2015`` -> ``test2015``), ``<split>/COCO_...``, then
      ``<12-digit id>.jpg`` and ``<id>.jpg``; the first name that exists for the first question
      is used for all (the first one when none exists: loading then fails naming the file). Set
      ``image_name`` (a format string with ``{split}`` and ``{image_id}``) to skip the search.
    * **ALBEF**: ``ques_file`` = ``[{"question_id", "question", "image": "<path under
      image_root>", "answer": [str, ...]}]`` (no ``answer`` on test files; an empty list or an
      empty answer is a bad entry); ``ann_file`` unused.

    Each sample holds ``question`` and ``caption`` (the same raw text; ALBEF's question cleaning
    is a pipeline step), ``question_id``, ``answers`` (the annotators' raw answers, empty without
    annotations), ``weighted_answers`` / ``answer_weights`` (ALBEF's training targets: each distinct
    answer with weight count / number of answers), ``question_type``, ``answer_type`` and
    ``multiple_choice_answer`` (None when the file lacks them), ``img_path``, ``image_id``
    (contiguous), ``ori_image_id`` (the COCO id, or the image path in ALBEF files) and
    ``ann_index``. ``answer_list`` (ALBEF's ``answer_list.json``, a json list of candidate answers)
    is read with the data and exposed as ``dataset.metainfo['answer_list']``.

    Args:
        ques_file: questions (official) or ALBEF json, relative to ``data_root``.
        ann_file: official annotations (None for test splits or ALBEF files).
        image_root: the COCO image folder (relative to ``data_root``).
        answer_list: candidate answers file for ranking, or None.
        data_root: root of the relative paths.
        image_name: file name format of official files' images; None: searched, see above.
        pipeline: transforms, the last one ``PackInputs`` (with ``meta_keys=VQA_META_KEYS``).
        skip_bad_samples: drop bad entries (logged) instead of raising.
        **kwargs: forwarded to :class:`VLBaseDataset`.

    Example:
        >>> dict(type='VQADataset', data_root='data/vqav2',
        ...      ques_file='v2_OpenEnded_mscoco_val2014_questions.json',
        ...      ann_file='v2_mscoco_val2014_annotations.json', image_root='val2014',
        ...      pipeline=[dict(type='LoadImage'), dict(type='Resize', size=384), ...,
        ...                dict(type='PackInputs', meta_keys=VQA_META_KEYS)])
    """

    META_KEYS = VQA_META_KEYS

    def __init__(
        self,
        ques_file: str,
        ann_file: str | None = None,
        image_root: str = '',
        answer_list: str | None = None,
        data_root: str = '',
        image_name: str | None = None,
        pipeline: Sequence[dict | Callable] = (),
        skip_bad_samples: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vqa_ann_file = join_root(data_root, ann_file)
        self.answer_list_file = join_root(data_root, answer_list)
        self.image_name = image_name
        self.num_bad_entries = 0
        super().__init__(
            ann_file=ques_file,
            data_root=data_root,
            data_prefix=dict(img_path=image_root),
            pipeline=pipeline,
            skip_bad_samples=skip_bad_samples,
            **kwargs,
        )

    @property
    def ques_file(self) -> str:
        return self.ann_file

    def load_data_list(self) -> list[dict]:
        if self.answer_list_file:
            answers = read_json(self.answer_list_file)
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise ValueError(f'{self.answer_list_file!r}: expected a JSON list of answers')
            self._metainfo['answer_list'] = answers
        data = read_json(self.ques_file)
        collector = EntryCollector(self)
        self._ids: dict[Any, int] = {}
        if isinstance(data, dict) and 'questions' in data:
            data_list = self._load_official(data, collector)
        elif isinstance(data, list):
            data_list = collector.run(data, self._parse_albef)
        else:
            raise ValueError(
                f'{self.ques_file!r}: expected official VQA questions ({{"questions": '
                f'[...]}}) or an ALBEF list of questions, got '
                f'{type(data).__name__}'
            )
        return collector.finish(data_list, self.ques_file)

    def _sample(
        self,
        index: int,
        qid: int,
        question: str,
        img_path: str,
        ori_image_id: Any,
        answers: list[str],
        ann: dict | None = None,
    ) -> dict:
        ann = ann or {}
        unique, weights = answer_weights(answers) if answers else ([], [])
        return dict(
            img_path=img_path,
            question=question,
            caption=question,
            question_id=qid,
            answers=answers,
            weighted_answers=unique,
            answer_weights=weights,
            question_type=ann.get('question_type'),
            answer_type=ann.get('answer_type'),
            multiple_choice_answer=ann.get('multiple_choice_answer'),
            image_id=self._ids.setdefault(ori_image_id, len(self._ids)),
            ori_image_id=ori_image_id,
            ann_index=index,
        )

    # official files
    def _load_annotations(self, collector: EntryCollector) -> dict[int, dict] | None:
        if not self.vqa_ann_file:
            return None
        path = self.vqa_ann_file
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get('annotations'), list):
            raise ValueError(
                f'{path!r}: expected official VQA annotations ({{"annotations": [...]}}}})'
            )
        by_id: dict[int, dict] = {}

        def parse(index: int, ann: Any) -> list[dict]:
            where = f'{path!r}: entry {index}'
            require_keys(where, ann, ('question_id',))
            qid = as_int(where, ann['question_id'], 'question_id')
            where = f'{where} (question_id {qid})'
            require_keys(where, ann, ('answers',))
            answers = ann['answers']
            if not isinstance(answers, list) or not answers:
                raise ValueError(f'{where}: "answers" must be a non-empty list')
            texts = []
            for j, answer in enumerate(answers):
                if (
                    not isinstance(answer, dict)
                    or not isinstance(answer.get('answer'), str)
                    or not answer['answer'].strip()
                ):
                    raise ValueError(
                        f'{where}: answer {j} must be an object with a non-empty '
                        f'"answer" string, got {answer!r}'
                    )
                texts.append(answer['answer'])
            by_id[qid] = dict(ann, answer_texts=texts)
            return []

        collector.run(data['annotations'], parse, source=path)
        return by_id

    def _resolve_image_name(self, split: str | None, image_id: int) -> str:
        if self.image_name is not None:
            return self.image_name
        names = [n for n in VQA_IMAGE_NAMES if split or '{split}' not in n]
        root = self.data_prefix.get('img_path', '')
        for name in names:
            if os.path.isfile(os.path.join(root, name.format(split=split, image_id=image_id))):
                return name
        return names[0]

    def _load_official(self, data: dict, collector: EntryCollector) -> list[dict]:
        questions = data['questions']
        if not isinstance(questions, list):
            raise ValueError(f'{self.ques_file!r}: "questions" must be a list')
        annotations = self._load_annotations(collector)
        split = _image_split(data.get('data_subtype'))
        name: str | None = None
        root = self.data_prefix.get('img_path', '')

        def parse(index: int, entry: Any) -> list[dict]:
            nonlocal name
            where = f'{self.ques_file!r}: entry {index}'
            require_keys(where, entry, ('question_id', 'image_id', 'question'))
            qid = as_int(where, entry['question_id'], 'question_id')
            image_id = as_int(where, entry['image_id'], 'image_id')
            question = text_field(where, entry['question'], 'question')
            ann = None
            if annotations is not None:
                ann = annotations.get(qid)
                if ann is None:
                    raise ValueError(
                        f'{where}: question_id {qid} has no (usable) annotation in '
                        f'{self.vqa_ann_file!r}'
                    )
                if 'image_id' in ann and ann['image_id'] != image_id:
                    raise ValueError(
                        f'{where}: image_id {image_id} but its annotation says {ann["image_id"]}'
                    )
            if name is None:
                name = self._resolve_image_name(split, image_id)
            try:
                img_path = join_image_path(
                    root,
                    name.format(split=split, image_id=image_id),
                    where,
                    self.allow_paths_outside_root,
                )
            except (KeyError, ValueError, IndexError) as err:
                raise ValueError(f'{where}: image_name {name!r} does not format ({err})') from err
            answers = list(ann['answer_texts']) if ann is not None else []
            return [self._sample(index, qid, question, img_path, image_id, answers, ann)]

        return collector.run(questions, parse)

    # ALBEF files
    def _parse_albef(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ques_file!r}: entry {index}'
        require_keys(where, entry, ('question_id', 'question', 'image'))
        qid = as_int(where, entry['question_id'], 'question_id')
        question = text_field(where, entry['question'], 'question')
        image = text_field(where, entry['image'], 'image')
        answers = entry.get('answer', [])  # absent on test files
        answers = [answers] if isinstance(answers, str) else answers
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ValueError(
                f'{where}: "answer" must be a string or a list of strings, got '
                f'{entry.get("answer")!r}'
            )
        if 'answer' in entry and (not answers or not all(a.strip() for a in answers)):
            raise ValueError(
                f'{where}: "answer" is empty or holds an empty answer '
                f'({entry["answer"]!r}); leave the key out for unanswered questions'
            )
        img_path = self.image_path(image, where)
        return [self._sample(index, qid, question, img_path, image, answers, entry)]
