"""Config mistakes fail when the model / config is built, naming the key and the allowed values
(issue 11, item 7). The queue-size case is ``tests/models/test_losses.py::
test_queue_is_a_ring_buffer_of_any_size``: any size works now."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from tests.models.tiny import tiny_model
from vlreg.datasets.tokenizers import SyntheticTokenizer, check_tokenizer_vocab
from vlreg.registry import BACKBONES

ROOT = Path(__file__).resolve().parents[1]
TINY_VIT = dict(
    type='TimmViTBackbone', model_name='vit_tiny_patch16_224', embed_dim=64, depth=2, num_heads=2
)


def _itc() -> dict:
    return dict(type='ITCLoss', embed_dim=32, queue_size=16)


def test_gradcam_layer_past_the_fusion_depth() -> None:
    # the tiny fusion has 2 layers: only layer 0 (-2) is usable (the last cannot reach [CLS])
    for layer in (2, 5, -3):
        with pytest.raises(
            ValueError,
            match=rf'Grad-CAM layer {layer} \(losses\.itm: layer\) '
            r'does not exist.*2 layers; allowed: 0 to 0 '
            r'\(or -2 to -2',
        ):
            tiny_model(losses=dict(itc=_itc(), itm=dict(type='SoftMaskITMLoss', layer=layer)))
    with pytest.raises(ValueError, match='is the last fusion layer'):
        tiny_model(losses=dict(itc=_itc(), itm=dict(type='SoftMaskITMLoss', layer=1)))
    assert (
        tiny_model(losses=dict(itc=_itc(), itm=dict(type='SoftMaskITMLoss', layer=0))).gradcam_layer
        == 0
    )


@pytest.mark.parametrize('size', [70, 100, 33])
def test_image_size_not_divisible_by_the_patch_size(size: int) -> None:
    low, high = size // 16 * 16, (size // 16 + 1) * 16
    with pytest.raises(
        ValueError,
        match=rf'image_backbone\.img_size={size} is not divisible by '
        rf'the patch size 16 .*multiples of 16 \(e\.g\. {low} or '
        rf'{high}\)',
    ):
        BACKBONES.build(dict(TINY_VIT, img_size=size))
    assert BACKBONES.build(dict(TINY_VIT, img_size=high)).grid_size == (high // 16, high // 16)


def test_unknown_loss_name_lists_the_registered_losses() -> None:
    with pytest.raises(
        KeyError,
        match=r"'losses\.itc' expects a component from the 'loss' "
        r"registry, but 'ITCloss' is not registered.*'ITCLoss'",
    ):
        tiny_model(losses=dict(itc=dict(type='ITCloss')))


def test_unknown_view_name_names_the_loss_key_and_the_views() -> None:
    with pytest.raises(
        ValueError,
        match=r'losses\.itc \(ITCLoss\): unknown view pair '
        r"\('imgae', 'text'\); image views: \('image', "
        r"'image_aug'\), text views: \('text', 'text_masked'\)",
    ):
        tiny_model(losses=dict(itc=dict(_itc(), views=[('imgae', 'text')])))


@pytest.mark.parametrize(
    'slot,cfg',
    [
        ('image_backbone', dict(TINY_VIT, img_size=64)),
        (
            'text_backbone',
            dict(
                type='BertTextBackbone',
                vocab_size=50,
                hidden_size=64,
                num_layers=1,
                num_heads=2,
                intermediate_size=64,
            ),
        ),
    ],
)
def test_missing_pretrained_path_fails_at_build(tmp_path: Path, slot: str, cfg: dict) -> None:
    missing = tmp_path / 'no_such_weights.pth'
    with pytest.raises(
        FileNotFoundError,
        match=rf"{slot}\.pretrained='.*no_such_weights\.pth': "
        'no such file or folder',
    ):
        BACKBONES.build(dict(cfg, pretrained=str(missing)))
    with pytest.raises(FileNotFoundError, match=r'pkg://no_such_package_x/w\.pth.*not installed'):
        BACKBONES.build(dict(cfg, pretrained='pkg://no_such_package_x/w.pth'))


def test_tokenizer_vocabulary_must_match_the_text_embeddings() -> None:
    cfg = Config.fromfile(str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py'))
    size = len(SyntheticTokenizer().vocab)  # specials + the grammar's words
    assert cfg.model.text_backbone.vocab_size == size
    check_tokenizer_vocab(cfg)  # the shipped config fits
    for wrong in (size - 1, size + 7):
        cfg.model.text_backbone.vocab_size = wrong
        with pytest.raises(
            ValueError,
            match=rf'train_dataloader\.dataset\.pipeline\[\d+\]\.'
            rf'tokenizer \(SyntheticTokenizer\) has {size} token '
            rf'ids, but model\.text_backbone\.vocab_size={wrong}',
        ):
            check_tokenizer_vocab(cfg)
    cfg.model.text_backbone.vocab_size = size
    cfg.val_dataloader.dataset.pipeline[0].tokenizer = dict(
        type='SyntheticTokenizer', extra_words=['zebra']
    )
    with pytest.raises(
        ValueError,
        match=rf'val_dataloader\.dataset\.pipeline\[0\]\.tokenizer '
        rf'\(SyntheticTokenizer\) has {size + 1} token ids',
    ):
        check_tokenizer_vocab(cfg)
