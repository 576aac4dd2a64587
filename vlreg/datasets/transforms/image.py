"""Image augmentations on albumentations, registered in ``AUGMENTATIONS``.

Every transform reads and writes ``results['img']`` (RGB ``uint8 [H, W, 3]``). Geometric transforms
also move ``results['gt_bboxes']`` (float ``[K, 4]`` xyxy pixels) when present; an object cropped
out entirely gets the empty box ``(0, 0, 0, 0)``, so boxes keep their order and count.

Reproducibility: albumentations 2.x draws from generators of its own. Each call here draws one seed
from numpy's global RNG and re-seeds the albumentations object with it, so a run seeded with
``np.random.seed`` (MMEngine's ``randomness.seed`` does it, per DataLoader worker too) is
repeatable, and restoring numpy's RNG state continues identically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')
import albumentations as A  # noqa: E402

from vlreg.registry import AUGMENTATIONS  # noqa: E402

__all__ = [
    'ColorJitter',
    'GaussianBlur',
    'HorizontalFlip',
    'RandAugment',
    'RandomResizedCrop',
    'Resize',
    'ToGray',
]

INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f'size must be an int or (height, width), got {size!r}')
    return int(size[0]), int(size[1])


def _interpolation(name: str) -> int:
    if name not in INTERPOLATIONS:
        raise ValueError(f'unknown interpolation {name!r}; choose from {sorted(INTERPOLATIONS)}')
    return INTERPOLATIONS[name]


def draw_seed() -> int:
    """A seed for an albumentations object, drawn from numpy's global RNG."""
    return int(np.random.randint(0, 2**31 - 1))


class _AlbuTransform:
    """Applies albumentations ops to ``img`` (and ``gt_bboxes`` if geometric), seeded per call."""

    geometric = False

    def __init__(self) -> None:
        self._box_pipes: dict[int, A.Compose] = {}

    def _apply(
        self, results: dict[str, Any], op: A.BasicTransform, geometric: bool | None = None
    ) -> dict[str, Any]:
        seed = draw_seed()
        img = results['img']
        geometric = self.geometric if geometric is None else geometric
        boxes = results.get('gt_bboxes') if geometric else None
        if boxes is None or len(boxes) == 0:
            op.set_random_seed(seed)
            results['img'] = op(image=img)['image']
        else:
            results['img'], results['gt_bboxes'] = self._apply_with_boxes(op, seed, img, boxes)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def _apply_with_boxes(
        self, op: A.BasicTransform, seed: int, img: np.ndarray, boxes: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        valid = np.flatnonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        pipe = self._box_pipes.get(id(op))
        if pipe is None:
            params = A.BboxParams(format='pascal_voc', label_fields=['box_index'], clip=True)
            pipe = self._box_pipes[id(op)] = A.Compose([op], bbox_params=params, p=1.0)
        pipe.set_random_seed(seed)  # propagates the same seed to ``op``
        out = pipe(image=img, bboxes=boxes[valid], box_index=valid)
        new_boxes = np.zeros_like(boxes)
        kept = np.asarray(out['box_index'], dtype=np.int64)
        if len(kept):
            new_boxes[kept] = np.asarray(out['bboxes'], dtype=np.float32).reshape(-1, 4)
        return out['image'], new_boxes

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_box_pipes'] = {}  # keyed by id(): not valid in another process
        return state


@AUGMENTATIONS.register_module()
class RandomResizedCrop(_AlbuTransform):
    """Crop a random area and aspect ratio, then resize (ALBEF pre-training: scale 0.2-1, bicubic).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``, ``gt_bboxes`` (if present).

    Args:
        size: output ``(height, width)`` or one int for a square.
        scale: range of the cropped area as a fraction of the image area.
        ratio: range of the crop's aspect ratio (width / height).
        interpolation: ``'bicubic'`` (ALBEF), ``'bilinear'``, ``'nearest'``, ``'area'`` or
            ``'lanczos'``.

    Example:
        >>> dict(type='RandomResizedCrop', size=256, scale=(0.2, 1.0))
    """

    geometric = True

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.2, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        interpolation: str = 'bicubic',
    ) -> None:
        super().__init__()
        self.size, self.scale, self.ratio = _pair(size), tuple(scale), tuple(ratio)
        self.op = A.RandomResizedCrop(
            size=self.size,
            scale=self.scale,
            ratio=self.ratio,
            interpolation=_interpolation(interpolation),
            p=1.0,
        )

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        return self._apply(results, self.op)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio})'


@AUGMENTATIONS.register_module()
class Resize(_AlbuTransform):
    """Resize to a fixed size (ALBEF evaluation: bicubic, no crop).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``, ``gt_bboxes`` (if present).

    Args:
        size: output ``(height, width)`` or one int for a square.
        interpolation: see :class:`RandomResizedCrop`.

    Example:
        >>> dict(type='Resize', size=384)
    """

    geometric = True

    def __init__(self, size: int | Sequence[int], interpolation: str = 'bicubic') -> None:
        super().__init__()
        self.size = _pair(size)
        self.op = A.Resize(
            height=self.size[0],
            width=self.size[1],
            interpolation=_interpolation(interpolation),
            p=1.0,
        )

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if tuple(results['img'].shape[:2]) == self.size:
            return results
        return self._apply(results, self.op)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


@AUGMENTATIONS.register_module()
class HorizontalFlip(_AlbuTransform):
    """Mirror the image left-right with probability ``p`` and record it.

    A flipped image no longer matches "left" / "right" in its caption; ``flipped`` lets a later text
    transform swap those words (or a pipeline skip flipping for positional captions).

    Required keys: ``img``. Modified keys: ``img``, ``gt_bboxes`` (if present).
    Added keys: ``flipped`` (bool; toggled, so two flips cancel).

    Args:
        p: probability of flipping.

    Example:
        >>> dict(type='HorizontalFlip', p=0.5)
    """

    geometric = True

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.op = A.HorizontalFlip(p=1.0)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        flip = bool(np.random.random() < self.p)
        if flip:
            results = self._apply(results, self.op)
        results['flipped'] = bool(results.get('flipped', False)) ^ flip
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p})'


@AUGMENTATIONS.register_module()
class ColorJitter(_AlbuTransform):
    """Random brightness, contrast, saturation and hue (SimCLR / MoCo v2 strengths by default).

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        brightness, contrast, saturation: a factor is drawn from ``[1 - x, 1 + x]``.
        hue: a shift drawn from ``[-hue, hue]`` (fraction of the hue circle, at most 0.5).
        p: probability of applying.

    Example:
        >>> dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8)
    """

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        p: float = 0.8,
    ) -> None:
        super().__init__()
        self.args = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        self.p = p
        self.op = A.ColorJitter(**self.args, p=p)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        return self._apply(results, self.op)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.args}, p={self.p})'


@AUGMENTATIONS.register_module()
class ToGray(_AlbuTransform):
    """Convert to grey (kept as 3 channels) with probability ``p`` (SimCLR: 0.2).

    Required keys: ``img``. Modified keys: ``img``.

    Example:
        >>> dict(type='ToGray', p=0.2)
    """

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = p
        self.op = A.ToGray(num_output_channels=3, p=p)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        return self._apply(results, self.op)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p})'


@AUGMENTATIONS.register_module()
class GaussianBlur(_AlbuTransform):
    """Gaussian blur with a random sigma (SimCLR: sigma 0.1-2.0, p 0.5).

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        sigma: range of the standard deviation, in pixels; the kernel size follows from sigma.
        p: probability of applying.

    Example:
        >>> dict(type='GaussianBlur', sigma=(0.1, 2.0), p=0.5)
    """

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> None:
        super().__init__()
        self.sigma, self.p = tuple(sigma), p
        self.op = A.GaussianBlur(blur_limit=0, sigma_limit=self.sigma, p=p)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        return self._apply(results, self.op)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(sigma={self.sigma}, p={self.p})'


# --- RandAugment ---------------------------------------------------------------------------------
_FILL = (128, 128, 128)  # ALBEF's replace value for pixels uncovered by affine ops


def _enhance(m: float) -> float:
    # ALBEF's enhance factor for Brightness / Sharpness / Color / Contrast, m in [0, 1].
    return m * 1.8 + 0.1


def _jitter(**kw: float) -> A.ColorJitter:
    args = dict(brightness=(1.0, 1.0), contrast=(1.0, 1.0), saturation=(1.0, 1.0), hue=(0.0, 0.0))
    args.update({k: (v, v) for k, v in kw.items()})
    return A.ColorJitter(**args, p=1.0)


def _affine(**kw: Any) -> A.Affine:
    return A.Affine(**kw, fill=_FILL, border_mode=cv2.BORDER_CONSTANT, p=1.0)


# name -> (builder(m, sign) -> op, signed, geometric). m = magnitude / 10; sign is +1 or -1.
# Magnitude maps follow ALBEF's RandomAugment: shear coefficient 0.3 m (as an angle for Affine),
# translation 10 m pixels, rotation 30 m degrees; the colour ops below are not used by ALBEF's
# pre-training and use simple maps of their own.
RANDAUG_OPS: dict[str, tuple[Any, bool, bool]] = {
    'Identity': (lambda m, s: A.NoOp(p=1.0), False, False),
    'AutoContrast': (lambda m, s: A.AutoContrast(p=1.0), False, False),
    'Equalize': (lambda m, s: A.Equalize(p=1.0), False, False),
    'Brightness': (lambda m, s: _jitter(brightness=_enhance(m)), False, False),
    'Sharpness': (
        lambda m, s: A.Sharpen(
            alpha=(min(1.0, abs(_enhance(m) - 1.0)),) * 2, lightness=(1.0, 1.0), p=1.0
        ),
        False,
        False,
    ),
    'ShearX': (
        lambda m, s: _affine(
            shear={'x': (s * math.degrees(math.atan(0.3 * m)),) * 2, 'y': (0.0, 0.0)}
        ),
        True,
        True,
    ),
    'ShearY': (
        lambda m, s: _affine(
            shear={'x': (0.0, 0.0), 'y': (s * math.degrees(math.atan(0.3 * m)),) * 2}
        ),
        True,
        True,
    ),
    'TranslateX': (
        lambda m, s: _affine(translate_px={'x': (round(s * 10 * m),) * 2, 'y': (0, 0)}),
        True,
        True,
    ),
    'TranslateY': (
        lambda m, s: _affine(translate_px={'x': (0, 0), 'y': (round(s * 10 * m),) * 2}),
        True,
        True,
    ),
    'Rotate': (lambda m, s: _affine(rotate=(s * 30 * m,) * 2), True, True),
    'Color': (lambda m, s: _jitter(saturation=_enhance(m)), False, False),
    'Contrast': (lambda m, s: _jitter(contrast=_enhance(m)), False, False),
    'Solarize': (lambda m, s: A.Solarize(threshold_range=(1 - m, 1 - m), p=1.0), False, False),
    'Posterize': (lambda m, s: A.Posterize(num_bits=max(1, 8 - round(4 * m)), p=1.0), False, False),
}
ALBEF_PRETRAIN_OPS = (
    'Identity',
    'AutoContrast',
    'Equalize',
    'Brightness',
    'Sharpness',
    'ShearX',
    'ShearY',
    'TranslateX',
    'TranslateY',
    'Rotate',
)


@AUGMENTATIONS.register_module()
class RandAugment(_AlbuTransform):
    """ALBEF's RandomAugment: ``num_ops`` ops drawn with replacement, each applied with ``op_prob``.

    The default op list is ALBEF's pre-training list, without colour-changing ops (a caption naming
    a colour must stay true). Signed ops (shear, translate, rotate) pick their direction at random.
    Sharpness is approximated by albumentations' ``Sharpen`` with ``alpha = factor - 1``.

    Required keys: ``img``. Modified keys: ``img``, ``gt_bboxes`` (if present).

    Args:
        num_ops: how many ops to draw per call.
        magnitude: strength on ALBEF's 0-10 scale.
        ops: names from ``RANDAUG_OPS`` (also ``'Color'``, ``'Contrast'``, ``'Solarize'``,
            ``'Posterize'``).
        op_prob: probability that a drawn op is applied (ALBEF: 0.5).

    Example:
        >>> dict(type='RandAugment', num_ops=2, magnitude=7)
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 7,
        ops: Sequence[str] = ALBEF_PRETRAIN_OPS,
        op_prob: float = 0.5,
    ) -> None:
        super().__init__()
        unknown = [name for name in ops if name not in RANDAUG_OPS]
        if unknown or not ops:
            raise ValueError(
                f'RandAugment: unknown ops {unknown} (or an empty list); '
                f'choose from {sorted(RANDAUG_OPS)}'
            )
        if not 0 <= magnitude <= 10:
            raise ValueError(f'RandAugment: magnitude must be in [0, 10], got {magnitude}')
        self.num_ops, self.magnitude, self.op_prob = num_ops, magnitude, op_prob
        self.ops = tuple(ops)
        m = magnitude / 10
        self._variants: dict[str, list[A.BasicTransform]] = {}
        for name in self.ops:
            build, signed, _ = RANDAUG_OPS[name]
            self._variants[name] = [build(m, 1), build(m, -1)] if signed else [build(m, 1)]

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        for index in np.random.choice(len(self.ops), self.num_ops):
            name = self.ops[int(index)]
            if np.random.random() > self.op_prob:
                continue
            variants = self._variants[name]
            op = variants[int(np.random.random() > 0.5)] if len(variants) > 1 else variants[0]
            results = self._apply(results, op, geometric=RANDAUG_OPS[name][2])
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, '
            f'ops={self.ops}, op_prob={self.op_prob})'
        )
