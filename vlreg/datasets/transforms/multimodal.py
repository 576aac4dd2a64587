"""Multi-modal augmentation (PAPER.md, "Multi-modal augmentation"), in ``AUGMENTATIONS``.

The paper trains on extra positive pairs made of augmented views; its details are not published,
so these are our defaults:

* **Image view** (:class:`ImageView`): a distorted copy of the (already ALBEF-augmented) image,
  colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grey-scale p 0.2, Gaussian blur p 0.5 and
  RandAugment-style geometric ops, stored as ``img_aug`` (packed as ``inputs['image_aug']``); the
  main image is left as it is.
* **Text view**: the masked caption that :class:`~vlreg.datasets.transforms.MaskText` already
  produces for MLM (``mlm_input_ids``, with ``mlm_labels`` marking the replaced positions) is the
  text view ("the image and the masked text data", Figure 2); nothing else is needed here.
* **Consistent flip** (:class:`CaptionAwareHorizontalFlip`): a horizontal flip must not contradict
  the caption, so when a caption says left or right the words are swapped (or the sample is not
  flipped). It replaces ``HorizontalFlip`` in pipelines with positional captions and runs before
  ``Tokenize``.

Which views feed which loss is the model's configuration. Randomness comes from numpy's global RNG
(see :mod:`vlreg.datasets.transforms.image`), so a seeded run is repeatable.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vlreg.registry import AUGMENTATIONS, TRANSFORMS

from .image import ALBEF_PRETRAIN_OPS, RANDAUG_OPS
from .loading import describe_sample

__all__ = [
    'CaptionAwareHorizontalFlip',
    'DEFAULT_VIEW_TRANSFORMS',
    'GEOMETRIC_OPS',
    'ImageView',
    'LEFT_RIGHT_SWAPS',
    'image_keys',
]

# The geometric ops of ALBEF's RandAugment list (shear, translate, rotate).
GEOMETRIC_OPS = tuple(name for name in ALBEF_PRETRAIN_OPS if RANDAUG_OPS[name][2])

DEFAULT_VIEW_TRANSFORMS: tuple[dict, ...] = (
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
    dict(type='ToGray', p=0.2),
    dict(type='GaussianBlur', sigma=(0.1, 2.0), p=0.5),
    dict(type='RandAugment', num_ops=2, magnitude=7, ops=GEOMETRIC_OPS),
)

LEFT_RIGHT_SWAPS: dict[str, str] = {
    'left': 'right',
    'right': 'left',
    'leftmost': 'rightmost',
    'rightmost': 'leftmost',
    'lefthand': 'righthand',
    'righthand': 'lefthand',
}

_NOT_IMAGES = ('img_path', 'img_shape')


def image_keys(results: Mapping[str, Any]) -> list[str]:
    """The image keys of a sample: ``img`` and each ``img_<x>`` holding an ``[H, W, C]`` array."""
    return [
        key
        for key in results
        if (key == 'img' or (key.startswith('img_') and key not in _NOT_IMAGES))
        and isinstance(results[key], np.ndarray)
        and results[key].ndim == 3
    ]


def _boxes_key(img_key: str) -> str:
    """``img`` -> ``gt_bboxes``; ``img_aug`` -> ``gt_bboxes_aug``."""
    return 'gt_bboxes' + img_key[3:]


@AUGMENTATIONS.register_module()
class ImageView:
    """Add an augmented copy of the image as an extra view; the main image is not touched.

    The sub-pipeline sees a new dict holding a copy of ``img`` (and ``img_shape``, and a copy of
    ``gt_bboxes`` when ``copy_boxes``); what it returns is stored under ``out_key`` (and the boxes
    under ``gt_bboxes<suffix>``, e.g. ``gt_bboxes_aug``). ``PackInputs`` packs ``img_<x>`` as
    ``inputs['image_<x>']``. Use image transforms only, and no flip: a flipped view would contradict
    a caption that says left or right.

    Required keys: ``img``. Optional keys: ``gt_bboxes``.
    Added keys: ``out_key`` (RGB ``uint8 [H', W', 3]``); ``gt_bboxes<suffix>`` (float32 ``[K, 4]``,
    the boxes moved with the view) when ``copy_boxes`` and the sample has ``gt_bboxes``.

    Args:
        transforms: image transform configs (built through ``TRANSFORMS``, which finds
            ``AUGMENTATIONS``) or callables; default :data:`DEFAULT_VIEW_TRANSFORMS`.
        out_key: where the view goes; must start with ``img_``.
        copy_boxes: also move a copy of ``gt_bboxes`` through the view's geometric ops.

    Example:
        >>> dict(type='ImageView', out_key='img_aug', transforms=[dict(type='ToGray', p=1.0)])
    """

    def __init__(
        self,
        transforms: Sequence[dict | Callable] | None = None,
        out_key: str = 'img_aug',
        copy_boxes: bool = True,
    ) -> None:
        if not out_key.startswith('img_') or out_key in _NOT_IMAGES:
            raise ValueError(
                f"ImageView: out_key must look like 'img_<name>' (PackInputs packs it "
                f"as 'image_<name>'), got {out_key!r}"
            )
        cfgs = DEFAULT_VIEW_TRANSFORMS if transforms is None else transforms
        self.transforms = [
            TRANSFORMS.build(copy.deepcopy(t)) if isinstance(t, dict) else t for t in cfgs
        ]
        self.out_key = out_key
        self.copy_boxes = copy_boxes

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if 'img' not in results:
            raise KeyError(f'ImageView: {describe_sample(results)} has no "img"')
        img = np.array(results['img'], copy=True)
        view: dict[str, Any] = {'img': img, 'img_shape': img.shape[:2]}
        with_boxes = self.copy_boxes and results.get('gt_bboxes') is not None
        if with_boxes:
            view['gt_bboxes'] = np.array(results['gt_bboxes'], dtype=np.float32, copy=True)
        for transform in self.transforms:
            view = transform(view)
        results[self.out_key] = view['img']
        if with_boxes:
            results[_boxes_key(self.out_key)] = view['gt_bboxes']
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(transforms={self.transforms}, out_key={self.out_key!r}, '
            f'copy_boxes={self.copy_boxes})'
        )


@AUGMENTATIONS.register_module()
class CaptionAwareHorizontalFlip:
    """Horizontal flip that keeps image and text consistent.

    With probability ``p`` the sample is flipped: every image entry (``img`` and every ``img_<x>``
    view present) is mirrored, and so are ``gt_bboxes`` and every ``gt_bboxes_<x>`` (in the width
    of their image; empty boxes ``(0, 0, 0, 0)`` stay empty). When a caption names a side (a word
    of ``swap_words``: left, right, leftmost, ...), ``mode='swap'`` exchanges those words in the
    caption (case kept, matched as whole words, so "left-hand" becomes "right-hand"; word count and
    positions do not change, so ``gt_word_indices`` stay valid) and ``mode='skip'`` leaves the whole
    sample unflipped. A list of captions (retrieval samples) is handled as one: swapped together,
    or skipped if any of them names a side. Note that "right" as in "correct" is swapped too.

    Put it before ``Tokenize`` (the ids must come from the final words), and after
    ``RandomResizedCrop`` / before ``ImageView`` to flip the main image only once.

    Required keys: ``img``, ``keys``.
    Modified keys: ``img``, ``img_<x>``, ``gt_bboxes``, ``gt_bboxes_<x>`` (when flipped);
    ``keys`` (when flipped with mode ``'swap'``).
    Added keys: ``flipped`` (bool; toggled, so two flips cancel, as ``HorizontalFlip`` does).

    Args:
        p: probability of flipping.
        mode: ``'swap'`` (swap left / right words) or ``'skip'`` (do not flip such samples).
        keys: results keys holding the caption (a string or a list of strings).
        swap_words: the side words and their mirror words (lower case).

    Example:
        >>> dict(type='CaptionAwareHorizontalFlip', p=0.5, mode='swap')
    """

    def __init__(
        self,
        p: float = 0.5,
        mode: str = 'swap',
        keys: Sequence[str] = ('caption',),
        swap_words: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in ('swap', 'skip'):
            raise ValueError(
                f"CaptionAwareHorizontalFlip: mode must be 'swap' or 'skip', got {mode!r}"
            )
        if not 0 <= p <= 1:
            raise ValueError(f'CaptionAwareHorizontalFlip: p must be in [0, 1], got {p}')
        self.p, self.mode, self.keys = p, mode, tuple(keys)
        swaps = LEFT_RIGHT_SWAPS if swap_words is None else swap_words
        self.swap_words = {str(k).lower(): str(v).lower() for k, v in swaps.items()}
        names = '|'.join(sorted(map(re.escape, self.swap_words), key=len, reverse=True))
        self._pattern = re.compile(rf'\b({names})\b', re.IGNORECASE)

    # --- text ------------------------------------------------------------------------------------
    def names_side(self, text: str) -> bool:
        """Whether ``text`` holds one of the side words."""
        return self._pattern.search(text) is not None

    def swap_text(self, text: str) -> str:
        """``text`` with every side word replaced by its mirror word, keeping its case."""

        def mirror(match: re.Match) -> str:
            word = match.group(0)
            new = self.swap_words[word.lower()]
            if word.isupper() and len(word) > 1:
                return new.upper()
            return new[0].upper() + new[1:] if word[0].isupper() else new

        return self._pattern.sub(mirror, text)

    def _texts(self, results: dict[str, Any]) -> list[tuple[str, str | list[str]]]:
        out = []
        for key in self.keys:
            if key not in results:
                raise KeyError(
                    f'CaptionAwareHorizontalFlip: {describe_sample(results)} has no {key!r}'
                )
            value = results[key]
            if isinstance(value, str) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            ):
                out.append((key, value if isinstance(value, str) else list(value)))
            else:
                raise TypeError(
                    f'CaptionAwareHorizontalFlip: {key!r} of '
                    f'{describe_sample(results)} must be a string or a list of strings'
                )
        return out

    # --- image -----------------------------------------------------------------------------------
    @staticmethod
    def _flip_boxes(boxes: Any, width: int) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        flipped = boxes.copy()
        flipped[:, 0] = width - boxes[:, 2]
        flipped[:, 2] = width - boxes[:, 0]
        flipped[~valid] = 0.0
        return flipped

    def _flip_images(self, results: dict[str, Any]) -> None:
        for key in image_keys(results):
            img = results[key]
            results[key] = np.ascontiguousarray(img[:, ::-1])
            box_key = _boxes_key(key)
            if results.get(box_key) is not None:
                results[box_key] = self._flip_boxes(results[box_key], img.shape[1])

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if 'img' not in results:
            raise KeyError(f'CaptionAwareHorizontalFlip: {describe_sample(results)} has no "img"')
        flip = bool(np.random.random() < self.p)  # always drawn: the RNG stream does not depend
        texts = self._texts(results)  # on the captions
        if flip:
            sided = any(
                self.names_side(t)
                for _, value in texts
                for t in ([value] if isinstance(value, str) else value)
            )
            if sided and self.mode == 'skip':
                flip = False
            else:
                self._flip_images(results)
                if sided:
                    for key, value in texts:
                        results[key] = (
                            self.swap_text(value)
                            if isinstance(value, str)
                            else [self.swap_text(t) for t in value]
                        )
        results['flipped'] = bool(results.get('flipped', False)) ^ flip
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p}, mode={self.mode!r}, keys={self.keys})'
