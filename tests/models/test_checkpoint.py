"""Backbone-level ``pretrained=`` loading: legacy BERT names, and strict keys with a documented allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import minilm_path
from vlreg.models.backbones import BertTextBackbone, TimmViTBackbone
from vlreg.models.fusion import BertFusion
from vlreg.models.heads import MLMHead

MINILM = dict(vocab_size=30522, hidden_size=384, num_heads=12, intermediate_size=1536)


@pytest.fixture(scope='module')
def minilm() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(minilm_path()) / 'model.safetensors'))


@pytest.fixture(scope='module')
def small(minilm) -> dict[str, torch.Tensor]:
    """MiniLM with its first 100 word / 64 position embeddings (a fast file for the error cases)."""
    out = dict(minilm)
    out['embeddings.word_embeddings.weight'] = minilm['embeddings.word_embeddings.weight'][:100]
    out['embeddings.position_embeddings.weight'] = minilm['embeddings.position_embeddings.weight'][
        :64
    ]
    out['embeddings.position_ids'] = minilm['embeddings.position_ids'][:, :64]
    return out


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original bert-base-uncased naming: ``bert.`` prefix, ``LayerNorm.gamma`` / ``.beta``."""
    out = {}
    for key, value in state.items():
        key = key.replace('LayerNorm.weight', 'LayerNorm.gamma').replace(
            'LayerNorm.bias', 'LayerNorm.beta'
        )
        out['bert.' + key] = value.clone()
    return out


def _save(state: dict[str, torch.Tensor], path: Path) -> str:
    torch.save(state, path)
    return str(path)


def _text(pretrained: str, small: bool = False) -> BertTextBackbone:
    sizes = dict(MINILM, vocab_size=100, max_position_embeddings=64) if small else MINILM
    model = BertTextBackbone(num_layers=3, pretrained=pretrained, **sizes)
    model.init_weights()
    return model


def _fusion(pretrained: str) -> BertFusion:
    model = BertFusion(
        hidden_size=384,
        encoder_width=64,
        num_layers=3,
        num_heads=12,
        intermediate_size=1536,
        layer_offset=3,
        pretrained=pretrained,
    )
    model.init_weights()
    return model


def test_legacy_layernorm_names_load_the_same_tensors(minilm, tmp_path: Path) -> None:
    # the original bert-base-uncased layout: bert.* (pooler included) beside the pre-training heads
    state = _legacy(minilm)
    state['cls.seq_relationship.weight'] = torch.zeros(2, 384)
    state['cls.predictions.transform.LayerNorm.gamma'] = torch.ones(384)
    legacy = _save(state, tmp_path / 'legacy.bin')
    assert any(k.endswith('LayerNorm.gamma') for k in torch.load(legacy, weights_only=True))
    for pretrained in (minilm_path(), legacy):
        text, fusion = _text(pretrained), _fusion(pretrained)
        # every tensor equals the file's, read here by its Hugging Face name
        for key, value in text.state_dict().items():
            assert torch.equal(value, minilm[key]), key
        for key, value in fusion.state_dict().items():
            if 'crossattention' in key:
                continue
            index, _, tail = key.removeprefix('layer.').partition('.')
            assert torch.equal(value, minilm[f'encoder.layer.{3 + int(index)}.{tail}']), key
    # the LayerNorms are the trained ones, not the initial 1 / 0
    ln = minilm['encoder.layer.4.output.LayerNorm.weight']
    assert not torch.equal(ln, torch.ones_like(ln))
    assert torch.equal(fusion.layer[1].output.LayerNorm.weight, ln)


@pytest.mark.parametrize(
    'dropped', ['embeddings.LayerNorm.gamma', 'encoder.layer.1.attention.output.LayerNorm.beta']
)
def test_text_backbone_missing_layernorm_raises(small, tmp_path: Path, dropped: str) -> None:
    state = _legacy(small)
    del state['bert.' + dropped]
    path = _save(state, tmp_path / 'missing.bin')
    expected = dropped.replace('gamma', 'weight').replace('beta', 'bias')
    with pytest.raises(KeyError, match=expected.replace('.', r'\.')):
        _text(path, small=True)


def test_fusion_missing_layernorm_raises(small, tmp_path: Path) -> None:
    state = dict(small)
    del state['encoder.layer.5.output.LayerNorm.weight']  # fusion layer 2 (offset 3)
    with pytest.raises(KeyError, match=r'layer\.2\.output\.LayerNorm\.weight'):
        _fusion(_save(state, tmp_path / 'missing.bin'))
    # the text backbone (layers 0-2) does not read layer 5: it loads
    _text(str(tmp_path / 'missing.bin'), small=True)


def test_too_few_layers_raise(small, tmp_path: Path) -> None:
    model = BertTextBackbone(
        num_layers=7,
        pretrained=_save(small, tmp_path / 's.bin'),
        **dict(MINILM, vocab_size=100, max_position_embeddings=64),
    )
    with pytest.raises(KeyError, match=r'encoder\.layer\.6\.'):
        model.init_weights()


def test_unknown_and_duplicate_keys_raise(small, tmp_path: Path) -> None:
    minilm = small
    # a vlreg checkpoint given where a BERT file is expected
    foreign = {f'text_backbone.{k}': v for k, v in minilm.items()}
    with pytest.raises(KeyError, match='text_backbone.embeddings'):
        _text(_save(foreign, tmp_path / 'foreign.bin'), small=True)
    # an unexpected key inside the layers this part reads
    odd = dict(minilm, **{'encoder.layer.0.attention.self.gate.weight': torch.zeros(3)})
    with pytest.raises(KeyError, match=r'encoder\.layer\.0\.attention\.self\.gate\.weight'):
        _text(_save(odd, tmp_path / 'odd.bin'), small=True)
    # one tensor under both the legacy and today's name
    both = dict(minilm, **{'embeddings.LayerNorm.gamma': minilm['embeddings.LayerNorm.weight']})
    with pytest.raises(ValueError, match='LayerNorm.gamma'):
        _text(_save(both, tmp_path / 'both.bin'), small=True)


def test_mlm_head_legacy_names(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    head_state = {
        'transform.dense.weight': torch.randn(16, 16, generator=g),
        'transform.dense.bias': torch.randn(16, generator=g),
        'transform.LayerNorm.weight': torch.rand(16, generator=g) + 0.5,
        'transform.LayerNorm.bias': torch.randn(16, generator=g),
        'bias': torch.randn(50, generator=g),
        'decoder.weight': torch.randn(50, 16, generator=g),
    }
    legacy = {
        'cls.predictions.'
        + k.replace('LayerNorm.weight', 'LayerNorm.gamma').replace(
            'LayerNorm.bias', 'LayerNorm.beta'
        ): v
        for k, v in head_state.items()
    }
    legacy['cls.seq_relationship.weight'] = torch.zeros(2, 16)
    head = MLMHead(hidden_size=16, vocab_size=50, pretrained=_save(legacy, tmp_path / 'h.bin'))
    head.init_weights()
    for key in (
        'transform.dense.weight',
        'transform.LayerNorm.weight',
        'transform.LayerNorm.bias',
        'bias',
    ):
        assert torch.equal(head.state_dict()[key], head_state[key]), key
    del legacy['cls.predictions.transform.LayerNorm.gamma']
    head = MLMHead(hidden_size=16, vocab_size=50, pretrained=_save(legacy, tmp_path / 'h2.bin'))
    with pytest.raises(KeyError, match=r'transform\.LayerNorm\.weight'):
        head.init_weights()
    # a BERT file without an MLM head cannot fill one
    head = MLMHead(hidden_size=384, vocab_size=30522, pretrained=minilm_path())
    with pytest.raises(KeyError, match='cls.predictions'):
        head.init_weights()


def test_vit_backbone_strict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    kw = dict(model_name='vit_tiny_patch16_224', img_size=32, embed_dim=32, depth=1, num_heads=2)
    state = TimmViTBackbone(**kw).vit.state_dict()
    model = TimmViTBackbone(pretrained=_save(state, tmp_path / 'vit.pth'), **kw)
    model.init_weights()
    assert all(torch.equal(v, state[k]) for k, v in model.vit.state_dict().items())
    del state['blocks.0.norm1.weight']
    model = TimmViTBackbone(pretrained=_save(state, tmp_path / 'vit2.pth'), **kw)
    with pytest.raises(KeyError, match=r'blocks\.0\.norm1\.weight'):
        model.init_weights()


def test_allow_list_is_documented_and_enforced() -> None:
    from vlreg.models.utils.checkpoint import ALLOWED_MISSING, load_into

    assert all(isinstance(reason, str) and len(reason) > 20 for reason in ALLOWED_MISSING.values())
    module = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match='allow-list'):
        load_into(module, {'weight': torch.zeros(2, 2)}, 'test', expect_missing=('bias',))
    with pytest.raises(KeyError, match='bias'):
        load_into(module, {'weight': torch.zeros(2, 2)}, 'test')
    pair = torch.nn.ModuleDict(
        dict(attn=torch.nn.Linear(2, 2), crossattention=torch.nn.Linear(2, 2))
    )
    state = {'attn.weight': torch.ones(2, 2), 'attn.bias': torch.ones(2)}
    missing, _ = load_into(pair, state, 'test', expect_missing=('crossattention',))
    assert sorted(missing) == ['crossattention.bias', 'crossattention.weight']
    assert torch.equal(pair['attn'].weight, torch.ones(2, 2))
