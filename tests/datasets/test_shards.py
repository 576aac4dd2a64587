"""Streaming pre-training data from tar shards (issue 10, item 9): the converter, the dataset's
rank / worker split, order, resume, bad samples, and the real pre-training pipeline."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.runner import IterBasedTrainLoop
from PIL import Image
from torch.utils.data import DataLoader

import vlreg.datasets.shards as shards_module
import vlreg.engine.shard_stream as stream_module
from tests.conftest import minilm_path
from vlreg.datasets import CaptionDataset, ShardedCaptionDataset
from vlreg.datasets.prepare import shards as converter
from vlreg.datasets.shard_format import ShardError, expand_braces, member_key
from vlreg.datasets.transforms import LoadImage, clean_caption
from vlreg.engine import ShardStream, ShardStreamHook

ROOT = Path(__file__).resolve().parents[2]


# --- fixtures: tiny real images, an ALBEF file, its shards -----------------------------------------
def _image_bytes(i: int, fmt: str = 'JPEG', size: int = 16) -> bytes:
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 255, (size, size + i % 3, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _albef_file(tmp: Path, num_images: int = 12, captions: int = 2) -> tuple[Path, list[dict]]:
    """``num_images`` images (every third a PNG) with ``captions`` captions each, in ALBEF json."""
    (tmp / 'img').mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(num_images):
        ext, fmt = ('png', 'PNG') if i % 3 == 0 else ('jpg', 'JPEG')
        (tmp / 'img' / f'{i}.{ext}').write_bytes(_image_bytes(i, fmt))
        caps = [f'A Photo, number {i}-{j}!' for j in range(captions)]
        entries.append(dict(image=f'img/{i}.{ext}', caption=caps, image_id=f'im{i}'))
    ann = tmp / 'captions.json'
    ann.write_text(json.dumps(entries))
    return ann, entries


def _convert(ann: Path, root: Path, out: Path, per_shard: int, **extra: Any) -> int:
    parser = argparse.ArgumentParser()
    converter.add_arguments(parser)
    argv = ['--ann-file', str(ann), '--image-root', str(root), '--out', str(out)]
    argv += ['--samples-per-shard', str(per_shard)]
    for key, value in extra.items():
        argv += [f'--{key.replace("_", "-")}'] + ([] if value is True else [str(value)])
    return converter.run(parser.parse_args(argv))


@pytest.fixture(scope='module')
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """12 images x 2 captions = 24 samples in 8 shards of 3."""
    tmp = tmp_path_factory.mktemp('shards')
    ann, entries = _albef_file(tmp)
    assert _convert(ann, tmp, tmp / 'out', per_shard=3) == 0
    return tmp / 'out', entries


def _dataset(out: Path, **kwargs: Any) -> ShardedCaptionDataset:
    return ShardedCaptionDataset(shards='shard-{000000..000007}.tar', data_root=str(out), **kwargs)


def _ids(samples: list[dict]) -> list[tuple[str, int]]:
    return [(os.path.basename(s['ann_file']), s['ann_index']) for s in samples]


def _world(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    for module in (shards_module, stream_module):
        monkeypatch.setattr(module, 'get_dist_info', lambda: (rank, world))


class _Count:
    """A pipeline step counting the samples it sees (in this process)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, results: dict) -> dict:
        self.calls += 1
        return results


# --- names --------------------------------------------------------------------------------------
def test_brace_ranges_and_member_keys() -> None:
    assert expand_braces('s-{000..002}.tar') == ['s-000.tar', 's-001.tar', 's-002.tar']
    assert expand_braces('{0..1}/{8..10}') == ['0/8', '0/9', '0/10', '1/8', '1/9', '1/10']
    assert expand_braces('plain.tar') == ['plain.tar']
    with pytest.raises(ValueError, match='empty'):
        expand_braces('{5..3}.tar')
    assert member_key('a/b/000001.seg.JPG') == ('a/b/000001', 'seg.jpg')
    assert member_key('000001.json') == ('000001', 'json')


def test_missing_shards_and_globs_name_the_files(corpus: tuple[Path, list]) -> None:
    out, _ = corpus
    with pytest.raises(
        FileNotFoundError, match=r"1 of 9 shard files not found: '.*shard-000008\.tar'"
    ):
        ShardedCaptionDataset('shard-{000000..000008}.tar', data_root=str(out))
    with pytest.raises(FileNotFoundError, match='no shard file matches'):
        ShardedCaptionDataset('nothing-*.tar', data_root=str(out))
    assert len(ShardedCaptionDataset('shard-*.tar', data_root=str(out)).shards) == 8
    listed = ShardedCaptionDataset([str(out / 'shard-000001.tar'), 'shard-000000.tar'], str(out))
    assert [os.path.basename(s) for s in listed.shards] == ['shard-000001.tar', 'shard-000000.tar']


# --- the converter ------------------------------------------------------------------------------
def test_conversion_round_trip(corpus: tuple[Path, list]) -> None:
    out, entries = corpus
    index = json.loads((out / 'index.json').read_text())
    assert [s['samples'] for s in index['shards']] == [3] * 8
    assert index['total'] == 24 and index['images'] == 12 and index['skipped'] == 0
    expected = sorted(
        (cap, (out.parent / e['image']).read_bytes()) for e in entries for cap in e['caption']
    )
    found = []
    for shard in index['shards']:
        with tarfile.open(out / shard['name']) as archive:
            members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
        keys = sorted({member_key(n)[0] for n in members})
        assert len(keys) == shard['samples']
        for key in keys:
            meta = json.loads(members[f'{key}.json'])
            image = next(v for n, v in members.items() if n.startswith(key) and n != f'{key}.json')
            found.append((meta['caption'], image))
            assert meta['ori_image_id'] == entries[meta['image_id']]['image_id']
    assert sorted(found) == expected
    # read back by the dataset: every caption (cleaned) with its image's bytes, each once
    samples = list(_dataset(out))
    assert sorted((s['caption'], s['img_bytes']) for s in samples) == sorted(
        (clean_caption(c), b) for c, b in expected
    )
    assert {s['ori_image_id'] for s in samples} == {e['image_id'] for e in entries}
    assert len({s['image_id'] for s in samples}) == 12


def test_converter_reports_and_skips_bad_entries(tmp_path: Path, capsys) -> None:
    ann, entries = _albef_file(tmp_path, num_images=3, captions=1)
    (tmp_path / 'img' / 'empty.jpg').write_bytes(b'')
    entries += [
        dict(image='img/missing.jpg', caption='a dog'),
        dict(image='img/empty.jpg', caption='a cat'),
        dict(image='img/1.jpg', caption=['fine caption', 7, '?!']),
        dict(caption='no image key'),
    ]
    ann.write_text(json.dumps(entries))
    assert _convert(ann, tmp_path, tmp_path / 'out', per_shard=2) == 0
    printed = capsys.readouterr().out
    assert 'wrote 4 entries' in printed and 'skipped 5' in printed
    assert 'missing.jpg' in printed and 'is empty' in printed and "missing key 'image'" in printed
    assert 'caption 1 is not a string' in printed and 'caption 2 is empty after cleaning' in printed
    index = json.loads((tmp_path / 'out' / 'index.json').read_text())
    assert [s['samples'] for s in index['shards']] == [2, 2]
    assert not [n for n in os.listdir(tmp_path / 'out') if n.endswith('.tmp')]
    # refuses to mix with earlier shards unless told; --overwrite removes stale ones
    assert _convert(ann, tmp_path, tmp_path / 'out', per_shard=1) == 1
    assert _convert(ann, tmp_path, tmp_path / 'out', per_shard=4, overwrite=True) == 0
    assert sorted(os.listdir(tmp_path / 'out')) == ['index.json', 'shard-000000.tar']


# --- splitting and order ------------------------------------------------------------------------
def test_two_ranks_by_two_workers_cover_every_sample_once(
    corpus: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = corpus
    per_rank = []
    for rank in (0, 1):
        _world(monkeypatch, rank, 2)
        ds = _dataset(out, shuffle_buffer=2)
        loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=lambda b: b)
        got = [s for batch in loader for s in batch]
        per_rank.append(_ids(got))
        assert len(got) == len(ds) == 12  # the index's count for this rank's shards
        workers = {s['sample_idx'] % 2 for s in got}
        assert workers == {0, 1}
    assert not set(per_rank[0]) & set(per_rank[1])
    everything = per_rank[0] + per_rank[1]
    assert len(everything) == len(set(everything)) == 24


def test_too_few_shards_for_the_consumers(
    corpus: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = corpus
    ds = _dataset(out)
    with pytest.raises(ValueError, match=r'8 shards for 3 ranks x 3 dataloader workers = 9'):
        ds.assigned_shards(0, 0, 3, 0, 3)
    _world(monkeypatch, 0, 9)
    with pytest.raises(ValueError, match='9 consumers'):
        list(ds)


def test_shards_reshuffle_every_epoch_deterministically(corpus: tuple[Path, list]) -> None:
    out, _ = corpus

    def order(epoch: int, **kwargs: Any) -> list:
        ds = _dataset(out, **kwargs)
        ds.set_epoch(epoch)
        return _ids(list(ds))

    first, second = order(0), order(1)
    assert sorted(first) == sorted(second) and first != second
    assert order(1) == second
    assert order(1, seed=5) != second
    buffered = order(1, shuffle_buffer=5)
    assert buffered == order(1, shuffle_buffer=5) and buffered != second
    assert sorted(buffered) == sorted(second)
    ds = _dataset(out)  # consecutive passes are consecutive epochs
    assert (_ids(list(ds)), _ids(list(ds))) == (first, second)
    assert _ids(list(_dataset(out, shuffle_shards=False)))[:3] == [
        ('shard-000000.tar', i) for i in range(3)
    ]


# --- resume -------------------------------------------------------------------------------------
def test_resume_at_n_equals_the_tail_without_decoding_the_head(corpus: tuple[Path, list]) -> None:
    out, _ = corpus
    pipeline = [dict(type='LoadImage'), dict(type='RandomResizedCrop', size=8)]
    full = _dataset(out, shuffle_buffer=4, pipeline=pipeline)
    full.set_epoch(3)
    samples = list(full)
    counter = _Count()
    resumed = _dataset(out, shuffle_buffer=4, pipeline=[counter, *pipeline])
    resumed.set_epoch(3)
    resumed.skip(10)
    tail = list(resumed)
    assert counter.calls == 14
    assert _ids(tail) == _ids(samples[10:])
    for a, b in zip(tail, samples[10:]):  # the random crops too (seed_pipeline)
        assert np.array_equal(a['img'], b['img']) and a['caption'] == b['caption']
    # state_dict after N samples taken, into a fresh dataset
    ds = _dataset(out, shuffle_buffer=4)
    ds.set_epoch(3)
    it = iter(ds)
    head = [next(it) for _ in range(7)]
    again = _dataset(out, shuffle_buffer=4)
    again.load_state_dict(ds.state_dict())
    assert _ids(head + list(again)) == _ids(samples)


def _loop(loader: DataLoader, iteration: int) -> IterBasedTrainLoop:
    """An ``IterBasedTrainLoop`` as far as the hook sees it (no Runner)."""
    loop = object.__new__(IterBasedTrainLoop)
    loop.dataloader, loop._iter, loop.dataloader_iterator = loader, iteration, iter(loader)
    return loop


def _batch_ids(batch: dict) -> list[tuple[Any, Any]]:
    return [(s.metainfo['sample_idx'], s.metainfo['caption']) for s in batch['data_samples']]


def test_hook_resumes_iter_based_training_with_workers(corpus: tuple[Path, list]) -> None:
    out, _ = corpus
    pipeline = [dict(type='LoadImage'), dict(type='PackInputs')]

    def loader() -> DataLoader:
        ds = _dataset(out, shuffle_buffer=3, pipeline=pipeline)
        return DataLoader(ds, batch_size=2, num_workers=2, collate_fn=pseudo_collate)

    # uninterrupted: 12 batches per epoch; 5 trained, then 9 more (into the second epoch)
    hook = ShardStreamHook()
    runner = SimpleNamespace(train_loop=_loop(loader(), 0), iter=0, max_iters=100)
    hook.before_train(runner)
    stream = runner.train_loop.dataloader_iterator
    assert isinstance(stream, ShardStream)
    trained = []
    for i in range(5):
        trained.append(_batch_ids(next(stream)))
        runner.iter = i
        hook.after_train_iter(runner, i)
    checkpoint: dict = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    later = [_batch_ids(next(stream)) for _ in range(9)]
    assert stream.epoch == 1
    hook.after_train(runner)
    assert checkpoint['meta']['shard_stream'][0]['iter'] == 5

    # resumed at iteration 5: the loop's 5 skipping next() calls read nothing
    resumed = ShardStreamHook()
    resumed.after_load_checkpoint(runner, checkpoint)
    runner2 = SimpleNamespace(train_loop=_loop(loader(), 5), iter=5, max_iters=100)
    resumed.before_train(runner2)
    it = runner2.train_loop.dataloader_iterator
    assert [next(it) for _ in range(5)] == [None] * 5
    assert [_batch_ids(next(it)) for _ in range(9)] == later
    resumed.after_train(runner2)


def test_hook_refuses_epoch_based_loops(corpus: tuple[Path, list]) -> None:
    runner = SimpleNamespace(train_loop=SimpleNamespace(), iter=0)
    with pytest.raises(TypeError, match='IterBasedTrainLoop'):
        ShardStreamHook().before_train(runner)


# --- bad samples --------------------------------------------------------------------------------
def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, 'w') as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _caption(text: str) -> bytes:
    return json.dumps(dict(caption=text)).encode()


@pytest.fixture
def logged() -> Any:
    """The messages MMEngine's current logger writes during a test."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_bad_samples_are_counted_and_skipped(tmp_path: Path, logged: list[str]) -> None:
    good = [(f'g{i}.jpg', _image_bytes(i)) for i in range(3)]
    _tar(
        tmp_path / 'a.tar',
        [
            good[0],
            ('g0.json', _caption('a good one')),
            ('bad.jpg', b'\xff\xd8 these are not jpeg bytes'),
            ('bad.json', _caption('undecodable image')),
            ('nocap.jpg', _image_bytes(7)),
            ('noimg.txt', b'a caption without its image'),
            ('empty.png', _image_bytes(8, 'PNG')),
            ('empty.txt', b'  ?!  '),
            ('broken.jpg', _image_bytes(9)),
            ('broken.json', b'{"caption": '),
            good[1],
            ('g1.txt', 'plain text caption, UTF-8: café'.encode()),
        ],
    )
    _tar(
        tmp_path / 'b.tar',
        [
            good[2],
            ('g2.json', _caption('before the cut')),
            *[(f'z{i}.jpg', _image_bytes(10 + i)) for i in range(4)],
        ],
    )
    data = (tmp_path / 'b.tar').read_bytes()
    with tarfile.open(tmp_path / 'b.tar') as archive:
        cut = archive.getmember('z1.jpg').offset_data + 10
    (tmp_path / 'b.tar').write_bytes(data[:cut])  # inside z1.jpg; z0 has no caption
    kwargs = dict(pipeline=[dict(type='LoadImage')], shuffle_shards=False)
    ds = ShardedCaptionDataset(['a.tar', 'b.tar'], str(tmp_path), log_first=10, **kwargs)
    samples = list(ds)
    assert [s['caption'] for s in samples] == [
        'a good one',
        'plain text caption utf 8 café',
        'before the cut',
    ]
    assert dict(ds.bad_counts) == dict(
        undecodable=1, no_caption=2, no_image=1, empty_caption=1, bad_caption=1, corrupt_tar=1
    )
    text = '\n'.join(logged)
    assert "member 'bad.jpg' of shard '" + str(tmp_path / 'a.tar') in text
    assert "member 'noimg.*'" in text and '[no_image]' in text
    assert str(tmp_path / 'b.tar') in text and "[corrupt_tar]: unreadable at member 'z" in text
    # rate-limited: the first log_first one by one, then one line per log_every
    logged.clear()
    ds = ShardedCaptionDataset(
        ['a.tar', 'b.tar'], str(tmp_path), log_first=2, log_every=3, **kwargs
    )
    assert len(list(ds)) == 3 and ds.num_bad == 7
    assert len([m for m in logged if 'ShardedCaptionDataset: skipped' in m]) == 2 + 2  # 1, 2, 3, 6


def test_truncated_shard_counts_what_its_index_promised(tmp_path: Path) -> None:
    members = [
        (f'{i}.{ext}', _image_bytes(i) if ext == 'jpg' else b'a caption')
        for i in range(6)
        for ext in ('jpg', 'txt')
    ]
    _tar(tmp_path / 'shard-000000.tar', members)
    index = dict(shards=[dict(name='shard-000000.tar', samples=6)])
    (tmp_path / 'index.json').write_text(json.dumps(index))
    data = (tmp_path / 'shard-000000.tar').read_bytes()
    with tarfile.open(tmp_path / 'shard-000000.tar') as archive:
        offsets = [m.offset_data for m in archive.getmembers()]
    # cut inside the data of 2.jpg: samples 0 and 1 survive, 2..5 are lost
    (tmp_path / 'shard-000000.tar').write_bytes(data[: offsets[4] + 10])
    ds = ShardedCaptionDataset('shard-000000.tar', str(tmp_path))
    assert [s['ann_index'] for s in ds] == [0, 1]
    assert dict(ds.bad_counts) == dict(corrupt_tar=1, missing_samples=3)
    # cut between members, where tar reading cannot tell: the index still can
    (tmp_path / 'shard-000000.tar').write_bytes(data[: offsets[6] - 512])  # before 3.jpg's header
    ds = ShardedCaptionDataset('shard-000000.tar', str(tmp_path))
    assert len(list(ds)) == 3 and dict(ds.bad_counts) == dict(missing_samples=3)


def test_max_bad_fraction_names_the_shard(tmp_path: Path) -> None:
    members = []
    for i in range(4):
        members += [(f'{i}.jpg', _image_bytes(i) if i < 2 else b'junk'), (f'{i}.txt', b'a cap')]
    _tar(tmp_path / 'half.tar', members)
    kwargs = dict(data_root=str(tmp_path), pipeline=[dict(type='LoadImage')])
    with pytest.raises(ShardError, match=r"shard '.*half\.tar': 2 of its 4 samples are bad"):
        list(ShardedCaptionDataset('half.tar', max_bad_fraction=0.25, **kwargs))
    assert len(list(ShardedCaptionDataset('half.tar', max_bad_fraction=0.6, **kwargs))) == 2


def test_len_needs_the_index(corpus: tuple[Path, list], monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = corpus
    with pytest.raises(TypeError, match='no length'):
        len(_dataset(out, index_file=None))
    assert len(_dataset(out)) == _dataset(out).num_samples == 24
    _world(monkeypatch, 1, 2)
    assert len(_dataset(out)) == 12


# --- the pre-training pipeline ------------------------------------------------------------------
def test_load_image_decodes_bytes_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / 'x.png'
    path.write_bytes(_image_bytes(3, 'PNG'))
    from_file = LoadImage()(dict(img_path=str(path)))
    from_bytes = LoadImage()(dict(img_path='shard.tar/x.png', img_bytes=path.read_bytes()))
    assert np.array_equal(from_file['img'], from_bytes['img']) and 'img_bytes' not in from_bytes


def test_real_pretraining_pipeline_gives_caption_dataset_keys(corpus: tuple[Path, list]) -> None:
    out, _ = corpus
    cfg = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'datasets' / 'pretrain_shards.py'))
    tokenizer = dict(type='BertTokenizer', path=minilm_path())
    pipeline = []
    for step in cfg.train_pipeline_softmask:
        step = dict(step)
        if 'tokenizer' in step:
            step['tokenizer'] = tokenizer
        if step['type'] == 'RandomResizedCrop':
            step['size'] = 32
        pipeline.append(step)
    streamed = next(iter(_dataset(out, pipeline=pipeline)))
    listed = CaptionDataset(
        str(out.parent / 'captions.json'), image_root=str(out.parent), pipeline=pipeline
    )[0]
    assert set(streamed) == set(listed) == {'inputs', 'data_samples'}
    assert set(streamed['inputs']) == set(listed['inputs'])
    assert set(streamed['data_samples'].metainfo) == set(listed['data_samples'].metainfo)
    for key, value in listed['inputs'].items():
        assert streamed['inputs'][key].dtype == value.dtype, key
    assert streamed['inputs']['image'].shape == listed['inputs']['image'].shape == (3, 32, 32)
    assert isinstance(streamed['data_samples'].metainfo['image_id'], int)


def test_shard_leaf_config_trains_by_iterations_with_the_stream_hook() -> None:
    from mmengine.registry import DefaultScope

    from vlreg.registry import HOOKS

    path = ROOT / 'configs' / 'softmask' / 'softmask_vit-b16-bert-base_8xb64_4m-shards-300k.py'
    cfg = Config.fromfile(str(path))
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=300_000, val_interval=10_000)
    assert cfg.train_dataloader.sampler is None
    assert cfg.train_dataloader.dataset.type == 'ShardedCaptionDataset'
    steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert 'ImageView' in steps and 'AnnotateWords' in steps  # the soft-mask recipe's views
    assert all(not s.get('by_epoch', True) for s in cfg.param_scheduler)
    assert cfg.param_scheduler[-1]['end'] == cfg.train_cfg.max_iters
    assert not cfg.log_processor.by_epoch and not cfg.default_hooks.checkpoint.by_epoch
    with DefaultScope.overwrite_default_scope('vlreg'):  # no custom_imports needed
        hook = HOOKS.build(cfg.custom_hooks[-1])
    assert isinstance(hook, ShardStreamHook)
