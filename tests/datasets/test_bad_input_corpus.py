"""A corpus of bad input, run over every annotation reader (issue 11, items 4 and 5).

Each reader gets two good entries written to a temporary file; one case spoils the first entry (or
the file, or its image). Strict readers must raise naming the file and the entry; with
``skip_bad_samples`` the bad entry is dropped and counted, and the good one survives.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vlreg.datasets import (
    BadSampleError,
    CaptionDataset,
    GroundingDataset,
    NLVR2Dataset,
    RetrievalDataset,
    SNLIVEDataset,
    VQADataset,
)


def _image(path: Path, size: tuple[int, int] = (12, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 120, np.uint8)).save(path)


@dataclass
class Reader:
    """How to write and read one annotation format."""

    name: str
    entries: Callable[[], list[dict]]  # two good entries
    build: Callable[..., Any]  # build(tmp, ann_path, **kwargs) -> dataset
    images: Callable[[dict], list[str]]  # image files (below tmp/img) an entry uses
    text_key: str
    lines: bool = False  # JSON lines rather than a list
    mutations: dict[str, Callable[[dict], Any]] = field(default_factory=dict)
    extra_files: Callable[[Path, list[dict]], None] | None = None


def _img_root(tmp: Path) -> str:
    return str(tmp / 'img')


def _caption_build(cls: type) -> Callable[..., Any]:
    return lambda tmp, ann, **kw: cls(
        str(ann), data_root=str(tmp), image_root='img', pipeline=[dict(type='LoadImage')], **kw
    )


def _common(key: str = 'image') -> dict[str, Callable[[dict], Any]]:
    """Mutations every format with an ``image`` path key supports."""

    def escape(e: dict) -> dict:
        return dict(e, **{key: '../../etc/passwd'})

    def missing_image_key(e: dict) -> dict:
        return {k: v for k, v in e.items() if k != key}

    return dict(path_escape=escape, missing_image_key=missing_image_key)


def _vqa_official_files(tmp: Path, entries: list[dict]) -> None:
    """Write the questions / annotations pair of the official VQA format from our entries."""
    questions = [
        e
        if not isinstance(e, dict)
        else {k: e[k] for k in ('question_id', 'image_id', 'question') if k in e}
        for e in entries
    ]
    anns = [
        dict(question_id=e['question_id'], answers=e.get('_answers', [{'answer': 'yes'}]))
        for e in entries
        if isinstance(e, dict) and 'question_id' in e and isinstance(e['question_id'], int)
    ]
    (tmp / 'q.json').write_text(json.dumps(dict(data_subtype='train2014', questions=questions)))
    (tmp / 'a.json').write_text(json.dumps(dict(annotations=anns)))


READERS = [
    Reader(
        'caption',
        lambda: [
            dict(image='a.png', caption='a red box'),
            dict(image='b.png', caption='a blue box'),
        ],
        _caption_build(CaptionDataset),
        lambda e: [e['image']],
        'caption',
        mutations=_common(),
    ),
    Reader(
        'retrieval',
        lambda: [
            dict(image='a.png', caption=['a red box', 'red']),
            dict(image='b.png', caption=['a blue box']),
        ],
        _caption_build(RetrievalDataset),
        lambda e: [e['image']],
        'caption',
        mutations=dict(_common(), wrong_type_field=lambda e: dict(e, image_id=[1])),
    ),
    Reader(
        'vqa_albef',
        lambda: [
            dict(question_id=1, question='what colour?', image='a.png', answer=['red', 'red']),
            dict(question_id=2, question='what shape?', image='b.png', answer=['box']),
        ],
        lambda tmp, ann, **kw: VQADataset(
            str(ann), data_root=str(tmp), image_root='img', pipeline=[dict(type='LoadImage')], **kw
        ),
        lambda e: [e['image']],
        'question',
        mutations=dict(
            _common(),
            wrong_type_field=lambda e: dict(e, question_id='one'),
            empty_answers=lambda e: dict(e, answer=[]),
            empty_answer=lambda e: dict(e, answer=['red', ' ']),
        ),
    ),
    Reader(
        'vqa_official',
        lambda: [
            dict(question_id=1, image_id=7, question='what colour?'),
            dict(question_id=2, image_id=8, question='what shape?'),
        ],
        lambda tmp, ann, **kw: VQADataset(
            'q.json',
            ann_file='a.json',
            data_root=str(tmp),
            image_root='img',
            image_name='{image_id}.png',
            pipeline=[dict(type='LoadImage')],
            **kw,
        ),
        lambda e: [f'{e["image_id"]}.png'],
        'question',
        mutations=dict(
            wrong_type_field=lambda e: dict(e, image_id=7.5),
            empty_answers=lambda e: dict(e, _answers=[]),
            empty_answer=lambda e: dict(e, _answers=[{'answer': ''}]),
            missing_image_key=lambda e: {k: v for k, v in e.items() if k != 'image_id'},
        ),
        extra_files=_vqa_official_files,
    ),
    Reader(
        'nlvr2_albef',
        lambda: [
            dict(images=['a.png', 'b.png'], sentence='two boxes', label='True'),
            dict(images=['b.png', 'c.png'], sentence='one box', label='False'),
        ],
        lambda tmp, ann, **kw: NLVR2Dataset(
            str(ann), image_root=_img_root(tmp), pipeline=[dict(type='LoadImagePair')], **kw
        ),
        lambda e: list(e['images']),
        'sentence',
        mutations=dict(
            path_escape=lambda e: dict(e, images=['../../etc/passwd', 'b.png']),
            wrong_type_field=lambda e: dict(e, label='maybe'),
            missing_image_key=lambda e: dict(e, images=['a.png']),
        ),
    ),
    Reader(
        'nlvr2_official',
        lambda: [
            dict(identifier='dev-1-0-0', sentence='two boxes', label='True'),
            dict(identifier='dev-2-0-1', sentence='one box', label='False'),
        ],
        lambda tmp, ann, **kw: NLVR2Dataset(
            str(ann), image_root=_img_root(tmp), pipeline=[dict(type='LoadImagePair')], **kw
        ),
        lambda e: [f'{e["identifier"].rsplit("-", 1)[0]}-img{i}.png' for i in (0, 1)],
        'sentence',
        lines=True,
        mutations=dict(
            path_escape=lambda e: dict(e, directory='../..'),
            wrong_type_field=lambda e: dict(e, label=[True]),
            missing_image_key=lambda e: {k: v for k, v in e.items() if k != 'identifier'},
        ),
    ),
    Reader(
        'snli_albef',
        lambda: [
            dict(image='a.png', sentence='a box', label='entailment'),
            dict(image='b.png', sentence='no box', label='contradiction'),
        ],
        lambda tmp, ann, **kw: SNLIVEDataset(
            str(ann), image_root=_img_root(tmp), pipeline=[dict(type='LoadImage')], **kw
        ),
        lambda e: [e['image']],
        'sentence',
        mutations=dict(_common(), wrong_type_field=lambda e: dict(e, label=7)),
    ),
    Reader(
        'snli_official',
        lambda: [
            dict(Flickr30K_ID='a', sentence2='a box', gold_label='entailment'),
            dict(Flickr30K_ID='b', sentence2='no box', gold_label='neutral'),
        ],
        lambda tmp, ann, **kw: SNLIVEDataset(
            str(ann), image_root=_img_root(tmp), pipeline=[dict(type='LoadImage')], **kw
        ),
        lambda e: [f'{e["Flickr30K_ID"]}.jpg'],
        'sentence2',
        lines=True,
        mutations=dict(
            path_escape=lambda e: dict(e, Flickr30K_ID='../../etc/passwd'),
            wrong_type_field=lambda e: dict(e, Flickr30K_ID=None),
            no_majority=lambda e: dict(e, gold_label='-'),
        ),
    ),
    Reader(
        'grounding_coco',
        lambda: [
            dict(
                image='a.png',
                width=16,
                height=12,
                caption=['a red box'],
                boxes=[dict(bbox=[1, 1, 4, 4], category='box')],
            ),
            dict(
                image='b.png',
                width=16,
                height=12,
                caption=['a blue box'],
                boxes=[dict(bbox=[2, 2, 5, 5], category='box')],
            ),
        ],
        lambda tmp, ann, **kw: GroundingDataset(
            str(ann), image_root='img', data_root=str(tmp), pipeline=[dict(type='LoadImage')], **kw
        ),
        lambda e: [e['image']],
        'caption',
        mutations=dict(
            _common(),
            box_outside=lambda e: dict(e, boxes=[dict(bbox=[10, 2, 9, 4], category='box')]),
            box_no_area=lambda e: dict(e, boxes=[dict(bbox=[1, 1, 0, 4], category='box')]),
            box_negative=lambda e: dict(e, boxes=[dict(bbox=[1, 1, 4, -3], category='box')]),
            box_nan=lambda e: dict(e, boxes=[dict(bbox=[1, float('nan'), 4, 4], category='box')]),
            box_short=lambda e: dict(e, boxes=[dict(bbox=[1, 1, 4], category='box')]),
            wrong_type_field=lambda e: dict(e, boxes=[dict(bbox='1 1 4 4', category='box')]),
            empty_boxes=lambda e: dict(e, boxes=[]),
        ),
    ),
    Reader(
        'grounding_refer',
        lambda: [
            dict(
                image='a.png', text='the red box', ref_id=1, bbox=[1, 1, 4, 4], width=16, height=12
            ),
            dict(
                image='b.png', text='the blue box', ref_id=2, bbox=[2, 2, 5, 5], width=16, height=12
            ),
        ],
        lambda tmp, ann, **kw: GroundingDataset(
            str(ann), image_root='img', data_root=str(tmp), pipeline=[dict(type='LoadImage')], **kw
        ),
        lambda e: [e['image']],
        'text',
        mutations=dict(
            _common(),
            box_outside=lambda e: dict(e, bbox=[1, 9, 4, 8]),
            box_no_area=lambda e: dict(e, bbox=[1, 1, 4, 0]),
            box_negative=lambda e: dict(e, bbox=[5, 1, -4, 4]),
            box_nan=lambda e: dict(e, bbox=[1, 1, float('nan'), 4]),
            box_short=lambda e: dict(e, bbox=[1, 1, 4]),
            box_left_of_image=lambda e: dict(e, bbox=[-3, 1, 4, 4]),
            wrong_type_field=lambda e: dict(e, ref_id='first'),
        ),
    ),
]
BY_NAME = {r.name: r for r in READERS}

# entry-level cases every reader meets, then each reader's own
SHARED_CASES: dict[str, Callable[[Reader, dict], Any]] = {
    'null_entry': lambda r, e: None,
    'entry_not_an_object': lambda r, e: ['image', 'caption'],
    'missing_text_key': lambda r, e: {k: v for k, v in e.items() if k != r.text_key},
    'empty_text': lambda r, e: dict(e, **{r.text_key: ' '}),
    'non_string_text': lambda r, e: dict(e, **{r.text_key: 42}),
}
ENTRY_CASES = [(r.name, c) for r in READERS for c in [*SHARED_CASES, *r.mutations]]


def _mutate(reader: Reader, case: str, entry: dict) -> Any:
    if case in SHARED_CASES:
        if reader.name == 'retrieval' and case in ('empty_text', 'non_string_text'):
            return dict(entry, caption=[' '] if case == 'empty_text' else [42])
        return SHARED_CASES[case](reader, entry)
    return reader.mutations[case](entry)


def _write(reader: Reader, tmp: Path, entries: list[Any]) -> Path:
    for entry in reader.entries():
        for image in reader.images(entry):
            if not (tmp / 'img' / image).exists():
                _image(tmp / 'img' / image)
    if reader.extra_files is not None:
        reader.extra_files(tmp, entries)
        return tmp / 'q.json'
    ann = tmp / ('ann.jsonl' if reader.lines else 'ann.json')
    text = '\n'.join(json.dumps(e) for e in entries) if reader.lines else json.dumps(entries)
    ann.write_text(text, encoding='utf-8')
    return ann


@pytest.mark.parametrize('name,case', ENTRY_CASES)
def test_bad_entry_is_named_or_counted(tmp_path: Path, name: str, case: str) -> None:
    reader = BY_NAME[name]
    good = reader.entries()
    entries = [_mutate(reader, case, copy.deepcopy(good[0])), good[1]]
    ann = _write(reader, tmp_path, entries)
    named = 'a.json' if name == 'vqa_official' and 'answer' in case else ann.name  # annotations
    with pytest.raises(ValueError, match=rf"{re.escape(named)}': entry 0\b"):
        reader.build(tmp_path, ann)
    lenient = reader.build(tmp_path, ann, skip_bad_samples=True)
    # a bad official VQA annotation also leaves its question without one: two messages
    assert lenient.num_bad_entries == (2 if named == 'a.json' else 1) and len(lenient) >= 1
    assert {lenient.get_data_info(i)['ann_index'] for i in range(len(lenient))} == {1}


@pytest.mark.parametrize('name', list(BY_NAME))
def test_good_entries_load(tmp_path: Path, name: str) -> None:
    """The corpus' baseline: both good entries load and their images read (so every failure
    above comes from the one spoilt entry)."""
    reader = BY_NAME[name]
    ds = reader.build(tmp_path, _write(reader, tmp_path, reader.entries()))
    assert sorted({ds.get_data_info(i)['ann_index'] for i in range(len(ds))}) == [0, 1]
    assert ds[0]['img'].shape[:2] == (12, 16)


@pytest.mark.parametrize('name', list(BY_NAME))
def test_path_escape_allowed_by_flag_and_absolute_paths_kept(tmp_path: Path, name: str) -> None:
    reader = BY_NAME[name]
    if 'path_escape' not in reader.mutations:
        pytest.skip(f'{name}: entries name no image path')
    good = reader.entries()
    ann = _write(reader, tmp_path, [reader.mutations['path_escape'](good[0]), good[1]])
    ds = reader.build(tmp_path, ann, allow_paths_outside_root=True)
    assert f'..{os.sep}..' in ds.get_data_info(0)['img_path']
    if name.startswith(('nlvr2', 'snli_official')):
        return
    absolute = str(tmp_path / 'img' / 'a.png')
    entry = dict(good[0], image=absolute)
    ds = reader.build(tmp_path, _write(reader, tmp_path, [entry, good[1]]))
    assert ds.get_data_info(0)['img_path'] == absolute and ds[0]['img'].shape[:2] == (12, 16)


def _file_bytes(reader: Reader, tmp: Path) -> tuple[Path, bytes]:
    ann = _write(reader, tmp, reader.entries())
    return ann, ann.read_bytes()


@pytest.mark.parametrize('name', list(BY_NAME))
def test_truncated_file_is_malformed_at_its_end(tmp_path: Path, name: str) -> None:
    reader = BY_NAME[name]
    ann, data = _file_bytes(reader, tmp_path)
    cut = data[: len(data) - 9]
    ann.write_bytes(cut)
    lines = cut.decode().splitlines()
    with pytest.raises(ValueError) as err:
        reader.build(tmp_path, ann)
    message = str(err.value)
    assert f"{ann.name}'" in message and 'malformed JSON' in message
    assert 'the text ends before the JSON is complete (truncated file?)' in message
    assert f'line {len(lines)}' in message
    assert 'not a list' not in message and 'holds a JSON object' not in message


@pytest.mark.parametrize('name', list(BY_NAME))
def test_non_utf8_file_names_the_byte_offset(tmp_path: Path, name: str) -> None:
    reader = BY_NAME[name]
    ann, data = _file_bytes(reader, tmp_path)
    text = reader.entries()[0][reader.text_key]
    offset = data.index((text if isinstance(text, str) else text[0]).encode()) + 1
    spoilt = data[:offset] + b'\xe9' + data[offset + 1 :]  # Latin-1 'e acute' inside a text
    ann.write_bytes(spoilt)
    line = spoilt[:offset].count(b'\n') + 1
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(ann.name)}' is not UTF-8 text: byte 0xe9 at "
        rf'byte offset {offset} \(line {line}\)',
    ):
        reader.build(tmp_path, ann)


@pytest.mark.parametrize('kind', ['missing', 'corrupt'])
@pytest.mark.parametrize('name', list(BY_NAME))
def test_bad_image_is_named_or_skipped_and_counted(tmp_path: Path, name: str, kind: str) -> None:
    reader = BY_NAME[name]
    ann = _write(reader, tmp_path, reader.entries())
    ds = reader.build(tmp_path, ann)
    first = ds.get_data_info(0)
    image = Path(first['img_path'])
    if kind == 'missing':
        image.unlink()
    else:
        image.write_bytes(b'\x89PNG not really')
    with pytest.raises(
        BadSampleError,
        match=rf'{re.escape(image.name)}.*entry 0 of '
        rf"'.*{re.escape(ann.name)}'",
    ):
        ds[0]
    if name == 'retrieval':  # never replaced: dropped at load instead (test_caption_dataset)
        return
    lenient = reader.build(tmp_path, ann, skip_bad_samples=True)
    sample = lenient[0]
    assert lenient.num_skipped == 1 and sample['ann_index'] == 1


@pytest.mark.parametrize('name', [n for n in BY_NAME if n != 'retrieval'])
def test_every_sample_bad_is_reported_at_once(tmp_path: Path, name: str) -> None:
    reader = BY_NAME[name]
    ann = _write(reader, tmp_path, reader.entries())
    ds = reader.build(tmp_path, ann, skip_bad_samples=True)
    for path in (tmp_path / 'img').iterdir():
        path.write_bytes(b'junk')
    with pytest.raises(RuntimeError) as err:
        ds[0]
    message = str(err.value)
    assert message.startswith(f'every sample of {str(ann)!r} is unreadable ({len(ds)} samples')
    assert 'first errors:' in message and 'cannot decode image' in message
    assert ds.num_skipped == len(ds) < ds.max_refetch  # one try per sample, not max_refetch + 1


@pytest.mark.parametrize(
    'layout', ['json_lines_named_json', 'karpathy_one_line', 'karpathy_indented']
)
def test_truncated_object_file_is_malformed_not_an_object(tmp_path: Path, layout: str) -> None:
    """Issue 11, item 4: a file that starts with ``{`` and is cut off used to be reported as
    "holds a JSON object, not a list"; it is malformed, and the message says where."""
    _image(tmp_path / 'img' / 'a.png')
    entries = [dict(image='a.png', caption='a red box'), dict(image='a.png', caption='red')]
    karpathy = dict(
        images=[dict(filename='a.png', split='train', imgid=0, sentences=[dict(raw='a red box')])]
    )
    text = {
        'json_lines_named_json': '\n'.join(json.dumps(e) for e in entries),
        'karpathy_one_line': json.dumps(karpathy),
        'karpathy_indented': json.dumps(karpathy, indent=2),
    }[layout]
    ann = tmp_path / 'ann.json'
    ann.write_text(text[:-5])
    line = text[:-5].count('\n') + 1
    for split in (None, 'train'):
        with pytest.raises(ValueError) as err:
            CaptionDataset(str(ann), data_root=str(tmp_path), image_root='img', split=split)
        message = str(err.value)
        assert f"'{ann}': " in message and 'malformed JSON' in message
        assert 'the text ends before the JSON is complete (truncated file?)' in message
        assert f'line {line}' in message and 'JSON object' not in message
    if layout == 'json_lines_named_json':  # the good first line is kept with skip_bad_samples
        ds = CaptionDataset(
            str(ann), data_root=str(tmp_path), image_root='img', skip_bad_samples=True
        )
        assert len(ds) == 1 and ds.num_bad_entries == 1
