"""Model names resolve offline through the Hugging Face cache layout, as huggingface_hub does."""

from __future__ import annotations

import os

import pytest
import torch

from tests.models.tiny import tiny_model
from vlreg.models.backbones.bert import BertTextBackbone
from vlreg.models.utils.checkpoint import load_state_dict_file
from vlreg.utils.paths import resolve_path


def _cache_repo(cache, repo, files, rev='0123abcd', stale='ffff0000'):
    base = cache / ('models--' + repo.replace('/', '--'))
    for r in (stale, rev):  # an older snapshot too: refs/main must pick the right one
        (base / 'snapshots' / r).mkdir(parents=True)
    (base / 'refs').mkdir()
    (base / 'refs' / 'main').write_text(rev)
    for name, write in files.items():
        write(base / 'snapshots' / rev / name)
    return base / 'snapshots' / rev


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'hub'))
    return tmp_path / 'hub'


def test_bert_name_loads_from_the_cache(cache):
    from safetensors.torch import save_file

    text = tiny_model(seed=3).text_backbone
    weights = {k: v.contiguous() for k, v in text.state_dict().items()}
    folder = _cache_repo(
        cache,
        'bert-base-uncased',
        {
            'model.safetensors': lambda p: save_file(weights, str(p)),
            'config.json': lambda p: p.write_text('{}'),
        },
    )
    assert resolve_path('bert-base-uncased') == str(folder)
    from huggingface_hub import try_to_load_from_cache  # the reference resolver

    ref = try_to_load_from_cache('bert-base-uncased', 'model.safetensors', cache_dir=str(cache))
    assert os.path.dirname(ref) == str(folder)
    loaded = load_state_dict_file('bert-base-uncased')
    torch.testing.assert_close(
        loaded['embeddings.word_embeddings.weight'],
        weights['embeddings.word_embeddings.weight'],
        atol=0,
        rtol=0,
    )
    fresh = BertTextBackbone(
        vocab_size=120,
        hidden_size=64,
        num_layers=2,
        num_heads=2,
        intermediate_size=128,
        max_position_embeddings=32,
        pretrained='bert-base-uncased',
    )
    fresh.init_weights()
    torch.testing.assert_close(
        fresh.state_dict()['encoder.layer.1.output.dense.weight'],
        weights['encoder.layer.1.output.dense.weight'],
        atol=0,
        rtol=0,
    )


def test_timm_name_is_looked_up_under_the_timm_org(cache):
    folder = _cache_repo(
        cache,
        'timm/vit_tiny_patch16_224.augreg_in21k',
        {'model.safetensors': lambda p: p.write_bytes(b'x')},
    )
    assert resolve_path('vit_tiny_patch16_224.augreg_in21k') == str(folder)
    assert resolve_path('timm/vit_tiny_patch16_224.augreg_in21k') == str(folder)


def test_absent_name_says_which_file_to_put_where(cache):
    with pytest.raises(FileNotFoundError) as err:
        resolve_path('bert-base-uncased')
    msg = str(err.value)
    assert str(cache / 'models--bert-base-uncased' / 'snapshots' / 'main') in msg
    assert 'model.safetensors' in msg and 'vocab.txt' in msg
    with pytest.raises(FileNotFoundError, match='models--timm--vit_base_patch16_224'):
        resolve_path('vit_base_patch16_224')


def test_paths_are_not_taken_for_names(cache, tmp_path, monkeypatch):
    assert resolve_path('work_dirs/run/epoch_1.pth') == 'work_dirs/run/epoch_1.pth'
    assert resolve_path('data/pretrained/bert-base-uncased') == 'data/pretrained/bert-base-uncased'
    local = tmp_path / 'bert-local'
    local.mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_path('bert-local') == 'bert-local'
