"""Downstream-task datasets (PAPER.md, "Downstream protocols"): VQA v2, NLVR2, SNLI-VE, grounding.

Each reads the task's official annotation format and ALBEF's re-distributed json, detected from
the file's content. Every sample carries the text the model reads under ``caption`` (the question,
statement, hypothesis or expression), so that ``CleanCaption`` / ``Tokenize`` / ``AnnotateWords``
work unchanged (``Tokenize`` turns ``caption`` into ``input_ids``), and the task's labels and ids as
metainfo. ``PackInputs`` copies only its ``meta_keys`` into the data sample: each dataset has a
``META_KEYS`` tuple to pass it (e.g. ``dict(type='PackInputs', meta_keys=VQA_META_KEYS)``).

Like :class:`~vlreg.datasets.CaptionDataset`, a malformed file or entry raises an error naming the
file and the entry; with ``skip_bad_samples`` bad entries are dropped (counted in
``num_bad_entries`` and logged) and unreadable images are skipped at run time. Images are not
opened at load time; paths are relative to ``image_root``, itself relative to ``data_root``.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mmengine.logging import print_log

from vlreg.registry import DATASETS

from .caption_dataset import VLBaseDataset, parse_annotation_text, read_annotation_file
from .transforms import pair as _pair  # noqa: F401 - registers LoadImagePair, ApplyToImagePair
from .transforms.formatting import DEFAULT_META_KEYS

__all__ = ['GROUNDING_META_KEYS', 'GroundingDataset', 'NLVR2Dataset', 'NLVR2_META_KEYS',
           'SNLIVEDataset', 'SNLIVE_META_KEYS', 'VQADataset', 'VQA_IMAGE_NAMES', 'VQA_META_KEYS',
           'answer_weights', 'read_records']

VQA_META_KEYS = DEFAULT_META_KEYS + ('question', 'question_id', 'answers', 'weighted_answers',
                                     'answer_weights', 'question_type', 'answer_type',
                                     'multiple_choice_answer')
NLVR2_META_KEYS = DEFAULT_META_KEYS + ('img_path2', 'ori_shape2', 'img_shape2', 'label',
                                       'identifier')
SNLIVE_META_KEYS = DEFAULT_META_KEYS + ('label', 'gold_label', 'premise', 'pair_id')
GROUNDING_META_KEYS = DEFAULT_META_KEYS + ('ori_gt_bboxes', 'proposals', 'categories', 'ref_id',
                                           'split', 'width', 'height')


# --- reading --------------------------------------------------------------------------------------
def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'annotation file {path!r} not found')
    with open(path, encoding='utf-8') as f:
        return f.read()


def _read_json(path: str) -> Any:
    """One JSON document; errors name the file, the line and the column."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f'{path!r}: malformed JSON at line {err.lineno}, column {err.colno}: '
                         f'{err.msg}') from err


def read_records(path: str, skip_bad_lines: bool = False) -> tuple[list[Any], list[str]]:
    """Entries of a JSON list or of a JSON-lines file, whatever the extension.

    The official NLVR2 files are JSON lines named ``.json``; a file whose first non-blank character
    is not ``[`` is read as JSON lines.

    Returns:
        The entries, and (with ``skip_bad_lines``) one message per malformed line dropped.
    """
    text = _read_text(path)
    json_lines = path.endswith('.jsonl') or not text.lstrip().startswith('[')
    return parse_annotation_text(path, text, skip_bad_lines, json_lines)


def _require(where: str, entry: Any, keys: Sequence[str]) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f'{where}: expected an object, got {type(entry).__name__}')
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f'{where}: missing key {missing[0]!r} (keys: {sorted(entry)})')
    return entry


def _text(where: str, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{where}: {key!r} must be a non-empty string, got {value!r}')
    return value


def _int(where: str, value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f'{where}: {key!r} must be an integer, got {value!r}')
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{where}: {key!r} must be an integer, got {value!r}') from err


def _xywh_to_xyxy(where: str, box: Any) -> list[float]:
    try:
        x, y, w, h = (float(v) for v in box[:4])
    except (TypeError, ValueError) as err:
        raise ValueError(f'{where}: a box must be [x, y, w, h] numbers, got {box!r}') from err
    if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
        raise ValueError(f'{where}: box {box!r} has no area or is not finite')
    return [x, y, x + w, y + h]


def _box_array(boxes: list[list[float]]) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


class _Collector:
    """Parses entries one by one; drops bad ones with ``skip_bad_samples``, else raises."""

    def __init__(self, dataset: VLBaseDataset, problems: list[str] | None = None) -> None:
        self.dataset = dataset
        self.problems = list(problems or [])

    def run(self, entries: Sequence[Any], parse: Callable[[int, Any], list[dict]]) -> list[dict]:
        out: list[dict] = []
        for index, entry in enumerate(entries):
            try:
                out.extend(parse(index, entry))
            except ValueError as err:
                if not self.dataset.skip_bad_samples:
                    raise
                self.problems.append(str(err))
        return out

    def finish(self, data_list: list[dict], source: str) -> list[dict]:
        ds = self.dataset
        ds.num_bad_entries = len(self.problems)
        ds.bad_entries = list(self.problems)  # the reasons, for tools/prepare_data.py's report
        if self.problems:
            shown = '\n  '.join(self.problems[:5])
            more = f'\n  ... and {len(self.problems) - 5} more' if len(self.problems) > 5 else ''
            print_log(f'{type(ds).__name__}: dropped {len(self.problems)} bad annotation entries '
                      f'of {source!r}:\n  {shown}{more}', logger='current', level=logging.WARNING)
        if not data_list:
            raise ValueError(f'{source!r}: no usable annotation entry')
        return data_list


def _join(root: str, path: str | None) -> str | None:
    if not path or os.path.isabs(path) or not root:
        return path
    return os.path.join(root, path)


# --- VQA v2 ---------------------------------------------------------------------------------------
#: Image file names tried, in order, for official VQA files (``split``: the images' folder name).
VQA_IMAGE_NAMES = ('COCO_{split}_{image_id:012d}.jpg', '{split}/COCO_{split}_{image_id:012d}.jpg',
                   '{image_id:012d}.jpg', '{image_id}.jpg')


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
      image_root>", "answer": [str, ...]}]`` (no ``answer`` on test files); ``ann_file`` unused.

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

    def __init__(self, ques_file: str, ann_file: str | None = None, image_root: str = '',
                 answer_list: str | None = None, data_root: str = '',
                 image_name: str | None = None, pipeline: Sequence[dict | Callable] = (),
                 skip_bad_samples: bool = False, **kwargs: Any) -> None:
        self.vqa_ann_file = _join(data_root, ann_file)
        self.answer_list_file = _join(data_root, answer_list)
        self.image_name = image_name
        self.num_bad_entries = 0
        super().__init__(ann_file=ques_file, data_root=data_root,
                         data_prefix=dict(img_path=image_root), pipeline=pipeline,
                         skip_bad_samples=skip_bad_samples, **kwargs)

    @property
    def ques_file(self) -> str:
        return self.ann_file

    def load_data_list(self) -> list[dict]:
        if self.answer_list_file:
            answers = _read_json(self.answer_list_file)
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise ValueError(f'{self.answer_list_file!r}: expected a JSON list of answers')
            self._metainfo['answer_list'] = answers
        data = _read_json(self.ques_file)
        collector = _Collector(self)
        self._ids: dict[Any, int] = {}
        if isinstance(data, dict) and 'questions' in data:
            data_list = self._load_official(data, collector)
        elif isinstance(data, list):
            data_list = collector.run(data, self._parse_albef)
        else:
            raise ValueError(f'{self.ques_file!r}: expected official VQA questions ({{"questions": '
                             f'[...]}}) or an ALBEF list of questions, got '
                             f'{type(data).__name__}')
        return collector.finish(data_list, self.ques_file)

    def _sample(self, index: int, qid: int, question: str, img_path: str, ori_image_id: Any,
                answers: list[str], ann: dict | None = None) -> dict:
        ann = ann or {}
        unique, weights = answer_weights(answers) if answers else ([], [])
        return dict(img_path=img_path, question=question, caption=question, question_id=qid,
                    answers=answers, weighted_answers=unique, answer_weights=weights,
                    question_type=ann.get('question_type'), answer_type=ann.get('answer_type'),
                    multiple_choice_answer=ann.get('multiple_choice_answer'),
                    image_id=self._ids.setdefault(ori_image_id, len(self._ids)),
                    ori_image_id=ori_image_id, ann_index=index)

    # official files
    def _load_annotations(self, collector: _Collector) -> dict[int, dict] | None:
        if not self.vqa_ann_file:
            return None
        path = self.vqa_ann_file
        data = _read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get('annotations'), list):
            raise ValueError(f'{path!r}: expected official VQA annotations ({{"annotations": '
                             '[...]}})')
        by_id: dict[int, dict] = {}

        def parse(index: int, ann: Any) -> list[dict]:
            where = f'{path!r}: entry {index}'
            _require(where, ann, ('question_id',))
            qid = _int(where, ann['question_id'], 'question_id')
            where = f'{where} (question_id {qid})'
            _require(where, ann, ('answers',))
            answers = ann['answers']
            if not isinstance(answers, list) or not answers:
                raise ValueError(f'{where}: "answers" must be a non-empty list')
            texts = []
            for j, answer in enumerate(answers):
                if not isinstance(answer, dict) or not isinstance(answer.get('answer'), str):
                    raise ValueError(f'{where}: answer {j} must be an object with an "answer" '
                                     f'string, got {answer!r}')
                texts.append(answer['answer'])
            by_id[qid] = dict(ann, answer_texts=texts)
            return []

        collector.run(data['annotations'], parse)
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

    def _load_official(self, data: dict, collector: _Collector) -> list[dict]:
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
            _require(where, entry, ('question_id', 'image_id', 'question'))
            qid = _int(where, entry['question_id'], 'question_id')
            image_id = _int(where, entry['image_id'], 'image_id')
            question = _text(where, entry['question'], 'question')
            ann = None
            if annotations is not None:
                ann = annotations.get(qid)
                if ann is None:
                    raise ValueError(f'{where}: question_id {qid} has no (usable) annotation in '
                                     f'{self.vqa_ann_file!r}')
                if 'image_id' in ann and ann['image_id'] != image_id:
                    raise ValueError(f'{where}: image_id {image_id} but its annotation says '
                                     f'{ann["image_id"]}')
            if name is None:
                name = self._resolve_image_name(split, image_id)
            try:
                img_path = os.path.join(root, name.format(split=split, image_id=image_id))
            except (KeyError, ValueError, IndexError) as err:
                raise ValueError(f'{where}: image_name {name!r} does not format ({err})') from err
            answers = list(ann['answer_texts']) if ann is not None else []
            return [self._sample(index, qid, question, img_path, image_id, answers, ann)]

        return collector.run(questions, parse)

    # ALBEF files
    def _parse_albef(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ques_file!r}: entry {index}'
        _require(where, entry, ('question_id', 'question', 'image'))
        qid = _int(where, entry['question_id'], 'question_id')
        question = _text(where, entry['question'], 'question')
        image = _text(where, entry['image'], 'image')
        answers = entry.get('answer', [])
        answers = [answers] if isinstance(answers, str) else answers
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ValueError(f'{where}: "answer" must be a string or a list of strings, got '
                             f'{entry.get("answer")!r}')
        img_path = os.path.join(self.data_prefix.get('img_path', ''), image)
        return [self._sample(index, qid, question, img_path, image, answers, entry)]


class _RecordDataset(VLBaseDataset):
    """A dataset of one sample per record of a JSON list / JSON-lines file, parsed by ``_parse``
    (index, entry) -> sample dicts; images under ``image_root``. Bad records raise, or are dropped
    and counted with ``skip_bad_samples``."""

    def __init__(self, ann_file: str, image_root: str = '', data_root: str = '',
                 pipeline: Sequence[dict | Callable] = (), skip_bad_samples: bool = False,
                 **kwargs: Any) -> None:
        self.num_bad_entries = 0
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=dict(img_path=image_root), pipeline=pipeline,
                         skip_bad_samples=skip_bad_samples, **kwargs)

    def load_data_list(self) -> list[dict]:
        entries, problems = read_records(self.ann_file, self.skip_bad_samples)
        collector = _Collector(self, problems)
        self._ids: dict[Any, int] = {}
        return collector.finish(collector.run(entries, self._parse), self.ann_file)

    def _parse(self, index: int, entry: Any) -> list[dict]:
        raise NotImplementedError


# --- NLVR2 ----------------------------------------------------------------------------------------
_NLVR2_IDENTIFIER = re.compile(r'^(?P<pair>.+-\d+-\d+)-\d+$')


def _binary_label(where: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return int(value.strip().lower() == 'true')
    if isinstance(value, (bool, int)) and int(value) in (0, 1):
        return int(value)
    raise ValueError(f'{where}: "label" must be "True" or "False", got {value!r}')


@DATASETS.register_module()
class NLVR2Dataset(_RecordDataset):
    """NLVR2 statements about an image pair, one sample per statement; label 1 = True.

    Formats (detected per entry):

    * **official** json lines (``train.json``, ``dev.json``, ``test1.json``): ``{"identifier":
      "dev-850-0-0", "sentence", "label": "True" | "False", "directory"?: ...}``. The images are
      the identifier without its last field plus ``-img0.png`` / ``-img1.png``
      (``dev-850-0-img0.png``), under ``image_root`` (in ``<directory>/`` when the entry has one
      and ``use_directory``, as the official train images are). ``left_url`` / ``right_url`` are
      the web origins of the images and are not used.
    * **ALBEF** json list: ``{"images": [left, right], "sentence", "label"}``, paths under
      ``image_root``.

    Each sample holds ``img_path`` (left) and ``img_path2`` (right), ``caption`` (the statement),
    ``label`` (int: 1 True, 0 False; ``metainfo['classes']`` names them), ``identifier`` (official
    files), ``image_id`` (contiguous id of the pair), ``ori_image_id`` (pair name) and
    ``ann_index``. Load both images with ``LoadImagePair`` and augment both with
    ``ApplyToImagePair`` (:mod:`vlreg.datasets.transforms.pair`).

    Args:
        ann_file: official json lines or ALBEF json, relative to ``data_root``.
        image_root: image folder (relative to ``data_root``).
        data_root: root of the relative paths.
        use_directory: put official entries' images under their ``directory`` sub-folder.
        pipeline: transforms, the last one ``PackInputs`` (with ``meta_keys=NLVR2_META_KEYS``).
        skip_bad_samples: drop bad entries (logged) instead of raising.
        **kwargs: forwarded to :class:`VLBaseDataset`.

    Example:
        >>> dict(type='NLVR2Dataset', data_root='data/nlvr2', ann_file='dev.json',
        ...      image_root='dev', pipeline=[dict(type='LoadImagePair'),
        ...      dict(type='ApplyToImagePair', transforms=[dict(type='Resize', size=384)]), ...,
        ...      dict(type='PackInputs', meta_keys=NLVR2_META_KEYS)])
    """

    METAINFO = dict(classes=('False', 'True'))
    META_KEYS = NLVR2_META_KEYS

    def __init__(self, ann_file: str, image_root: str = '', data_root: str = '',
                 use_directory: bool = True, pipeline: Sequence[dict | Callable] = (),
                 skip_bad_samples: bool = False, **kwargs: Any) -> None:
        self.use_directory = use_directory
        super().__init__(ann_file=ann_file, image_root=image_root, data_root=data_root,
                         pipeline=pipeline, skip_bad_samples=skip_bad_samples, **kwargs)

    def _parse(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        root = self.data_prefix.get('img_path', '')
        if isinstance(entry, dict) and 'images' in entry:
            _require(where, entry, ('sentence', 'label'))
            images = entry['images']
            if not (isinstance(images, list) and len(images) == 2
                    and all(isinstance(p, str) and p for p in images)):
                raise ValueError(f'{where}: "images" must list two paths, got {images!r}')
            left, right = (os.path.join(root, p) for p in images)
            pair, identifier = tuple(images), entry.get('identifier')
        else:
            _require(where, entry, ('identifier', 'sentence', 'label'))
            identifier = _text(where, entry['identifier'], 'identifier')
            match = _NLVR2_IDENTIFIER.match(identifier)
            if match is None:
                raise ValueError(f'{where}: identifier {identifier!r} is not '
                                 '"<split>-<set>-<pair>-<sentence>"')
            pair = match.group('pair')
            folder = root
            if self.use_directory and entry.get('directory') is not None:
                folder = os.path.join(root, str(entry['directory']))
            left, right = (os.path.join(folder, f'{pair}-img{i}.png') for i in (0, 1))
        sentence = _text(where, entry['sentence'], 'sentence')
        label = _binary_label(where, entry['label'])
        return [dict(img_path=left, img_path2=right, caption=sentence, label=label,
                     identifier=identifier, image_id=self._ids.setdefault(pair, len(self._ids)),
                     ori_image_id=pair if isinstance(pair, str) else '|'.join(pair),
                     ann_index=index)]


# --- SNLI-VE --------------------------------------------------------------------------------------
@DATASETS.register_module()
class SNLIVEDataset(_RecordDataset):
    """SNLI-VE (visual entailment): does the image entail a hypothesis? One sample per pair.

    Labels follow ALBEF (whose classifier checkpoints use them): 0 ``contradiction``, 1
    ``neutral``, 2 ``entailment`` (``metainfo['classes']``).

    Formats (detected per entry):

    * **official** jsonl (``snli_ve_{train,dev,test}.jsonl``): ``{"Flickr30K_ID", "sentence2"
      (hypothesis), "gold_label", "sentence1"? (premise caption), "pairID"?}``; the image is
      ``<Flickr30K_ID>.jpg``. A ``gold_label`` of ``"-"`` (no annotator majority) is a bad entry:
      an error, or dropped with ``skip_bad_samples``.
    * **ALBEF** json: ``{"image": "<Flickr30K id>" (``.jpg`` added when there is no extension),
      "sentence", "label": "entailment" | ...}``.

    Each sample holds ``img_path``, ``caption`` (the hypothesis), ``label`` (int),
    ``gold_label`` (its name), ``premise`` and ``pair_id`` (None when absent), ``image_id``
    (contiguous), ``ori_image_id`` (Flickr30K id) and ``ann_index``.

    Args:
        ann_file: official jsonl or ALBEF json, relative to ``data_root``.
        image_root: the Flickr30K image folder (relative to ``data_root``).
        data_root: root of the relative paths.
        pipeline: transforms, the last one ``PackInputs`` (with ``meta_keys=SNLIVE_META_KEYS``).
        skip_bad_samples: drop bad entries (logged) instead of raising.
        **kwargs: forwarded to :class:`VLBaseDataset`.

    Example:
        >>> dict(type='SNLIVEDataset', data_root='data/snli_ve', ann_file='snli_ve_dev.jsonl',
        ...      image_root='flickr30k-images', pipeline=[dict(type='LoadImage'), ...,
        ...      dict(type='PackInputs', meta_keys=SNLIVE_META_KEYS)])
    """

    METAINFO = dict(classes=('contradiction', 'neutral', 'entailment'))
    META_KEYS = SNLIVE_META_KEYS

    def _label(self, where: str, value: Any) -> tuple[int, str]:
        classes = self.METAINFO['classes']
        if isinstance(value, str) and value.strip().lower() in classes:
            name = value.strip().lower()
            return classes.index(name), name
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
            return value, classes[value]
        if value == '-':
            raise ValueError(f'{where}: gold_label "-" (no annotator majority)')
        raise ValueError(f'{where}: label must be one of {classes}, got {value!r}')

    def _parse(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        if isinstance(entry, dict) and 'Flickr30K_ID' in entry:
            _require(where, entry, ('sentence2', 'gold_label'))
            flickr_id = str(entry['Flickr30K_ID']).strip()
            image, hypothesis = f'{flickr_id}.jpg', entry['sentence2']
            label, name = self._label(where, entry['gold_label'])
        else:
            _require(where, entry, ('image', 'sentence', 'label'))
            image, hypothesis = _text(where, entry['image'], 'image'), entry['sentence']
            flickr_id = os.path.splitext(os.path.basename(image))[0]
            image = image if os.path.splitext(image)[1] else f'{image}.jpg'
            label, name = self._label(where, entry['label'])
        if not flickr_id:
            raise ValueError(f'{where}: empty image id')
        return [dict(img_path=os.path.join(self.data_prefix.get('img_path', ''), image),
                     caption=_text(where, hypothesis, 'hypothesis'), label=label,
                     gold_label=name, premise=entry.get('sentence1'), pair_id=entry.get('pairID'),
                     image_id=self._ids.setdefault(flickr_id, len(self._ids)),
                     ori_image_id=flickr_id, ann_index=index)]


# --- grounding ------------------------------------------------------------------------------------
def _coco_image_id(image: str) -> int | None:
    """``.../COCO_train2014_000000581857.jpg`` -> 581857 (None when the name holds no number)."""
    match = re.search(r'(\d+)$', os.path.splitext(os.path.basename(image))[0])
    return int(match.group(1)) if match else None


@DATASETS.register_module()
class GroundingDataset(VLBaseDataset):
    """Referring expressions / captions with boxes, for weakly supervised grounding.

    Formats (detected from the first entry):

    * **COCO-style** (``coco_mini_train2017/grounding.json`` of the shared data): a json list of
      ``{"image", "image_id", "width", "height", "caption": [str, ...], "boxes": [{"bbox":
      [x, y, w, h], "category", ...}]}``. ``expressions='captions'``: one sample per caption, with
      every box of the image as ground truth (for pointing / visualisation: every proposal is then
      a ground-truth box). ``expressions='categories'``: one sample per (image, category), the
      expression being the category name and the ground truth that category's boxes, so grounding
      accuracy measures whether the map picks the right objects among all the image's boxes (the
      proposals).
    * **RefCOCO+ as ALBEF distributes it** (``refcoco+_{train,val,test}.json``): ``[{"image":
      "train2014/COCO_train2014_<id>.jpg", "text", "ref_id"?, "image_id"?, "bbox"? [x, y, w, h],
      "split"?, "category"?, "width"?, "height"?}]`` (``tools/prepare_data.py refcoco`` writes
      them from the refer toolkit's files; training entries need only ``image`` and ``text``:
      the sample's ``image_id`` then groups the expressions of one image for ITC / ITM), with

      - ``proposal_file``: detector proposals ``{"<id>": [[x, y, w, h, ...], ...]}`` keyed by
        ``image_id`` (ALBEF's ``dets.json``; the id is parsed from the image name when the entry
        has none) or by ``ref_id`` (``proposal_key='ref_id'``);
      - the ground-truth box: the entry's ``bbox``, else the refer toolkit's ``refs_file``
        (``refs(unc).p``, a pickle, or the same list as json: ``ref_id``, ``ann_id``, ``split``)
        with ``instances_file`` (``instances.json``: the ``annotations``' ``bbox``); none for
        training entries, whose supervision is the text only;
      - the split: the entry's ``split``, else the refs file's, else ``split``.

    Each sample holds ``img_path``, ``caption`` (the expression), ``gt_bboxes`` (float32
    ``[K, 4]`` xyxy pixels; geometric transforms move it with the image), ``ori_gt_bboxes`` (the
    same boxes, kept in original-image pixels for :class:`GroundingAccuracyMetric`),
    ``proposals`` (float32 ``[P, 4]`` xyxy, original pixels), ``categories`` (names of the gt boxes
    when known), ``ref_id``, ``split``, ``width`` / ``height`` (when known), ``image_id``
    (contiguous), ``ori_image_id`` and ``ann_index``.

    Args:
        ann_file: the json list, relative to ``data_root``.
        image_root: image folder (relative to ``data_root``).
        data_root: root of the relative paths.
        expressions: ``'captions'`` or ``'categories'`` (COCO-style files only).
        proposal_file: RefCOCO+ proposals (relative to ``data_root``), or None.
        proposal_key: ``'image_id'`` or ``'ref_id'``: what ``proposal_file`` is keyed by.
        refs_file: refer toolkit refs (pickle or json), or None. The pickle is read with a
            restricted unpickler that builds builtin containers only and refuses anything else
            (:func:`vlreg.datasets.prepare.refcoco.safe_pickle_load`).
        instances_file: refer toolkit ``instances.json`` (needed with ``refs_file``).
        split: split name for entries that give none (e.g. ``'val'``), or None.
        pipeline: transforms, the last one ``PackInputs`` (``meta_keys=GROUNDING_META_KEYS``).
        skip_bad_samples: drop bad entries (logged) instead of raising.
        **kwargs: forwarded to :class:`VLBaseDataset`.

    Example:
        >>> dict(type='GroundingDataset', data_root='data/refcoco+', ann_file='refcoco+_val.json',
        ...      image_root='coco', proposal_file='dets.json', refs_file='refs(unc).p',
        ...      instances_file='instances.json', pipeline=[dict(type='LoadImage'),
        ...      dict(type='Resize', size=384), ...,
        ...      dict(type='PackInputs', meta_keys=GROUNDING_META_KEYS)])
    """

    META_KEYS = GROUNDING_META_KEYS
    EXPRESSIONS = ('captions', 'categories')

    def __init__(self, ann_file: str, image_root: str = '', data_root: str = '',
                 expressions: str = 'captions', proposal_file: str | None = None,
                 proposal_key: str = 'image_id', refs_file: str | None = None,
                 instances_file: str | None = None, split: str | None = None,
                 pipeline: Sequence[dict | Callable] = (), skip_bad_samples: bool = False,
                 **kwargs: Any) -> None:
        if expressions not in self.EXPRESSIONS:
            raise ValueError(f'expressions must be one of {self.EXPRESSIONS}, got {expressions!r}')
        if proposal_key not in ('image_id', 'ref_id'):
            raise ValueError(f"proposal_key must be 'image_id' or 'ref_id', got {proposal_key!r}")
        if refs_file and not instances_file:
            raise ValueError('refs_file needs instances_file (the boxes of the referred objects)')
        self.expressions = expressions
        self.proposal_file = _join(data_root, proposal_file)
        self.proposal_key = proposal_key
        self.refs_file = _join(data_root, refs_file)
        self.instances_file = _join(data_root, instances_file)
        self.split = split
        self.num_bad_entries = 0
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=dict(img_path=image_root), pipeline=pipeline,
                         skip_bad_samples=skip_bad_samples, **kwargs)

    def load_data_list(self) -> list[dict]:
        entries, problems = read_annotation_file(self.ann_file, self.skip_bad_samples)
        collector = _Collector(self, problems)
        self._ids: dict[Any, int] = {}
        first = next((e for e in entries if isinstance(e, dict)), {})
        if 'boxes' in first:
            parse = self._parse_coco
        else:
            self._proposals = self._load_proposals()
            self._refs = self._load_refs()
            parse = self._parse_refer
        return collector.finish(collector.run(entries, parse), self.ann_file)

    def _info(self, index: int, image: str, ori_image_id: Any, text: str, gt: list[list[float]],
              proposals: list[list[float]], **extra: Any) -> dict:
        return dict(img_path=os.path.join(self.data_prefix.get('img_path', ''), image),
                    caption=text, gt_bboxes=_box_array(gt), ori_gt_bboxes=_box_array(gt),
                    proposals=_box_array(proposals),
                    image_id=self._ids.setdefault(ori_image_id, len(self._ids)),
                    ori_image_id=ori_image_id, ann_index=index, **extra)

    # COCO-style files
    def _parse_coco(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        _require(where, entry, ('image', 'caption', 'boxes'))
        image = _text(where, entry['image'], 'image')
        captions = entry['caption']
        captions = [captions] if isinstance(captions, str) else captions
        if not isinstance(captions, list) or not captions:
            raise ValueError(f'{where}: "caption" must be a string or a non-empty list')
        if not isinstance(entry['boxes'], list) or not entry['boxes']:
            raise ValueError(f'{where}: "boxes" must be a non-empty list')
        boxes, names = [], []
        for j, box in enumerate(entry['boxes']):
            _require(f'{where}, box {j}', box, ('bbox', 'category'))
            boxes.append(_xywh_to_xyxy(f'{where}, box {j}', box['bbox']))
            names.append(_text(f'{where}, box {j}', box['category'], 'category'))
        ori_id = entry.get('image_id', image)
        size = dict(width=entry.get('width'), height=entry.get('height'))
        if self.expressions == 'captions':
            return [self._info(index, image, ori_id, _text(f'{where}, caption {j}', c, 'caption'),
                               boxes, boxes, categories=names, ref_id=None, split=self.split,
                               **size) for j, c in enumerate(captions)]
        out = []
        for name in dict.fromkeys(names):
            mine = [b for b, n in zip(boxes, names) if n == name]
            out.append(self._info(index, image, ori_id, name, mine, boxes,
                                  categories=[name] * len(mine), ref_id=None, split=self.split,
                                  **size))
        return out

    # refer-format (ALBEF RefCOCO+) files
    def _load_proposals(self) -> dict[str, list] | None:
        if not self.proposal_file:
            return None
        data = _read_json(self.proposal_file)
        if not isinstance(data, dict):
            raise ValueError(f'{self.proposal_file!r}: expected {{"<{self.proposal_key}>": '
                             '[[x, y, w, h], ...]}')
        return {str(k): v for k, v in data.items()}

    def _load_refs(self) -> dict[int, dict] | None:
        if not self.refs_file:
            return None
        path = self.refs_file
        if path.endswith('.json'):
            refs = _read_json(path)
        else:  # builtin containers only: a pickle that asks for anything else is refused
            from .prepare.refcoco import safe_pickle_load

            refs = safe_pickle_load(path)
        instances = _read_json(self.instances_file)
        if not isinstance(refs, list) or not isinstance(instances, dict):
            raise ValueError(f'{path!r} / {self.instances_file!r}: expected a list of refs and '
                             'the COCO instances object')
        categories = {c.get('id'): c.get('name') for c in instances.get('categories', [])}
        anns = {a['id']: a for a in instances.get('annotations', []) if 'id' in a}
        out = {}
        for index, ref in enumerate(refs):
            where = f'{path!r}: entry {index}'
            _require(where, ref, ('ref_id', 'ann_id'))
            ann = anns.get(ref['ann_id'])
            if ann is None:
                raise ValueError(f'{where}: ann_id {ref["ann_id"]} is not in '
                                 f'{self.instances_file!r}')
            out[int(ref['ref_id'])] = dict(bbox=ann['bbox'], split=ref.get('split'),
                                           image_id=ref.get('image_id', ann.get('image_id')),
                                           category=categories.get(ann.get('category_id')))
        return out

    def _parse_refer(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        _require(where, entry, ('image', 'text'))
        image = _text(where, entry['image'], 'image')
        text = _text(where, entry['text'], 'text')
        ref_id = _int(where, entry['ref_id'], 'ref_id') if 'ref_id' in entry else None
        ref = (self._refs or {}).get(ref_id, {}) if ref_id is not None else {}
        if self._refs is not None and ref_id is not None and not ref:
            raise ValueError(f'{where}: ref_id {ref_id} is not in {self.refs_file!r}')
        image_id = entry.get('image_id', ref.get('image_id', _coco_image_id(image)))
        box = entry.get('bbox', ref.get('bbox'))
        gt = [] if box is None else [_xywh_to_xyxy(f'{where}, bbox', box)]
        proposals: list[list[float]] = []
        if self._proposals is not None:
            key = ref_id if self.proposal_key == 'ref_id' else image_id
            dets = self._proposals.get(str(key))
            if dets is None:
                raise ValueError(f'{where}: no proposals for {self.proposal_key} {key!r} in '
                                 f'{self.proposal_file!r}')
            proposals = [_xywh_to_xyxy(f'{where}, proposal {j}', d) for j, d in enumerate(dets)]
        category = ref.get('category', entry.get('category'))
        return [self._info(index, image, image_id if image_id is not None else image, text, gt,
                           proposals, categories=[category] * len(gt) if category else [],
                           ref_id=ref_id, split=entry.get('split', ref.get('split', self.split)),
                           width=entry.get('width'), height=entry.get('height'))]
