r"""RefCOCO+ (refer toolkit) and COCO pointing-game files for ``GroundingDataset``.

Referring expressions (RefCOCO / RefCOCO+ / RefCOCOg as the refer toolkit distributes them)::

    python tools/prepare_data.py refcoco --refs data/refcoco+/refs(unc).p \
        --instances data/refcoco+/instances.json --proposals data/refcoco+/dets.json \
        --out-dir data/refcoco+ [--name refcoco+] [--image-prefix train2014]

writes ``<name>_<split>.json`` for every split of the refs (``train``, ``val``, ``testA``,
``testB``), one entry per expression::

    {"image": "train2014/COCO_train2014_<12 digits>.jpg", "text", "ref_id", "sent_id",
     "image_id", "split", "width", "height", "category", "bbox": [x, y, w, h]}

(``bbox``, the referred object's box, is left out of the train file: fine-tuning is weakly
supervised and sees the text only), and ``<name>_proposals.json`` = ``{"<image_id>": [[x, y, w,
h, score?], ...]}`` for the images of the evaluation splits, from ``--proposals``: ALBEF's
``dets.json`` (the same mapping), a COCO detection-results list (``[{"image_id", "bbox",
"score"?}]``), or ``gt`` for every annotated box of the image in ``--instances`` (ALBEF's
``cocos.json`` setting). ``GroundingDataset`` reads them with ``proposal_file`` and needs no refs
file at run time.

COCO pointing game (captions and boxes of COCO images)::

    python tools/prepare_data.py refcoco --captions data/coco/annotations/captions_val2017.json \
        --instances data/coco/annotations/instances_val2017.json --out-dir data/coco_pointing \
        --name val2017 --image-prefix val2017

writes ``<name>.json`` in the format of ``coco_mini_train2017/grounding.json`` (``[{"image",
"image_id", "width", "height", "caption": [...], "boxes": [{"bbox", "category", "category_id",
"iscrowd", "area"}]}]``).

Every entry is validated; what is skipped is counted and the reasons are printed. ``refs(unc).p``
is a Python pickle, and unpickling can run arbitrary code: it is read with a restricted unpickler
(:func:`safe_pickle_load`) that only builds builtin containers and scalars (dict, list, tuple,
set, str, bytes, numbers) and refuses any other global, naming the file. Python 2 byte strings
are decoded as UTF-8 (Latin-1 when that fails).
"""

from __future__ import annotations

import argparse
import builtins
import json
import math
import os
import pickle
import sys
from collections import Counter, defaultdict
from typing import Any

from vlreg.datasets.reader import read_json as _read_json
from vlreg.structures.boxes import box_problem

from . import image_problem, progress, report

HELP = 'RefCOCO(+) refs + instances + proposals, or COCO captions -> grounding json'

_SAFE_BUILTINS = frozenset(
    {
        'dict',
        'list',
        'tuple',
        'set',
        'frozenset',
        'str',
        'bytes',
        'bytearray',
        'int',
        'float',
        'complex',
        'bool',
    }
)


class _ContainersOnlyUnpickler(pickle.Unpickler):
    """Resolves only builtin container / scalar types; any other global is refused."""

    def __init__(self, file: Any, path: str) -> None:
        super().__init__(file, encoding='bytes')
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in ('builtins', '__builtin__') and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(
            f'{self.path!r}: refusing to load the global {module}.{name}: this reader only '
            'builds builtin containers (a refer toolkit refs file needs nothing else)'
        )


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError:
            return value.decode('latin-1')
    if isinstance(value, dict):
        return {_decode(k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_decode(v) for v in value)
    return value


def safe_pickle_load(path: str) -> Any:
    """Unpickle ``path`` allowing builtin containers and scalars only (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a pickle of builtin containers (the message names the file).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'pickle file {path!r} not found')
    with open(path, 'rb') as f:
        try:
            data = _ContainersOnlyUnpickler(f, path).load()
        except pickle.UnpicklingError as err:
            raise ValueError(str(err) if path in str(err) else f'{path!r}: {err}') from err
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
            raise ValueError(
                f'{path!r}: not a readable pickle ({type(err).__name__}: {err})'
            ) from err
    return _decode(data)


def read_refs(path: str) -> list:
    """The refs list of a refer toolkit file: ``refs(*).p`` (safe unpickling) or a json copy."""
    refs = _read_json(path) if path.endswith('.json') else safe_pickle_load(path)
    if not isinstance(refs, list):
        raise ValueError(f'{path!r}: expected a list of refs, got {type(refs).__name__}')
    return refs


def _xywh(box: Any) -> list[float] | None:
    """A valid ``[x, y, w, h]`` (finite, positive size) as floats, or None."""
    try:
        if any(isinstance(v, bool) for v in box[:4]):
            return None
        values = [float(v) for v in box[:4]]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return None
    return values if values[2] > 0 and values[3] > 0 else None


def _outside(box: list[float], image: dict | None) -> str | None:
    """Why a valid ``[x, y, w, h]`` does not fit its image (more than
    :data:`~vlreg.structures.boxes.BOX_TOLERANCE` pixel past a border), or None (it fits, or the
    image or its size is unknown). ``GroundingDataset`` refuses such boxes; they are skipped here."""
    if not isinstance(image, dict):
        return None
    x, y, w, h = box
    problem = box_problem([x, y, x + w, y + h], image.get('width'), image.get('height'))
    return None if problem is None else f'{problem} {image.get("id")!r}'


class _Instances:
    """Images, annotations and category names of a COCO instances file, checked."""

    def __init__(self, path: str, skipped: list[str]) -> None:
        data = _read_json(path)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get('annotations'), list)
            or not isinstance(data.get('images'), list)
        ):
            raise ValueError(
                f'{path!r}: expected COCO instances ({{"images": [...], '
                '"annotations": [...], "categories": [...]}})'
            )
        self.categories = {
            c.get('id'): c.get('name') for c in data.get('categories', []) if isinstance(c, dict)
        }
        self.images: dict[Any, dict] = {}
        for i, img in enumerate(data['images']):
            if not isinstance(img, dict) or 'id' not in img or not img.get('file_name'):
                skipped.append(f'{path!r}: image {i}: needs "id" and "file_name"')
                continue
            self.images[img['id']] = img
        self.anns: dict[Any, dict] = {}
        self.by_image: dict[Any, list[dict]] = defaultdict(list)
        for i, ann in enumerate(data['annotations']):
            where = f'{path!r}: annotation {i}'
            if not isinstance(ann, dict) or 'id' not in ann or 'image_id' not in ann:
                skipped.append(f'{where}: needs "id" and "image_id"')
                continue
            box = _xywh(ann.get('bbox', ()))
            if box is None:
                skipped.append(
                    f'{where} (id {ann["id"]}): bbox {ann.get("bbox")!r} has no area '
                    'or is not [x, y, w, h] numbers'
                )
                continue
            if problem := _outside(box, self.images.get(ann['image_id'])):
                skipped.append(f'{where} (id {ann["id"]}): bbox {ann["bbox"]!r} {problem}')
                continue
            self.anns[ann['id']] = ann
            self.by_image[ann['image_id']].append(ann)


def _load_proposals(spec: str, instances: _Instances, skipped: list[str]) -> dict[str, list]:
    """``{str(image_id): [[x, y, w, h, (score)], ...]}`` from ``spec`` (module docstring)."""
    if spec == 'gt':
        return {str(k): [_xywh(a['bbox']) for a in v] for k, v in instances.by_image.items()}
    data = _read_json(spec)
    out: dict[str, list] = defaultdict(list)
    # (image id, where the detection is in the file, the detection)
    items: list[tuple[str, str, Any]] = []
    if isinstance(data, dict):
        for k, dets in data.items():
            dets = dets if isinstance(dets, list) else [dets]
            items.extend((str(k), f'image {k} (proposal {j})', d) for j, d in enumerate(dets))
    elif isinstance(data, list):
        for i, det in enumerate(data):
            if not isinstance(det, dict) or 'image_id' not in det or 'bbox' not in det:
                skipped.append(f'{spec!r}: detection {i}: needs "image_id" and "bbox"')
                continue
            where = f'detection {i} (image {det["image_id"]})'
            if not isinstance(det['bbox'], (list, tuple)):
                skipped.append(
                    f'{spec!r}: {where}: bbox {det["bbox"]!r} is not [x, y, w, h] numbers'
                )
                continue
            score = [det['score']] if isinstance(det.get('score'), (int, float)) else []
            items.append((str(det['image_id']), where, list(det['bbox'][:4]) + score))
    else:
        raise ValueError(
            f'{spec!r}: expected {{"<image_id>": [[x, y, w, h, ...]]}} or a COCO '
            'detection-results list'
        )
    images = {str(k): v for k, v in instances.images.items()}
    for image_id, where, det in items:
        box = _xywh(det) if isinstance(det, (list, tuple)) else None
        if box is None:
            skipped.append(
                f'{spec!r}: {where}: proposal {det!r} has no area or is not '
                '[x, y, w, h, ...] numbers'
            )
            continue
        if problem := _outside(box, images.get(image_id)):
            skipped.append(f'{spec!r}: {where}: proposal {det!r} {problem}')
            continue
        extra = [float(det[4])] if len(det) > 4 and isinstance(det[4], (int, float)) else []
        out[image_id].append(box + extra)
    return dict(out)


def _ref_entries(
    index: int, ref: Any, args: argparse.Namespace, instances: _Instances, skipped: list[str]
) -> list[dict]:
    where = f'{args.refs!r}: ref {index}'
    if not isinstance(ref, dict):
        skipped.append(f'{where}: expected a dict, got {type(ref).__name__}')
        return []
    missing = [k for k in ('ref_id', 'ann_id', 'image_id', 'split', 'sentences') if k not in ref]
    if missing:
        skipped.append(f'{where}: missing key {missing[0]!r}')
        return []
    where = f'{where} (ref_id {ref["ref_id"]})'
    ann = instances.anns.get(ref['ann_id'])
    image = instances.images.get(ref['image_id'])
    if ann is None:
        skipped.append(
            f'{where}: ann_id {ref["ann_id"]} is not a valid annotation of {args.instances!r}'
        )
        return []
    if image is None:
        skipped.append(f'{where}: image_id {ref["image_id"]} is not in {args.instances!r}')
        return []
    if not isinstance(ref['sentences'], list):
        skipped.append(f'{where}: "sentences" must be a list')
        return []
    base = dict(
        image=os.path.join(args.image_prefix, image['file_name']).replace(os.sep, '/'),
        ref_id=int(ref['ref_id']),
        image_id=ref['image_id'],
        split=str(ref['split']),
        width=image.get('width'),
        height=image.get('height'),
        category=instances.categories.get(ann.get('category_id')),
    )
    if base['split'] != 'train':  # weak supervision: no box in the training file
        base['bbox'] = _xywh(ann['bbox'])
    out = []
    for j, sent in enumerate(ref['sentences']):
        text = (sent.get(args.text_field) or sent.get('raw')) if isinstance(sent, dict) else None
        if not isinstance(text, str) or not text.strip():
            skipped.append(f'{where}: sentence {j} has no text ({args.text_field!r} / "raw")')
            continue
        out.append(dict(base, text=text.strip(), sent_id=sent.get('sent_id')))
    return out


class _ImageCheck:
    """``image_problem`` once per image (expressions share images)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.root, self.decode = args.image_root, args.decode_images
        self.cache: dict[str, str | None] = {}

    def __call__(self, image: str) -> str | None:
        if not self.root:
            return None
        if image not in self.cache:
            self.cache[image] = image_problem(os.path.join(self.root, image), self.decode)
        return self.cache[image]


def _write(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f)


def _run_refer(args: argparse.Namespace) -> int:
    skipped: list[str] = []
    refs = read_refs(args.refs)
    instances = _Instances(args.instances, skipped)
    proposals = _load_proposals(args.proposals, instances, skipped) if args.proposals else None
    by_split: dict[str, list[dict]] = defaultdict(list)
    seen: set[int] = set()
    check = _ImageCheck(args)
    for index, ref in enumerate(progress(refs, desc='refcoco: refs')):
        entries = _ref_entries(index, ref, args, instances, skipped)
        if entries and entries[0]['ref_id'] in seen:
            skipped.append(f'{args.refs!r}: ref {index}: duplicate ref_id {entries[0]["ref_id"]}')
            continue
        for entry in entries:
            seen.add(entry['ref_id'])
            if args.splits and entry['split'] not in args.splits:
                continue
            if problem := check(entry['image']):
                skipped.append(f'{args.refs!r}: ref {index} (ref_id {entry["ref_id"]}): {problem}')
                continue
            if (
                proposals is not None
                and entry['split'] != 'train'
                and not proposals.get(str(entry['image_id']))
            ):
                skipped.append(
                    f'{args.refs!r}: ref {index} (ref_id {entry["ref_id"]}): no '
                    f'proposal for image {entry["image_id"]} in {args.proposals!r}'
                )
                continue
            by_split[entry['split']].append(entry)
    written = 0
    for split, entries in sorted(by_split.items()):
        path = os.path.join(args.out_dir, f'{args.name}_{split}.json')
        _write(path, entries)
        written += len(entries)
        counts = Counter(e['category'] for e in entries)
        print(
            f'{split}: {len(entries)} expressions of {len({e["ref_id"] for e in entries})} '
            f'objects in {len({e["image_id"] for e in entries})} images -> {path} '
            f'({len(counts)} categories)'
        )
    if proposals is not None:
        wanted = {str(e['image_id']) for s, es in by_split.items() if s != 'train' for e in es}
        kept = {k: v for k, v in proposals.items() if k in wanted}
        path = os.path.join(args.out_dir, f'{args.name}_proposals.json')
        _write(path, kept)
        print(
            f'proposals: {sum(len(v) for v in kept.values())} boxes for {len(kept)} images '
            f'-> {path}'
        )
    report('refcoco', written, args.out_dir, skipped)
    return 0 if written else 1


def _run_pointing(args: argparse.Namespace) -> int:
    skipped: list[str] = []
    instances = _Instances(args.instances, skipped)
    data = _read_json(args.captions)
    if not isinstance(data, dict) or not isinstance(data.get('annotations'), list):
        raise ValueError(f'{args.captions!r}: expected COCO captions ({{"annotations": [...]}})')
    captions: dict[Any, list[str]] = defaultdict(list)
    for i, ann in enumerate(data['annotations']):
        text = ann.get('caption') if isinstance(ann, dict) else None
        if not isinstance(text, str) or not text.strip() or 'image_id' not in ann:
            skipped.append(
                f'{args.captions!r}: annotation {i}: needs "image_id" and a non-empty "caption"'
            )
            continue
        captions[ann['image_id']].append(text.strip())
    out, check = [], _ImageCheck(args)
    for image_id, image in progress(list(instances.images.items()), desc='refcoco: images'):
        where = f'{args.instances!r}: image {image_id}'
        boxes = [
            dict(
                bbox=_xywh(a['bbox']),
                category=instances.categories.get(a.get('category_id')),
                category_id=a.get('category_id'),
                iscrowd=int(a.get('iscrowd', 0)),
                area=a.get('area'),
            )
            for a in instances.by_image.get(image_id, [])
            if args.crowd or not a.get('iscrowd')
        ]
        unnamed = [b for b in boxes if not b['category']]
        if unnamed:
            skipped.append(
                f'{where}: {len(unnamed)} boxes of unknown category ids '
                f'{sorted({b["category_id"] for b in unnamed})} dropped'
            )
            boxes = [b for b in boxes if b['category']]
        if not captions.get(image_id):
            skipped.append(f'{where}: no caption in {args.captions!r}')
            continue
        if not boxes:
            skipped.append(f'{where}: no usable box')
            continue
        entry = dict(
            image=os.path.join(args.image_prefix, image['file_name']).replace(os.sep, '/'),
            image_id=str(image_id),
            width=image.get('width'),
            height=image.get('height'),
            caption=captions[image_id],
            boxes=boxes,
        )
        if problem := check(entry['image']):
            skipped.append(f'{where}: {problem}')
            continue
        out.append(entry)
    path = os.path.join(args.out_dir, f'{args.name}.json')
    _write(path, out)
    report('refcoco (pointing game)', len(out), path, skipped)
    return 0 if out else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--refs', help='refer toolkit refs file: refs(unc).p (read safely) or json')
    src.add_argument('--captions', help='COCO captions_*.json: write the COCO pointing-game file')
    parser.add_argument(
        '--instances',
        required=True,
        help='COCO instances json (refer toolkit instances.json for --refs)',
    )
    parser.add_argument(
        '--proposals',
        help='detections: ALBEF dets.json, a COCO results list, or "gt" for the '
        'annotated boxes (--refs only)',
    )
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument(
        '--name',
        default=None,
        help='output file prefix (default: refcoco+ with --refs, pointing with --captions)',
    )
    parser.add_argument(
        '--image-prefix',
        default='train2014',
        help='folder of the images below the image root, written into "image"',
    )
    parser.add_argument('--splits', nargs='+', help='keep only these splits (--refs)')
    parser.add_argument(
        '--text-field',
        default='sent',
        choices=['sent', 'raw'],
        help="refer sentence field used as the expression (ALBEF: 'sent')",
    )
    parser.add_argument(
        '--no-crowd',
        dest='crowd',
        action='store_false',
        help='drop iscrowd boxes (--captions; kept by default)',
    )
    parser.add_argument('--image-root', help='check that every image exists below this folder')
    parser.add_argument(
        '--decode-images',
        action='store_true',
        help='with --image-root, also decode every image (slow)',
    )


def run(args: argparse.Namespace) -> int:
    if args.refs:
        args.name = args.name or 'refcoco+'
        return _run_refer(args)
    if args.proposals or args.splits:
        print('refcoco: --proposals and --splits apply to --refs only', file=sys.stderr)
        return 2
    args.name = args.name or 'pointing'
    return _run_pointing(args)
