"""Several caption files as one training set, with image ids kept distinct across the files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmengine.dataset import BaseDataset, ConcatDataset

from vlreg.registry import DATASETS


@DATASETS.register_module()
class ConcatCaptionDataset(ConcatDataset):
    """MMEngine's ``ConcatDataset`` for :class:`CaptionDataset` parts, with unique image ids.

    Each ``CaptionDataset`` numbers its images 0, 1, ... so two concatenated files would share ids
    (and ITC / ITM with ``use_image_ids`` would take different images for the same one). Here the
    ids of part ``k`` are shifted by the number of image ids of the parts before it (the largest id
    + 1 of each), in every sample's ``data_samples.image_id``.

    Args:
        datasets: dataset configs or built datasets, each giving integer ``image_id`` metainfo.
        **kwargs: ``lazy_init``, ``ignore_keys`` of ``ConcatDataset``.

    Example:
        ``dict(type='ConcatCaptionDataset', datasets=[dict(type='CaptionDataset', ...), ...])``
    """

    def __init__(self, datasets: Sequence[BaseDataset | dict], **kwargs: Any) -> None:
        built = [DATASETS.build(d) if isinstance(d, dict) else d for d in datasets]
        self._offsets: list[int] | None = None
        super().__init__(built, **kwargs)

    @property
    def id_offsets(self) -> list[int]:
        """The shift added to the image ids of each part."""
        if self._offsets is None:
            self.full_init()
            offsets, total = [], 0
            for dataset in self.datasets:
                offsets.append(total)
                ids = [dataset.get_data_info(i)['image_id'] for i in range(len(dataset))]
                if any(not isinstance(i, int) for i in ids):
                    raise TypeError(
                        f'{type(dataset).__name__} ({getattr(dataset, "ann_file", "")})'
                        ': image ids must be integers'
                    )
                total += max(ids, default=-1) + 1
            self._offsets = offsets
        return self._offsets

    def __getitem__(self, idx: int) -> Any:
        offsets = self.id_offsets
        part, _ = self._get_ori_dataset_idx(idx)
        data = super().__getitem__(idx)
        sample = data.get('data_samples') if isinstance(data, dict) else None
        if sample is not None and offsets[part]:
            sample.set_metainfo({'image_id': sample.metainfo['image_id'] + offsets[part]})
        return data
