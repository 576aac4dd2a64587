"""Image loading, and the error every transform raises for a sample it cannot use."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from vlreg.registry import TRANSFORMS

__all__ = ['BadSampleError', 'LoadImage', 'describe_sample']


class BadSampleError(ValueError):
    """A sample that cannot be used (unreadable image, empty caption, ...).

    The datasets catch it when ``skip_bad_samples=True`` and move on to the next sample (counting
    and logging it); otherwise it propagates with a message naming the sample and its annotation
    entry.
    """


def describe_sample(results: dict[str, Any]) -> str:
    """A short human description of where a sample comes from, for error messages.

    Example: ``"sample 12 (entry 3 of '/data/captions.json', image '/data/images/a.jpg')"``.
    """
    parts = []
    if 'ann_index' in results:
        where = f'entry {results["ann_index"]}'
        if results.get('ann_file'):
            where += f' of {results["ann_file"]!r}'
        parts.append(where)
    if results.get('img_path'):
        parts.append(f'image {results["img_path"]!r}')
    head = f'sample {results["sample_idx"]}' if 'sample_idx' in results else 'sample'
    return f'{head} ({", ".join(parts)})' if parts else head


@TRANSFORMS.register_module()
class LoadImage:
    """Read an image file as an RGB ``uint8`` array ``[H, W, 3]``.

    Decoding uses Pillow, as ALBEF does (``Image.open(path).convert('RGB')``), so grey-scale,
    palette and RGBA files come out as 3-channel RGB and a truncated file is an error rather than
    a grey patch.

    Required keys: ``img_path``, or ``img_bytes`` (the encoded file's bytes, e.g. a tar shard's
    member: :class:`~vlreg.datasets.shards.ShardedCaptionDataset`); with ``img_bytes`` the bytes
    are decoded (and removed from the results) and ``img_path`` only names the image in messages.
    Added keys: ``img`` (``uint8 [H, W, 3]`` RGB), ``img_shape`` and ``ori_shape`` (``(H, W)``).

    Raises:
        BadSampleError: the file is missing or cannot be decoded; the message names the path, the
            sample and its annotation entry.

    Example:
        >>> dict(type='LoadImage')
    """

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        data = results.pop('img_bytes', None)
        path = results.get('img_path')
        if data is not None:
            img = self._decode(data, str(path or '<bytes>'), results)
        elif not path:
            raise BadSampleError(f'LoadImage: {describe_sample(results)} has no "img_path"')
        else:
            img = self._read(str(path), results)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    @staticmethod
    def _read(path: str, results: dict[str, Any]) -> np.ndarray:
        if not os.path.isfile(path):
            raise BadSampleError(
                f'LoadImage: image file {path!r} not found, for {describe_sample(results)}'
            )
        return LoadImage._decode(path, path, results)

    @staticmethod
    def _decode(source: str | bytes, path: str, results: dict[str, Any]) -> np.ndarray:
        """Decode a file (``source`` a path) or its bytes; ``path`` names it in messages."""
        from PIL import Image, UnidentifiedImageError

        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        try:
            with Image.open(fp) as image:
                img = np.asarray(image.convert('RGB'), dtype=np.uint8)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
            raise BadSampleError(
                f'LoadImage: cannot decode image {path!r} ({err}), for {describe_sample(results)}'
            ) from err
        if img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
            raise BadSampleError(
                f'LoadImage: image {path!r} decoded to shape {img.shape}, for '
                f'{describe_sample(results)}'
            )
        return np.ascontiguousarray(img)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'
