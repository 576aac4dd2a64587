"""The downstream-task datasets, one module per task (kept for the imports that name this module).

VQA v2: :mod:`vlreg.datasets.vqa`; NLVR2: :mod:`vlreg.datasets.nlvr2`; SNLI-VE:
:mod:`vlreg.datasets.snli_ve`; grounding: :mod:`vlreg.datasets.grounding`; their converters are
the modules of the same task in :mod:`vlreg.datasets.prepare`.
"""

from __future__ import annotations

from .grounding import GROUNDING_META_KEYS, GroundingDataset
from .nlvr2 import NLVR2_META_KEYS, NLVR2Dataset
from .reader import read_records
from .snli_ve import SNLIVE_META_KEYS, SNLIVEDataset
from .vqa import VQA_IMAGE_NAMES, VQA_META_KEYS, VQADataset, answer_weights

__all__ = [
    'GROUNDING_META_KEYS',
    'GroundingDataset',
    'NLVR2Dataset',
    'NLVR2_META_KEYS',
    'SNLIVEDataset',
    'SNLIVE_META_KEYS',
    'VQADataset',
    'VQA_IMAGE_NAMES',
    'VQA_META_KEYS',
    'answer_weights',
    'read_records',
]
