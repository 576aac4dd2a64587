"""Batch preparation between the DataLoader and the model (docs/architecture.md, "One batch").

Which keys are images, which are per-caption rows and how each text key is padded is
:mod:`vlreg.structures.batch_keys` (``DEFAULT_PAD_VALUES`` is re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from vlreg.registry import MODELS
from vlreg.structures.batch_keys import (
    ATTENTION_MASK,
    CAPTION_ATTENTION_MASK,
    CAPTION_IDS,
    CAPTION_IMAGE_INDEX,
    DEFAULT_PAD_VALUES,
    INPUT_IDS,
    is_batch_image_key,
    is_caption_key,
    text_pad_value,
)

__all__ = ['DEFAULT_PAD_VALUES', 'VLDataPreprocessor']

# ALBEF's (CLIP's) normalisation constants, on the 0-255 scale of uint8 pixels.
ALBEF_MEAN = tuple(255 * m for m in (0.48145466, 0.4578275, 0.40821073))
ALBEF_STD = tuple(255 * s for s in (0.26862954, 0.26130258, 0.27577711))


def _pad_1d(seqs: Sequence[Tensor], value: int) -> tuple[Tensor, Tensor]:
    """Stack 1-D tensors into ``[B, L_max]`` padded with ``value``; also return their lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long, device=seqs[0].device)
    out = seqs[0].new_full((len(seqs), int(lengths.max()) if len(seqs) else 0), value)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = seq
    return out, lengths


def _mask_from_lengths(lengths: Tensor, length: int) -> Tensor:
    return (torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]).long()


@MODELS.register_module()
class VLDataPreprocessor(BaseDataPreprocessor):
    """Move a collated batch to the model's device, normalise images and pad text.

    Input: MMEngine's ``pseudo_collate`` output ``{'inputs': {key: [per-sample value]},
    'data_samples': [DataSample]}`` (already stacked ``[B, ...]`` tensors are accepted too).
    Output, on the device:

    * every key starting with ``image`` (``image``, ``image_aug``, ...): float32 ``[B, 3, H, W]``,
      ``(x - mean) / std``;
    * every other per-sample 1-D tensor: padded to ``[B, L]`` with the key's padding value (below);
      ``attention_mask`` ``[B, L]`` int64 from the lengths of ``input_ids``; per-sample 0-d tensors
      are stacked to ``[B]``;
    * ``caption_ids`` (per sample: an int64 ``[n_j, L_j]`` tensor from ``PackInputs``, padded with
      ``pad_token_id``, or a list of 1-D tensors): flattened to ``[T, L]`` with
      ``caption_attention_mask`` ``[T, L]`` (1 where the id is not ``pad_token_id``) and
      ``caption_image_index`` ``[T]`` (the sample each caption belongs to); every other key starting
      with ``caption_`` (``caption_word_ids``, ``caption_content_mask``) is flattened the same way,
      padded with its own value and cut to the same ``L``;
    * anything else (strings, ...) unchanged.

    Padding values, per key (``pad_value``): the ``pad_values`` argument first, then
    ``DEFAULT_PAD_VALUES``: ``pad_token_id`` for ``input_ids``, ``mlm_input_ids`` and
    ``caption_ids``; -100 for ``mlm_labels``; -1 for ``word_ids`` and ``caption_word_ids`` (no
    word); 0 for ``content_mask`` and ``caption_content_mask``. Keys not listed: -1 if they end in
    ``word_ids``, -100 if they end in ``labels``, 0 if they end in ``mask``, else ``pad_token_id``.

    Args:
        mean: per-channel mean on the 0-255 scale (ALBEF / CLIP by default).
        std: per-channel standard deviation on the 0-255 scale.
        pad_token_id: padding id of token-id keys.
        pad_values: padding values per key, overriding the defaults above (``None`` for a key
            means ``pad_token_id``).
        non_blocking: asynchronous host-to-device copies.

    Example:
        >>> dict(type='VLDataPreprocessor', pad_token_id=0, pad_values=dict(my_tags=-1))
    """

    def __init__(
        self,
        mean: Sequence[float] = ALBEF_MEAN,
        std: Sequence[float] = ALBEF_STD,
        pad_token_id: int = 0,
        pad_values: dict[str, int | None] | None = None,
        non_blocking: bool = False,
    ) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer('mean', mean_t, persistent=False)
        self.register_buffer('std', std_t, persistent=False)
        self.pad_token_id = pad_token_id
        self.pad_values: dict[str, int | None] = {**DEFAULT_PAD_VALUES, **(pad_values or {})}

    def pad_value(self, key: str) -> int:
        """The padding value of text key ``key`` (see the class docstring)."""
        if key in self.pad_values and self.pad_values[key] is None:
            return self.pad_token_id
        return text_pad_value(
            key, self.pad_token_id, {k: v for k, v in self.pad_values.items() if v is not None}
        )

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data.get('inputs', {})
        out: dict[str, Any] = {}
        caption_keys = [key for key in inputs if is_caption_key(key)]
        for key, value in inputs.items():
            if is_batch_image_key(key):
                out[key] = self._images(key, value)
            elif key not in caption_keys:
                out.update(self._text(key, value))
        if caption_keys:
            out.update(self._captions(inputs, caption_keys))
        return {'inputs': out, 'data_samples': data.get('data_samples')}

    def _images(self, key: str, value: Any) -> Tensor:
        if isinstance(value, (list, tuple)):
            shapes = {tuple(v.shape) for v in value}
            if len(shapes) != 1:
                raise ValueError(
                    f'VLDataPreprocessor: the {key!r} images of a batch differ in '
                    f'size ({sorted(shapes)}); resize them in the pipeline'
                )
            value = torch.stack(list(value))
        if value.dim() != 4 or value.shape[1] != 3:
            raise ValueError(
                f'VLDataPreprocessor: {key!r} must be [B, 3, H, W], got {list(value.shape)}'
            )
        return (value.float() - self.mean) / self.std

    def _text(self, key: str, value: Any) -> dict[str, Any]:
        pad = self.pad_value(key)
        if isinstance(value, Tensor):  # already batched, e.g. by default_collate
            ids, lengths = value, None
        elif (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) for v in value)
        ):
            if all(v.dim() == 0 for v in value):
                return {key: torch.stack(list(value))}
            if not all(v.dim() == 1 for v in value):
                raise ValueError(
                    f'VLDataPreprocessor: text key {key!r} needs 1-D tensors per sample'
                )
            ids, lengths = _pad_1d(value, pad)
        else:
            return {key: value}
        out = {key: ids}
        if key == INPUT_IDS:
            if lengths is not None:
                out[ATTENTION_MASK] = _mask_from_lengths(lengths, ids.shape[1])
            else:
                out[ATTENTION_MASK] = (ids != self.pad_token_id).long()
        return out

    @staticmethod
    def _caption_rows(key: str, value: Any) -> tuple[list[Tensor], list[int]]:
        """The 1-D rows of a per-caption key and the sample index of each."""
        if not isinstance(value, (list, tuple, Tensor)):
            raise ValueError(
                f'VLDataPreprocessor: {key!r} must hold one [n, L] tensor (or a '
                'list of 1-D tensors) per sample'
            )
        rows: list[Tensor] = []
        owner: list[int] = []
        for i, item in enumerate(value):
            item_rows = list(item) if isinstance(item, (list, tuple)) or item.dim() == 2 else [item]
            rows.extend(item_rows)
            owner.extend([i] * len(item_rows))
        return rows, owner

    def _captions(self, inputs: dict[str, Any], keys: Sequence[str]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        length: int | None = None
        owner_ref: list[int] | None = None
        # caption_ids first: it fixes the length and the owners the other keys must match
        for key in sorted(keys, key=lambda k: k != CAPTION_IDS):
            rows, owner = self._caption_rows(key, inputs[key])
            if not rows:
                raise ValueError(f'VLDataPreprocessor: {key!r} holds no caption')
            pad = self.pad_value(key)
            values, _ = _pad_1d(rows, pad)
            if key == CAPTION_IDS:
                mask = (values != self.pad_token_id).long()
                length = int(mask.sum(1).max())  # drop columns that are padding in every row
                values, mask = values[:, :length], mask[:, :length]
                out[CAPTION_ATTENTION_MASK] = mask
                out[CAPTION_IMAGE_INDEX] = torch.tensor(
                    owner, dtype=torch.long, device=values.device
                )
                owner_ref = owner
            else:
                if owner_ref is not None and owner != owner_ref:
                    raise ValueError(
                        f'VLDataPreprocessor: {key!r} does not have one row per '
                        'caption of "caption_ids"'
                    )
                if length is not None:
                    if values.shape[1] < length:
                        values = torch.cat(
                            [
                                values,
                                values.new_full((values.shape[0], length - values.shape[1]), pad),
                            ],
                            dim=1,
                        )
                    values = values[:, :length]
            out[key] = values
        return out
