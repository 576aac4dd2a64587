"""Referring expressions and captions with boxes, for weakly supervised grounding.

Samples, bad-entry handling and image paths follow :mod:`vlreg.datasets.base`.
Converter (official files -> checked ALBEF json): :mod:`vlreg.datasets.prepare.refcoco`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from vlreg.registry import DATASETS
from vlreg.structures.batch_keys import DEFAULT_META_KEYS

from .base import EntryCollector, VLBaseDataset, join_root
from .fields import as_int, box_array, require_keys, text_field, xywh_to_xyxy
from .reader import read_annotation_file, read_json

__all__ = ['GROUNDING_META_KEYS', 'GroundingDataset']

GROUNDING_META_KEYS = DEFAULT_META_KEYS + (
    'ori_gt_bboxes',
    'proposals',
    'categories',
    'ref_id',
    'split',
    'width',
    'height',
)


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

    Boxes (ground truth and proposals) must be ``[x, y, w, h]`` numbers (finite; proposals may
    carry more values, e.g. a score, which are ignored) with ``w, h > 0``, and, when the entry
    gives ``width`` / ``height``, lie inside the image (up to
    :data:`vlreg.structures.boxes.BOX_TOLERANCE` pixel): otherwise the entry is bad (an error naming
    the file, entry and box, and for a proposal the proposal file and key, or dropped and counted
    with ``skip_bad_samples``).

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

    def __init__(
        self,
        ann_file: str,
        image_root: str = '',
        data_root: str = '',
        expressions: str = 'captions',
        proposal_file: str | None = None,
        proposal_key: str = 'image_id',
        refs_file: str | None = None,
        instances_file: str | None = None,
        split: str | None = None,
        pipeline: Sequence[dict | Callable] = (),
        skip_bad_samples: bool = False,
        **kwargs: Any,
    ) -> None:
        if expressions not in self.EXPRESSIONS:
            raise ValueError(f'expressions must be one of {self.EXPRESSIONS}, got {expressions!r}')
        if proposal_key not in ('image_id', 'ref_id'):
            raise ValueError(f"proposal_key must be 'image_id' or 'ref_id', got {proposal_key!r}")
        if refs_file and not instances_file:
            raise ValueError('refs_file needs instances_file (the boxes of the referred objects)')
        self.expressions = expressions
        self.proposal_file = join_root(data_root, proposal_file)
        self.proposal_key = proposal_key
        self.refs_file = join_root(data_root, refs_file)
        self.instances_file = join_root(data_root, instances_file)
        self.split = split
        self.num_bad_entries = 0
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=dict(img_path=image_root),
            pipeline=pipeline,
            skip_bad_samples=skip_bad_samples,
            **kwargs,
        )

    def load_data_list(self) -> list[dict]:
        entries, problems = read_annotation_file(self.ann_file, self.skip_bad_samples)
        collector = EntryCollector(self, problems)
        self._ids: dict[Any, int] = {}
        first = next((e for e in entries if isinstance(e, dict)), {})
        if 'boxes' in first:
            parse = self._parse_coco
        else:
            self._proposals = self._load_proposals()
            self._refs = self._load_refs()
            parse = self._parse_refer
        return collector.finish(collector.run(entries, parse), self.ann_file)

    def _info(
        self,
        index: int,
        image: str,
        ori_image_id: Any,
        text: str,
        gt: list[list[float]],
        proposals: list[list[float]],
        **extra: Any,
    ) -> dict:
        img_path = self.image_path(image, f'{self.ann_file!r}: entry {index}')
        return dict(
            img_path=img_path,
            caption=text,
            gt_bboxes=box_array(gt),
            ori_gt_bboxes=box_array(gt),
            proposals=box_array(proposals),
            image_id=self._ids.setdefault(ori_image_id, len(self._ids)),
            ori_image_id=ori_image_id,
            ann_index=index,
            **extra,
        )

    # COCO-style files
    def _parse_coco(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        require_keys(where, entry, ('image', 'caption', 'boxes'))
        image = text_field(where, entry['image'], 'image')
        captions = entry['caption']
        captions = [captions] if isinstance(captions, str) else captions
        if not isinstance(captions, list) or not captions:
            raise ValueError(f'{where}: "caption" must be a string or a non-empty list')
        if not isinstance(entry['boxes'], list) or not entry['boxes']:
            raise ValueError(f'{where}: "boxes" must be a non-empty list')
        boxes, names = [], []
        size = dict(width=entry.get('width'), height=entry.get('height'))
        for j, box in enumerate(entry['boxes']):
            require_keys(f'{where}, box {j}', box, ('bbox', 'category'))
            boxes.append(xywh_to_xyxy(f'{where}, box {j}', box['bbox'], **size))
            names.append(text_field(f'{where}, box {j}', box['category'], 'category'))
        ori_id = entry.get('image_id', image)
        if self.expressions == 'captions':
            texts = [
                text_field(f'{where}, caption {j}', c, 'caption') for j, c in enumerate(captions)
            ]
            return [
                self._info(
                    index,
                    image,
                    ori_id,
                    text,
                    boxes,
                    boxes,
                    categories=names,
                    ref_id=None,
                    split=self.split,
                    **size,
                )
                for text in texts
            ]
        out = []
        for name in dict.fromkeys(names):
            mine = [b for b, n in zip(boxes, names) if n == name]
            out.append(
                self._info(
                    index,
                    image,
                    ori_id,
                    name,
                    mine,
                    boxes,
                    categories=[name] * len(mine),
                    ref_id=None,
                    split=self.split,
                    **size,
                )
            )
        return out

    # refer-format (ALBEF RefCOCO+) files
    def _load_proposals(self) -> dict[str, list] | None:
        if not self.proposal_file:
            return None
        data = read_json(self.proposal_file)
        if not isinstance(data, dict):
            raise ValueError(
                f'{self.proposal_file!r}: expected {{"<{self.proposal_key}>": [[x, y, w, h], ...]}}'
            )
        return {str(k): v for k, v in data.items()}

    def _load_refs(self) -> dict[int, dict] | None:
        if not self.refs_file:
            return None
        path = self.refs_file
        if path.endswith('.json'):
            refs = read_json(path)
        else:  # builtin containers only: a pickle that asks for anything else is refused
            from .prepare.refcoco import safe_pickle_load

            refs = safe_pickle_load(path)
        instances = read_json(self.instances_file)
        if not isinstance(refs, list) or not isinstance(instances, dict):
            raise ValueError(
                f'{path!r} / {self.instances_file!r}: expected a list of refs and '
                'the COCO instances object'
            )
        categories = {c.get('id'): c.get('name') for c in instances.get('categories', [])}
        anns = {a['id']: a for a in instances.get('annotations', []) if 'id' in a}
        out = {}
        for index, ref in enumerate(refs):
            where = f'{path!r}: entry {index}'
            require_keys(where, ref, ('ref_id', 'ann_id'))
            ann = anns.get(ref['ann_id'])
            if ann is None:
                raise ValueError(
                    f'{where}: ann_id {ref["ann_id"]} is not in {self.instances_file!r}'
                )
            out[int(ref['ref_id'])] = dict(
                bbox=ann['bbox'],
                split=ref.get('split'),
                image_id=ref.get('image_id', ann.get('image_id')),
                category=categories.get(ann.get('category_id')),
            )
        return out

    def _entry_proposals(
        self, where: str, key: Any, width: Any = None, height: Any = None
    ) -> list[list[float]]:
        """The xyxy proposals of ``key`` in the proposal file, each checked like a ground-truth
        box (four finite numbers first, positive size, inside the entry's image when it gives its
        size); a bad one makes the entry bad, naming the entry, the proposal and the file."""
        dets = self._proposals.get(str(key)) if self._proposals is not None else None
        source = f'{self.proposal_key} {key!r} in {self.proposal_file!r}'
        if dets is None:
            raise ValueError(f'{where}: no proposals for {source}')
        if not isinstance(dets, list):
            raise ValueError(
                f'{where}: the proposals of {source} must be a list of '
                f'[x, y, w, h, ...] boxes, got {type(dets).__name__}'
            )
        return [
            xywh_to_xyxy(f'{where}, proposal {j} of {source}', d, width, height)
            for j, d in enumerate(dets)
        ]

    def _parse_refer(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        require_keys(where, entry, ('image', 'text'))
        image = text_field(where, entry['image'], 'image')
        text = text_field(where, entry['text'], 'text')
        ref_id = as_int(where, entry['ref_id'], 'ref_id') if 'ref_id' in entry else None
        ref = (self._refs or {}).get(ref_id, {}) if ref_id is not None else {}
        if self._refs is not None and ref_id is not None and not ref:
            raise ValueError(f'{where}: ref_id {ref_id} is not in {self.refs_file!r}')
        image_id = entry.get('image_id', ref.get('image_id', _coco_image_id(image)))
        box = entry.get('bbox', ref.get('bbox'))
        size = dict(width=entry.get('width'), height=entry.get('height'))
        gt = [] if box is None else [xywh_to_xyxy(f'{where}, bbox', box, **size)]
        proposals: list[list[float]] = []
        if self._proposals is not None:
            key = ref_id if self.proposal_key == 'ref_id' else image_id
            proposals = self._entry_proposals(where, key, **size)
        category = ref.get('category', entry.get('category'))
        return [
            self._info(
                index,
                image,
                image_id if image_id is not None else image,
                text,
                gt,
                proposals,
                categories=[category] * len(gt) if category else [],
                ref_id=ref_id,
                split=entry.get('split', ref.get('split', self.split)),
                **size,
            )
        ]
