"""Two-image samples (NLVR2): load both images and augment each of them.

A pair sample holds ``img_path`` (left image) and ``img_path2`` (right image).
:class:`LoadImagePair` reads them into ``img`` and ``img_2``; ``PackInputs`` packs these as
``inputs['image']`` and ``inputs['image_2']`` (every ``img_<x>`` becomes ``image_<x>``), and the
data preprocessor normalises every ``image*`` key. The image transforms of vlreg only touch
``img``, so :class:`ApplyToImagePair` runs a sub-pipeline on each image in turn, with independent
random draws as ALBEF's NLVR2 code does (``transform(image0)``, ``transform(image1)``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vlreg.registry import AUGMENTATIONS, TRANSFORMS

from .loading import BadSampleError, LoadImage, describe_sample

__all__ = ['ApplyToImagePair', 'LoadImagePair', 'PAIR_KEYS']

#: the results keys of each image of a pair: (image, its path, its shape, its original shape)
PAIR_KEYS = (
    ('img', 'img_path', 'img_shape', 'ori_shape'),
    ('img_2', 'img_path2', 'img_shape2', 'ori_shape2'),
)


@TRANSFORMS.register_module()
class LoadImagePair:
    """Read the two images of a pair sample as RGB ``uint8 [H, W, 3]`` arrays.

    Decoding is :class:`LoadImage`'s (Pillow, ``convert('RGB')``), so a file named ``.png`` that
    holds JPEG data (as some NLVR2 files do) is read by its content.

    Required keys: ``img_path``, ``img_path2``.
    Added keys: ``img``, ``img_shape``, ``ori_shape`` (first image); ``img_2``, ``img_shape2``,
    ``ori_shape2`` (second image).

    Raises:
        BadSampleError: a path is missing, or a file is missing or cannot be decoded; the message
            names the path, the sample and its annotation entry.

    Example:
        >>> dict(type='LoadImagePair')
    """

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        for img_key, path_key, shape_key, ori_key in PAIR_KEYS:
            path = results.get(path_key)
            if not path:
                raise BadSampleError(
                    f'LoadImagePair: {describe_sample(results)} has no {path_key!r}'
                )
            img = LoadImage._read(str(path), results)
            results[img_key] = img
            results[shape_key] = img.shape[:2]
            results[ori_key] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


@AUGMENTATIONS.register_module()
class ApplyToImagePair:
    """Run image transforms on each image of a pair, independently.

    The sub-pipeline sees ``{'img': ..., 'img_shape': ...}`` for the first image, then the same for
    the second; each result goes back to its key. Random transforms draw separately for the two
    images (ALBEF's NLVR2 augmentation); use transforms that only touch ``img``.

    Required keys: ``img``, ``img_2``.
    Modified keys: ``img``, ``img_shape``, ``img_2``, ``img_shape2``.

    Args:
        transforms: image transform configs (built through ``TRANSFORMS``, which finds
            ``AUGMENTATIONS``) or callables.

    Example:
        >>> dict(type='ApplyToImagePair', transforms=[dict(type='Resize', size=384)])
    """

    def __init__(self, transforms: Sequence[dict | Callable]) -> None:
        self.transforms = [
            TRANSFORMS.build(copy.deepcopy(t)) if isinstance(t, dict) else t for t in transforms
        ]

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        for img_key, _, shape_key, _ in PAIR_KEYS:
            img = results.get(img_key)
            if not isinstance(img, np.ndarray):
                raise KeyError(
                    f'ApplyToImagePair: {describe_sample(results)} has no image '
                    f'{img_key!r} (run LoadImagePair first)'
                )
            view: dict[str, Any] = {'img': img, 'img_shape': img.shape[:2]}
            for transform in self.transforms:
                view = transform(view)
            results[img_key] = view['img']
            results[shape_key] = view['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(transforms={self.transforms})'
