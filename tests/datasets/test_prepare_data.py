"""tools/prepare_data.py: the NLVR2 and SNLI-VE converters on copies of the real official samples, with
bad entries added; the converted files must read back to the same samples as the official ones."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import shared_path
from vlreg.datasets.downstream import NLVR2Dataset, SNLIVEDataset
from vlreg.datasets.prepare import image_problem, nlvr2, progress, snli_ve


def test_progress_counts_every_item_and_prints_the_total(capsys) -> None:
    assert list(progress(range(7), desc='x', every=3)) == list(range(7))
    err = capsys.readouterr().err.split()
    assert err == ['x:', '3/7', 'x:', '6/7', 'x:', '7/7']


def test_image_problem_names_missing_empty_and_undecodable_files(tmp_path: Path) -> None:
    empty, junk = tmp_path / 'empty.jpg', tmp_path / 'junk.jpg'
    empty.write_bytes(b'')
    junk.write_bytes(b'not an image')
    assert 'not found' in image_problem(str(tmp_path / 'none.jpg'))
    assert 'is empty' in image_problem(str(empty))
    assert image_problem(str(junk)) is None  # existence only without decoding
    assert 'cannot be decoded' in image_problem(str(junk), decode=True)


def _fields(ds, keys):
    return [tuple(info[k] for k in keys) for info in ds.data_list]


def test_nlvr2_conversion_keeps_good_entries_and_reports_bad_ones(tmp_path: Path, capsys) -> None:
    src = shared_path('vl_task_samples')
    images = tmp_path / 'images'
    shutil.copytree(src / 'images' / 'nlvr2', images)
    lines = (src / 'nlvr2' / 'tiny-dev.json').read_text().splitlines()
    first = json.loads(lines[0])
    lines.append('{"identifier": broken')  # malformed line
    lines.append(json.dumps(dict(first, identifier='dev-999-0-0')))  # images absent
    lines.append(json.dumps(dict(first, label='maybe')))  # bad label
    ann = tmp_path / 'dev.json'
    ann.write_text('\n'.join(lines) + '\n')
    out = tmp_path / 'out' / 'dev_albef.json'
    args = argparse.Namespace(
        ann_file=str(ann),
        image_root=str(images),
        out=str(out),
        no_directory=False,
        decode_images=True,
    )
    assert nlvr2.run(args) == 0
    report = capsys.readouterr().out
    assert 'wrote 8 entries' in report and 'skipped 3' in report
    assert 'malformed JSON' in report and 'dev-999-0-img0.png' in report and "'maybe'" in report
    official = NLVR2Dataset(
        ann_file=str(src / 'nlvr2' / 'tiny-dev.json'), image_root=str(src / 'images' / 'nlvr2')
    )
    converted = NLVR2Dataset(ann_file=str(out), image_root=str(src / 'images' / 'nlvr2'))
    keys = ('img_path', 'img_path2', 'caption', 'label')
    assert _fields(converted, keys) == _fields(official, keys)


def test_snli_ve_conversion_skips_entries_without_gold_label(tmp_path: Path, capsys) -> None:
    src = shared_path('vl_task_samples')
    lines = (src / 'visual_entailment' / 'sample_pairs.jsonl').read_text().splitlines()
    first = json.loads(lines[0])
    lines.append(json.dumps(dict(first, gold_label='-')))
    lines.append(json.dumps(dict(first, Flickr30K_ID='404')))
    ann = tmp_path / 've.jsonl'
    ann.write_text('\n'.join(lines) + '\n')
    out = tmp_path / 've.json'
    image_root = src / 'images' / 'visual_entailment'
    args = argparse.Namespace(
        ann_file=str(ann), image_root=str(image_root), out=str(out), decode_images=False
    )
    assert snli_ve.run(args) == 0
    report = capsys.readouterr().out
    assert f'wrote {len(lines) - 2} entries' in report and 'skipped 2' in report
    assert 'gold_label "-"' in report and '404.jpg' in report
    official = SNLIVEDataset(
        ann_file=str(src / 'visual_entailment' / 'sample_pairs.jsonl'), image_root=str(image_root)
    )
    converted = SNLIVEDataset(ann_file=str(out), image_root=str(image_root))
    keys = ('img_path', 'caption', 'label', 'premise', 'pair_id')
    assert _fields(converted, keys) == _fields(official, keys)


def test_a_conversion_with_nothing_usable_fails(tmp_path: Path) -> None:
    ann = tmp_path / 've.jsonl'
    ann.write_text(json.dumps(dict(Flickr30K_ID='1', sentence2='a dog.', gold_label='-')) + '\n')
    args = argparse.Namespace(
        ann_file=str(ann),
        image_root=str(tmp_path),
        out=str(tmp_path / 'o.json'),
        decode_images=False,
    )
    with pytest.raises(ValueError, match='no usable annotation entry'):
        snli_ve.run(args)
