"""The tools' config loading refuses a tokenizer that does not fit the text encoder, before any Runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from vlreg.engine.launch import load_config

TINY = str(Path(__file__).resolve().parents[1] / 'configs' / 'tiny_synthetic.py')


@pytest.mark.parametrize('delta', [-1, 1, 30000])
def test_load_config_refuses_a_vocabulary_mismatch(tmp_path: Path, delta: int) -> None:
    rows = Config.fromfile(TINY).model.text_backbone.vocab_size + delta
    with pytest.raises(ValueError, match='vocab'):
        load_config(TINY, {'model.text_backbone.vocab_size': rows}, str(tmp_path))


def test_load_config_accepts_the_matching_vocabulary(tmp_path: Path) -> None:
    from vlreg.datasets import build_tokenizer

    cfg = load_config(TINY, None, str(tmp_path))
    tokenizer = next(
        t['tokenizer'] for t in cfg.train_dataloader.dataset.pipeline if 'tokenizer' in t
    )
    assert build_tokenizer(tokenizer).vocab_size == cfg.model.text_backbone.vocab_size
