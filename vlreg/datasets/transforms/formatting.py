"""Pack a transformed sample into ``{'inputs': dict, 'data_samples': DataSample}``.

The contract is in docs/architecture.md ("One sample, out of the pipeline"); the key names and the
padding rule live in :mod:`vlreg.structures.batch_keys` (``DEFAULT_*_KEYS`` and
:func:`text_pad_value` are re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vlreg.registry import TRANSFORMS
from vlreg.structures import DataSample
from vlreg.structures.batch_keys import (
    DEFAULT_DATA_KEYS,
    DEFAULT_META_KEYS,
    DEFAULT_TEXT_KEYS,
    batch_image_key,
    is_pipeline_image_key,
    text_pad_value,
)

from .loading import describe_sample

__all__ = [
    'DEFAULT_DATA_KEYS',
    'DEFAULT_META_KEYS',
    'DEFAULT_TEXT_KEYS',
    'PackInputs',
    'text_pad_value',
]


def _image_tensor(img: Any, key: str, results: dict[str, Any]) -> torch.Tensor:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise TypeError(
            f'PackInputs: {key!r} of {describe_sample(results)} must be an RGB uint8 '
            f'[H, W, 3] array, got {img.dtype} {img.shape}'
        )
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _ids_tensor(ids: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(ids, dtype=np.int64))


@TRANSFORMS.register_module()
class PackInputs:
    """Build the sample contract of docs/architecture.md.

    ``inputs``: ``img`` -> ``image`` (``uint8 [3, H, W]``, not normalised) and every ``img_<x>`` ->
    ``image_<x>`` (e.g. ``img_aug`` of ``ImageView`` -> ``image_aug``); the text keys present among
    ``text_keys`` as int64 tensors (by default the ids, the MLM keys and the ``AnnotateWords`` keys
    ``word_ids`` / ``content_mask``). A text key holding a list (a retrieval sample's
    ``caption_ids``, ``caption_word_ids``, ``caption_content_mask``: one array per caption) is
    packed as one int64 ``[n_captions, L]`` tensor padded with the key's value of
    :func:`text_pad_value` (``pad_token_id`` for ids, -1 for ``*word_ids``, 0 for ``*mask``):
    MMEngine's collate functions transpose Python lists, which would mix the captions of different
    images; ``VLDataPreprocessor`` flattens it again.

    ``data_samples``: a :class:`~vlreg.structures.DataSample` whose metainfo holds the ``meta_keys``
    present (a list ``caption`` is stored as ``captions``) and whose data fields hold ``data_keys``
    (``gt_bboxes`` as float32 ``[K, 4]``).

    Required keys: ``img``. Optional keys: ``text_keys``, ``meta_keys``, ``data_keys``.
    Added keys: none; returns a new dict ``{'inputs': dict, 'data_samples': DataSample}``.

    Args:
        text_keys: results keys packed into ``inputs`` as id tensors.
        meta_keys: results keys copied into the data sample's metainfo.
        data_keys: results keys stored as tensor data fields of the data sample.
        pad_token_id: padding of ``caption_ids`` rows.
        pad_values: per-key padding values of list-valued text keys overriding
            :func:`text_pad_value`'s rule.

    Example:
        >>> dict(type='PackInputs')
    """

    def __init__(
        self,
        text_keys: Sequence[str] = DEFAULT_TEXT_KEYS,
        meta_keys: Sequence[str] = DEFAULT_META_KEYS,
        data_keys: Sequence[str] = DEFAULT_DATA_KEYS,
        pad_token_id: int = 0,
        pad_values: dict[str, int] | None = None,
    ) -> None:
        self.text_keys = tuple(text_keys)
        self.meta_keys = tuple(meta_keys)
        self.data_keys = tuple(data_keys)
        self.pad_token_id = pad_token_id
        self.pad_values = dict(pad_values or {})

    def _pack_caption_ids(self, ids_list: Sequence[Any], key: str = 'caption_ids') -> torch.Tensor:
        rows = [np.asarray(ids, dtype=np.int64) for ids in ids_list]
        length = max((len(r) for r in rows), default=0)
        pad = text_pad_value(key, self.pad_token_id, self.pad_values)
        out = np.full((len(rows), length), pad, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return torch.from_numpy(out)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if 'img' not in results:
            raise KeyError(
                f'PackInputs: {describe_sample(results)} has no "img" (load or render '
                'the image first)'
            )
        inputs: dict[str, Any] = {}
        for key in results:
            if is_pipeline_image_key(key):
                name = batch_image_key(key)
                value = results[key]
                if isinstance(value, np.ndarray) and value.ndim == 3:
                    inputs[name] = _image_tensor(value, key, results)
        for key in self.text_keys:
            if key not in results:
                continue
            value = results[key]
            if isinstance(value, (list, tuple)):
                inputs[key] = self._pack_caption_ids(value, key)
            else:
                inputs[key] = _ids_tensor(value)
        metainfo = {}
        for key in self.meta_keys:
            if key in results:
                value = results[key]
                if key == 'caption' and isinstance(value, (list, tuple)):
                    metainfo['captions'] = list(value)
                else:
                    metainfo[key] = value
        sample = DataSample(metainfo=metainfo)
        for key in self.data_keys:
            if key in results:
                value = torch.as_tensor(np.asarray(results[key], dtype=np.float32))
                sample.set_field(value.reshape(-1, 4) if key.endswith('bboxes') else value, key)
        return {'inputs': inputs, 'data_samples': sample}

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(text_keys={self.text_keys}, meta_keys={self.meta_keys}, '
            f'data_keys={self.data_keys})'
        )
