"""The data sample that travels from the dataset to the metric."""

from __future__ import annotations

from mmengine.structures import BaseDataElement


class DataSample(BaseDataElement):
    """One image-text sample's annotations and, later, the model's predictions.

    Metainfo (set by :class:`~vlreg.datasets.transforms.PackInputs`, immutable along the way):

    * ``sample_idx`` (int): index of the sample in its dataset.
    * ``image_id`` (int): contiguous id of the image, shared by all captions of one image.
    * ``ori_image_id``: the image id as written in the annotation file (or the image path).
    * ``img_path`` (str): where the image came from.
    * ``caption`` (str) in pre-training samples, or ``captions`` (list[str]) in retrieval samples.
    * ``text_index`` (list[int]): global indices of ``captions`` (retrieval evaluation only).
    * optional: ``ann_index``, ``ori_shape``, ``img_shape``, ``flipped``, ``objects``,
      ``gt_word_indices`` (synthetic data, see :class:`~vlreg.datasets.SyntheticShapesDataset`).

    Data fields: ``gt_bboxes`` (float32 ``[K, 4]`` xyxy pixels, when the dataset provides boxes) and
    whatever the model adds in ``predict`` mode (embeddings, scores).

    Example:
        >>> sample = DataSample(metainfo=dict(sample_idx=0, image_id=3, caption='a red circle'))
        >>> sample.caption
        'a red circle'
    """

    @property
    def texts(self) -> list[str]:
        """The sample's captions as a list (one element for a pre-training sample)."""
        if 'captions' in self:
            return list(self.captions)
        if 'caption' in self:
            return [self.caption]
        return []
