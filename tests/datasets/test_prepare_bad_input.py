"""``tools/prepare_data.py`` on broken inputs: every converter names the file and the entry, skips
and counts bad entries, and turns an unreadable file into ``error: ...`` with exit code 1 (issue 11,
item 5)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _main() -> Callable[[list[str]], int]:
    spec = importlib.util.spec_from_file_location(
        'prepare_data_tool', ROOT / 'tools' / 'prepare_data.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 16, 3), 60, np.uint8)).save(path)


def _retrieval(tmp: Path) -> tuple[list[str], Path, list, Callable[[list], str]]:
    images = [
        dict(filename=f'{n}.png', split='train', imgid=i, sentences=[{'raw': f'a {n} box'}])
        for i, n in enumerate(('red', 'blue'))
    ]
    src = tmp / 'dataset_mini.json'
    args = ['retrieval', '--karpathy', str(src), '--out-dir', str(tmp / 'out'), '--splits', 'train']
    return args, src, images, lambda e: json.dumps(dict(images=e, dataset='mini'))


def _vqa(tmp: Path) -> tuple[list[str], Path, list, Callable[[list], str]]:
    questions = [dict(question_id=i, image_id=7 + i, question=f'what is {i}?') for i in (1, 2)]
    anns = [
        dict(
            question_id=i,
            image_id=7 + i,
            answers=[{'answer': 'yes'}] * 3,
            multiple_choice_answer='yes',
        )
        for i in (1, 2)
    ]
    (tmp / 'ann.json').write_text(json.dumps(dict(data_subtype='train2014', annotations=anns)))
    src = tmp / 'questions.json'
    args = [
        'vqa',
        '--questions',
        str(src),
        '--annotations',
        str(tmp / 'ann.json'),
        '--out-dir',
        str(tmp / 'out'),
        '--min-count',
        '1',
    ]
    return args, src, questions, lambda e: json.dumps(dict(data_subtype='train2014', questions=e))


def _lines(entries: list) -> str:
    return '\n'.join(json.dumps(e) for e in entries) + '\n'


def _nlvr2(tmp: Path) -> tuple[list[str], Path, list, Callable[[list], str]]:
    entries = [dict(identifier=f'dev-{i}-0-0', sentence=f'{i} boxes', label='True') for i in (1, 2)]
    for i in (1, 2):
        for k in (0, 1):
            _image(tmp / 'img' / f'dev-{i}-0-img{k}.png')
    src = tmp / 'dev.json'
    args = [
        'nlvr2',
        '--ann-file',
        str(src),
        '--image-root',
        str(tmp / 'img'),
        '--out',
        str(tmp / 'out' / 'dev.json'),
    ]
    return args, src, entries, _lines


def _snli_ve(tmp: Path) -> tuple[list[str], Path, list, Callable[[list], str]]:
    entries = [
        dict(Flickr30K_ID=n, sentence2=f'a {n} box', gold_label='entailment')
        for n in ('red', 'blue')
    ]
    for n in ('red', 'blue'):
        _image(tmp / 'img' / f'{n}.jpg')
    src = tmp / 've.jsonl'
    args = [
        'snli_ve',
        '--ann-file',
        str(src),
        '--image-root',
        str(tmp / 'img'),
        '--out',
        str(tmp / 'out' / 've.json'),
    ]
    return args, src, entries, _lines


def _refcoco(tmp: Path) -> tuple[list[str], Path, list, Callable[[list], str]]:
    instances = dict(
        images=[dict(id=i, file_name=f'{i}.png', width=16, height=12) for i in (1, 2)],
        annotations=[dict(id=10 + i, image_id=i, bbox=[1, 1, 4, 4], category_id=3) for i in (1, 2)],
        categories=[dict(id=3, name='box')],
    )
    (tmp / 'instances.json').write_text(json.dumps(instances))
    captions = [dict(image_id=i, caption=f'box number {i}') for i in (1, 2)]
    src = tmp / 'captions.json'
    args = [
        'refcoco',
        '--captions',
        str(src),
        '--instances',
        str(tmp / 'instances.json'),
        '--out-dir',
        str(tmp / 'out'),
        '--image-prefix',
        '',
    ]
    return args, src, captions, lambda e: json.dumps(dict(annotations=e))


CONVERTERS = dict(retrieval=_retrieval, vqa=_vqa, nlvr2=_nlvr2, snli_ve=_snli_ve, refcoco=_refcoco)
# how each converter names entry 0 of the file it reads
ENTRY_0 = dict(
    retrieval='images[0]', vqa='entry 0', nlvr2='entry 0', snli_ve='entry 0', refcoco='annotation 0'
)


@pytest.mark.parametrize('name', list(CONVERTERS))
def test_good_input_converts(tmp_path: Path, name: str, capsys) -> None:
    args, src, entries, dump = CONVERTERS[name](tmp_path)
    src.write_text(dump(entries))
    assert _main()(args) == 0, capsys.readouterr().out
    written = [p for p in (tmp_path / 'out').rglob('*.json') if 'proposals' not in p.name]
    assert written and all(json.loads(p.read_text()) for p in written)


@pytest.mark.parametrize('name', list(CONVERTERS))
def test_null_entry_is_skipped_naming_file_and_entry(tmp_path: Path, name: str, capsys) -> None:
    args, src, entries, dump = CONVERTERS[name](tmp_path)
    src.write_text(dump([None, entries[1]]))
    assert _main()(args) == 0
    out = capsys.readouterr().out
    assert src.name in out and ENTRY_0[name] in out and 'skipped' in out


@pytest.mark.parametrize('name', list(CONVERTERS))
def test_non_utf8_input_is_an_error_with_the_offset(tmp_path: Path, name: str, capsys) -> None:
    args, src, entries, dump = CONVERTERS[name](tmp_path)
    data = dump(entries).encode()
    offset = data.index(b'box' if b'box' in data else b'what')
    src.write_bytes(data[:offset] + b'\xff' + data[offset + 1 :])
    assert _main()(args) == 1
    out = capsys.readouterr().out
    assert out.startswith('error: ') and f"{src.name}' is not UTF-8 text" in out
    assert f'byte offset {offset} ' in out


@pytest.mark.parametrize('name', list(CONVERTERS))
def test_truncated_input_is_reported_as_truncated(tmp_path: Path, name: str, capsys) -> None:
    args, src, entries, dump = CONVERTERS[name](tmp_path)
    text = dump(entries).rstrip('\n')
    src.write_text(text[:-8])
    rc = _main()(args)
    out = capsys.readouterr().out
    assert f"{src.name}'" in out and 'malformed JSON' in out
    assert 'the text ends before the JSON is complete (truncated file?)' in out
    if name in ('nlvr2', 'snli_ve'):  # JSON lines: the cut line is skipped, the first kept
        assert rc == 0 and 'line 2' in out
    else:
        assert rc == 1 and out.startswith('error: ')
