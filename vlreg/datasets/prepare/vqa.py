r"""VQA v2: official questions + annotations -> ALBEF json files and the candidate answer list.

    python tools/prepare_data.py vqa --questions data/vqa/v2_OpenEnded_mscoco_*_questions.json \
        --annotations data/vqa/v2_mscoco_{train,val}2014_annotations.json --out-dir data/vqa \
        [--min-count 9] [--answer-splits train2014 val2014] [--image-root data/vqa/coco]

Input: the official files (https://visualqa.org/download.html), e.g.
``v2_OpenEnded_mscoco_{train2014,val2014,test-dev2015,test2015}_questions.json`` and
``v2_mscoco_{train2014,val2014}_annotations.json``. Annotations are matched to question files by
their ``data_subtype``.

Output, in ``--out-dir``:

* ``vqa_<subtype>.json`` per question file, ALBEF's format (read by
  :class:`~vlreg.datasets.VQADataset`): ``[{"question_id", "question", "image":
  "<split>/COCO_<split>_<12-digit id>.jpg", "dataset": "vqa", "image_id"}]`` plus, where annotated,
  ``"answer"`` (the ten raw answers), ``"question_type"``, ``"answer_type"`` and
  ``"multiple_choice_answer"``; ``test-dev2015`` questions point at the ``test2015`` images;
* ``answer_list.json``: ALBEF's candidate list, a JSON list of the answers given at least
  ``--min-count`` times in the ``--answer-splits`` (default: the ``train*`` subtypes), most
  frequent first (ties alphabetical). What is counted (``--count-field``): each question's
  ``multiple_choice_answer`` (BUTD's rule: 9 occurrences over train+val give its 3,129 answers;
  when an annotation lacks the field, the most frequent of its answers is used and counted as
  "derived") or every annotator answer. Answers are normalised as the official evaluation
  normalises predictions (``--no-normalize`` keeps them raw).

Every entry is validated; bad ones are skipped and reported with the reason (file and entry
index of the first few), as are questions without annotation and, with ``--image-root``,
questions whose image file is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import Counter, defaultdict
from typing import Any

from vlreg.datasets.reader import read_json

from . import image_problem, progress

HELP = 'VQA v2: official questions + annotations -> ALBEF json files and answer_list.json'

COUNT_FIELDS = ('multiple_choice_answer', 'answers')
SHOWN = 3  # examples printed per skip reason


class _Skips:
    """Skipped entries by reason, with a few examples naming the file and the entry."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < SHOWN:
            self.examples[reason].append(where)

    def report(self, indent: str = '  ') -> list[str]:
        lines = []
        for reason, n in self.counts.most_common():
            shown = '; '.join(self.examples[reason])
            lines.append(f'{indent}skipped {n}: {reason} (e.g. {shown})')
        return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--questions', nargs='+', required=True, help='official question files (one per split)'
    )
    parser.add_argument(
        '--annotations',
        nargs='*',
        default=[],
        help='official annotation files, matched to the questions by data_subtype',
    )
    parser.add_argument('--out-dir', required=True, help='where the json files are written')
    parser.add_argument(
        '--min-count',
        type=int,
        default=9,
        help='an answer enters the list when counted at least this often (default 9, BUTD)',
    )
    parser.add_argument(
        '--answer-splits',
        nargs='*',
        default=None,
        help='subtypes whose answers are counted (default: every annotated '
        'subtype starting with "train")',
    )
    parser.add_argument(
        '--count-field',
        choices=COUNT_FIELDS,
        default='multiple_choice_answer',
        help="count each question's multiple_choice_answer (default) or every annotator answer",
    )
    parser.add_argument(
        '--no-normalize',
        action='store_true',
        help='keep the answers of the list raw (default: the official answer normalisation)',
    )
    parser.add_argument(
        '--image-name',
        default='{split}/COCO_{split}_{image_id:012d}.jpg',
        help='image path written for each question (format with {split} and {image_id})',
    )
    parser.add_argument(
        '--image-root',
        default=None,
        help='if given, skip questions whose image is not under this folder',
    )
    parser.add_argument(
        '--decode-images',
        action='store_true',
        help='with --image-root, also decode every image (slow)',
    )
    parser.add_argument(
        '--answer-list',
        default='answer_list.json',
        help='file name of the answer list in --out-dir',
    )


def _load(path: str, key: str) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ValueError(f'{path!r}: expected an official VQA file with a "{key}" list')
    if not isinstance(data.get('data_subtype'), str):
        raise ValueError(
            f'{path!r}: no "data_subtype" (e.g. "train2014") to match questions and annotations'
        )
    return data


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_annotations(path: str, data: dict, skips: _Skips) -> dict[int, dict]:
    out: dict[int, dict] = {}
    rows = progress(data['annotations'], desc=f'annotations {os.path.basename(path)}')
    for index, ann in enumerate(rows):
        where = f'{path}: entry {index}'
        qid = _int(ann.get('question_id')) if isinstance(ann, dict) else None
        if qid is None:
            skips.add('annotation without an integer question_id', where)
            continue
        answers = ann.get('answers')
        if (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, dict) and isinstance(a.get('answer'), str) for a in answers)
        ):
            skips.add(
                'annotation whose "answers" is not a non-empty list of {"answer": str}',
                f'{where} (question_id {qid})',
            )
            continue
        if qid in out:
            skips.add('annotation repeating a question_id', f'{where} (question_id {qid})')
            continue
        out[qid] = ann
    return out


def _image_split(subtype: str) -> str:
    return re.sub(r'^test-dev', 'test', subtype)  # test-dev questions use the test images


def _convert(
    path: str, data: dict, anns: dict[int, dict] | None, args: argparse.Namespace, skips: _Skips
) -> tuple[list[dict], list[dict]]:
    """ALBEF entries of one question file, and the annotations of the entries kept."""
    split = _image_split(data['data_subtype'])
    entries, kept, seen = [], [], set()
    rows = progress(data['questions'], desc=f'questions {os.path.basename(path)}')
    for index, q in enumerate(rows):
        where = f'{path}: entry {index}'
        if not isinstance(q, dict):
            skips.add('question entry that is not an object', where)
            continue
        qid, image_id, text = _int(q.get('question_id')), _int(q.get('image_id')), q.get('question')
        if qid is None or image_id is None or not isinstance(text, str) or not text.strip():
            skips.add(
                'question without integer question_id / image_id or with an empty question', where
            )
            continue
        where = f'{where} (question_id {qid})'
        if qid in seen:
            skips.add('question repeating a question_id', where)
            continue
        image = args.image_name.format(split=split, image_id=image_id)
        problem = args.image_root and image_problem(
            os.path.join(args.image_root, image), args.decode_images
        )
        if problem:
            skips.add('image missing, empty or undecodable', f'{where}: {problem}')
            continue
        entry = dict(question_id=qid, question=text, image=image, dataset='vqa', image_id=image_id)
        if anns is not None:
            ann = anns.get(qid)
            if ann is None:
                skips.add('question without (usable) annotation', where)
                continue
            if _int(ann.get('image_id')) not in (None, image_id):
                skips.add('annotation naming another image_id', where)
                continue
            entry['answer'] = [a['answer'] for a in ann['answers']]
            for key in ('question_type', 'answer_type', 'multiple_choice_answer'):
                if key in ann:
                    entry[key] = ann[key]
            kept.append(ann)
        seen.add(qid)
        entries.append(entry)
    return entries, kept


def count_answers(annotations: list[dict], field: str, normalize: bool) -> tuple[Counter, int]:
    """Answer counts of the annotations, and how many multiple-choice answers were derived."""
    from vlreg.evaluation.vqa import normalize_answer

    counts: Counter[str] = Counter()
    derived = 0
    for ann in annotations:
        raw = [a['answer'] for a in ann['answers']]
        if field == 'answers':
            chosen = raw
        elif isinstance(ann.get('multiple_choice_answer'), str):
            chosen = [ann['multiple_choice_answer']]
        else:  # the most frequent answer, the first given on ties
            chosen = [Counter(raw).most_common(1)[0][0]]
            derived += 1
        for answer in chosen:
            answer = normalize_answer(answer) if normalize else answer.strip()
            if answer:
                counts[answer] += 1
    return counts, derived


def build_answer_list(counts: Counter, min_count: int) -> list[str]:
    """Answers counted at least ``min_count`` times, most frequent first, ties alphabetical."""
    return sorted((a for a, n in counts.items() if n >= min_count), key=lambda a: (-counts[a], a))


def _write(path: str, obj: Any) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    if args.min_count < 1:
        print(f'error: --min-count must be >= 1, got {args.min_count}')
        return 2
    try:
        questions = [(p, _load(p, 'questions')) for p in args.questions]
        annotations = [(p, _load(p, 'annotations')) for p in args.annotations]
    except (OSError, ValueError) as err:
        print(f'error: {err}')
        return 1
    by_subtype: dict[str, tuple[str, dict]] = {}
    for path, data in annotations:
        if data['data_subtype'] in by_subtype:
            print(
                f'error: {path!r} and {by_subtype[data["data_subtype"]][0]!r} both annotate '
                f'{data["data_subtype"]!r}'
            )
            return 1
        by_subtype[data['data_subtype']] = (path, data)
    unmatched = set(by_subtype) - {d['data_subtype'] for _, d in questions}
    if unmatched:
        print(f'error: annotations of {sorted(unmatched)} have no question file')
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    answer_splits = args.answer_splits
    if answer_splits is None:
        answer_splits = [s for s in by_subtype if s.startswith('train')]
    missing = [s for s in answer_splits if s not in by_subtype]
    if missing:
        print(f'error: --answer-splits {missing} have no annotation file')
        return 1

    lines, counted, written = [], [], 0
    for path, data in questions:
        subtype = data['data_subtype']
        skips = _Skips()
        anns = None
        if subtype in by_subtype:
            ann_path, ann_data = by_subtype[subtype]
            anns = _parse_annotations(ann_path, ann_data, skips)
        entries, kept = _convert(path, data, anns, args, skips)
        out = os.path.join(args.out_dir, f'vqa_{subtype}.json')
        if entries:
            _write(out, entries)
            written += 1
        if subtype in answer_splits:
            counted.extend(kept)
        total = len(data['questions'])
        lines.append(
            f'{subtype}: {len(entries)} of {total} questions '
            f'{"-> " + out if entries else "(nothing written)"}'
            f'{"" if anns is not None else " (no annotations: a test split)"}'
        )
        lines.extend(skips.report())

    if counted:
        counts, derived = count_answers(counted, args.count_field, not args.no_normalize)
        answers = build_answer_list(counts, args.min_count)
        path = os.path.join(args.out_dir, args.answer_list)
        if answers:
            _write(path, answers)
            covered = sum(n for n in counts.values() if n >= args.min_count)
            lines.append(
                f'answer list: {len(answers)} answers counted >= {args.min_count} times '
                f'({args.count_field} of {"+".join(answer_splits)}; they cover '
                f'{100.0 * covered / sum(counts.values()):.1f}% of the counted answers'
                f'{f"; {derived} multiple-choice answers derived" if derived else ""}) '
                f'-> {path}; for AnswerClassifierHead set num_answers={len(answers)}'
            )
        else:
            lines.append(
                f'answer list: no answer is counted >= {args.min_count} times; nothing written'
            )
    else:
        lines.append('answer list: no annotated question of the answer splits; not written')
    print('\n'.join(lines))
    return 0 if written else 1
