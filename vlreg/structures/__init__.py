"""Data structures and conventions shared by datasets, models and metrics.

Nothing here imports the datasets, models or evaluation packages, so each of them can use it:

* :class:`DataSample`: one sample's annotations and, later, the model's predictions;
* :mod:`~vlreg.structures.batch_keys`: the names of a sample's and a batch's keys, the image /
  view naming and the padding value of each text key;
* :mod:`~vlreg.structures.vqa_answers`: the VQA answer normalisation (metric and heads).
"""

from __future__ import annotations

from . import batch_keys, vqa_answers
from .batch_keys import IMAGE_VIEWS, TEXT_VIEWS, text_pad_value, view_key
from .data_sample import DataSample
from .vqa_answers import normalize_answer

__all__ = [
    'DataSample',
    'IMAGE_VIEWS',
    'TEXT_VIEWS',
    'batch_keys',
    'normalize_answer',
    'text_pad_value',
    'view_key',
    'vqa_answers',
]
