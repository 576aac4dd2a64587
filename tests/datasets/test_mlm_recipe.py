"""ALBEF's / BERT's MLM rate: 15 % of the real tokens are chosen, by ``MaskText``'s default and in
every masking step of the 4M recipe configs (measured on tokens, not read from a field, so a
default, a config value or a transform argument that changed all fail)."""

from __future__ import annotations

import glob
import math
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from vlreg.datasets import MaskText, SyntheticTokenizer

ROOT = Path(__file__).resolve().parents[2]
ALBEF_MLM_PROBABILITY = 0.15  # ALBEF configs/Pretrain.yaml: mlm_probability 0.15
# the pre-training recipes (configs/tasks/nlvr2's 4M text-assignment stage has no MLM)
RECIPES = sorted(
    p
    for folder in ('albef', 'softmask')
    for p in glob.glob(str(ROOT / 'configs' / folder / '**' / '*4m*.py'), recursive=True)
)


def chosen_rate(
    masker: MaskText, tok: SyntheticTokenizer, rows: int = 200, length: int = 100
) -> float:
    """Share of real (non-special) tokens that ``masker`` chooses, seeded."""
    rng = np.random.default_rng(0)
    np.random.seed(0)
    chosen = total = 0
    for row in rng.integers(5, tok.vocab_size, size=(rows, length)):
        ids = np.concatenate([[tok.cls_token_id], row])
        labels = masker({'input_ids': ids})['mlm_labels']
        chosen += int((labels[1:] != -100).sum())
        total += length
    return chosen / total


def assert_bert_rate(rate: float, n: int = 200 * 100) -> None:
    p = ALBEF_MLM_PROBABILITY
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n), rate


def test_mask_text_default_rate_is_albef_15_percent() -> None:
    tok = SyntheticTokenizer()
    assert_bert_rate(chosen_rate(MaskText(tokenizer=tok), tok))


def _mask_steps(node, found: list) -> list:
    if isinstance(node, dict):
        if node.get('type') == 'MaskText':
            found.append(node)
        for value in node.values():
            _mask_steps(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _mask_steps(value, found)
    return found


def test_there_are_4m_recipes() -> None:
    names = {Path(p).name for p in RECIPES}
    assert {
        'albef_vit-b16-bert-base_8xb64_4m-30e.py',
        'softmask_vit-b16-bert-base_8xb64_4m-30e.py',
    } <= names


@pytest.mark.parametrize('path', RECIPES, ids=[Path(p).name for p in RECIPES])
def test_4m_recipe_masks_15_percent(path: str) -> None:
    cfg = Config.fromfile(path)
    steps = _mask_steps(cfg.to_dict().get('train_dataloader'), [])
    assert steps, f'{path}: no MaskText in the train pipeline'
    tok = SyntheticTokenizer()  # the recipe's BERT vocabulary is not needed to count choices
    for step in steps:
        kwargs = {k: v for k, v in step.items() if k not in ('type', 'tokenizer')}
        assert_bert_rate(chosen_rate(MaskText(tokenizer=tok, **kwargs), tok))
