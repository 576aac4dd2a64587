"""SNLI-VE visual entailment pairs (PAPER.md, "Downstream protocols").

Samples, bad-entry handling and image paths follow :mod:`vlreg.datasets.base`.
Converter (official files -> checked ALBEF json): :mod:`vlreg.datasets.prepare.snli_ve`.
"""

from __future__ import annotations

import os
from typing import Any

from vlreg.registry import DATASETS

from .base import RecordDataset
from .fields import require_keys, text_field
from .transforms.formatting import DEFAULT_META_KEYS

__all__ = ['SNLIVEDataset', 'SNLIVE_META_KEYS']

SNLIVE_META_KEYS = DEFAULT_META_KEYS + ('label', 'gold_label', 'premise', 'pair_id')


# --- SNLI-VE --------------------------------------------------------------------------------------
@DATASETS.register_module()
class SNLIVEDataset(RecordDataset):
    """SNLI-VE (visual entailment): does the image entail a hypothesis? One sample per pair.

    Labels follow ALBEF (whose classifier checkpoints use them): 0 ``contradiction``, 1
    ``neutral``, 2 ``entailment`` (``metainfo['classes']``).

    Formats (detected per entry):

    * **official** jsonl (``snli_ve_{train,dev,test}.jsonl``): ``{"Flickr30K_ID", "sentence2"
      (hypothesis), "gold_label", "sentence1"? (premise caption), "pairID"?}``; the image is
      ``<Flickr30K_ID>.jpg``. A ``gold_label`` of ``"-"`` (no annotator majority) is a bad entry:
      an error, or dropped with ``skip_bad_samples``.
    * **ALBEF** json: ``{"image": "<Flickr30K id>" (``.jpg`` added when there is no extension),
      "sentence", "label": "entailment" | ...}``.

    Each sample holds ``img_path``, ``caption`` (the hypothesis), ``label`` (int),
    ``gold_label`` (its name), ``premise`` and ``pair_id`` (None when absent), ``image_id``
    (contiguous), ``ori_image_id`` (Flickr30K id) and ``ann_index``.

    Args:
        ann_file: official jsonl or ALBEF json, relative to ``data_root``.
        image_root: the Flickr30K image folder (relative to ``data_root``).
        data_root: root of the relative paths.
        pipeline: transforms, the last one ``PackInputs`` (with ``meta_keys=SNLIVE_META_KEYS``).
        skip_bad_samples: drop bad entries (logged) instead of raising.
        **kwargs: forwarded to :class:`VLBaseDataset`.

    Example:
        >>> dict(type='SNLIVEDataset', data_root='data/snli_ve', ann_file='snli_ve_dev.jsonl',
        ...      image_root='flickr30k-images', pipeline=[dict(type='LoadImage'), ...,
        ...      dict(type='PackInputs', meta_keys=SNLIVE_META_KEYS)])
    """

    METAINFO = dict(classes=('contradiction', 'neutral', 'entailment'))
    META_KEYS = SNLIVE_META_KEYS

    def _label(self, where: str, value: Any) -> tuple[int, str]:
        classes = self.METAINFO['classes']
        if isinstance(value, str) and value.strip().lower() in classes:
            name = value.strip().lower()
            return classes.index(name), name
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
            return value, classes[value]
        if value == '-':
            raise ValueError(f'{where}: gold_label "-" (no annotator majority)')
        raise ValueError(f'{where}: label must be one of {classes}, got {value!r}')

    def _parse(self, index: int, entry: Any) -> list[dict]:
        where = f'{self.ann_file!r}: entry {index}'
        if isinstance(entry, dict) and 'Flickr30K_ID' in entry:
            require_keys(where, entry, ('sentence2', 'gold_label'))
            flickr_id = entry['Flickr30K_ID']
            if isinstance(flickr_id, bool) or not isinstance(flickr_id, (str, int)):
                raise ValueError(
                    f'{where}: "Flickr30K_ID" must be a string or an integer, got {flickr_id!r}'
                )
            flickr_id = str(flickr_id).strip()
            image, hypothesis = f'{flickr_id}.jpg', entry['sentence2']
            label, name = self._label(where, entry['gold_label'])
        else:
            require_keys(where, entry, ('image', 'sentence', 'label'))
            image, hypothesis = text_field(where, entry['image'], 'image'), entry['sentence']
            flickr_id = os.path.splitext(os.path.basename(image))[0]
            image = image if os.path.splitext(image)[1] else f'{image}.jpg'
            label, name = self._label(where, entry['label'])
        if not flickr_id:
            raise ValueError(f'{where}: empty image id')
        return [
            dict(
                img_path=self.image_path(image, where),
                caption=text_field(where, hypothesis, 'hypothesis'),
                label=label,
                gold_label=name,
                premise=entry.get('sentence1'),
                pair_id=entry.get('pairID'),
                image_id=self._ids.setdefault(flickr_id, len(self._ids)),
                ori_image_id=flickr_id,
                ann_index=index,
            )
        ]
