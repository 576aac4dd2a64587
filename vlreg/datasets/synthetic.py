"""The embedded default dataset: coloured shapes and captions from a closed grammar, no files.

Every image is a function of ``(seed, index)``: 1-3 shapes (circle, square, triangle, diamond, star,
cross) in one of 7 colours and 2 sizes, at non-overlapping random positions on a plain or lightly
textured background. Captions come from several templates per object count and name colour, size,
shape and the relative position of the first two objects ("a large red circle to the left of a small
blue square"). For grounding metrics each sample carries every object's box and, per caption, the
indices of the caption words that name it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from vlreg.registry import DATASETS

from .base import VLBaseDataset
from .synthetic_grammar import (
    COLORS,
    OPPOSITE,
    RELATIONS,
    SHAPES,
    SIZES,
    TEMPLATES,
    synthetic_vocabulary,
)

__all__ = [
    'COLORS',
    'OPPOSITE',
    'RELATIONS',
    'SHAPES',
    'SIZES',
    'SyntheticShapesDataset',
    'TEMPLATES',
    'render_scene',
    'sample_scene',
    'synthetic_vocabulary',
]


def _relation(a: dict, b: dict) -> str:
    """Where object ``a`` is relative to ``b``, along the axis where they are further apart."""
    dx, dy = a['center'][0] - b['center'][0], a['center'][1] - b['center'][1]
    if abs(dx) >= abs(dy):
        return 'left' if dx < 0 else 'right'
    return 'above' if dy < 0 else 'below'


def _caption(template: str, roles: list[dict], num_objects: int) -> tuple[str, list[list[int]]]:
    """Fill a template; returns the caption and, per object, the indices of the words naming it."""
    words: list[str] = []
    named: list[list[int]] = [[] for _ in range(num_objects)]
    for token in template.split():
        if token in ('{rel}', '{rel_ba}'):
            a, b = (roles[0], roles[1]) if token == '{rel}' else (roles[1], roles[0])
            words.extend(RELATIONS[_relation(a, b)].split())
        elif token.startswith('{'):
            obj = roles['ABC'.index(token[1].upper())]
            phrase = (
                [obj['size'], obj['color'], obj['shape']]
                if token[1].isupper()
                else [obj['color'], obj['shape']]
            )
            named[obj['index']].extend(range(len(words), len(words) + len(phrase)))
            words.extend(phrase)
        else:
            words.append(token)
    return ' '.join(words), named


def _place(rng: np.random.Generator, size: int, objects: list[dict], side: float) -> tuple | None:
    """A centre for a box of ``side`` pixels that keeps a 2-pixel gap to every placed object."""
    half = side / 2
    for _ in range(60):
        cx, cy = rng.uniform(half + 1, size - half - 1, size=2)
        if all(
            abs(cx - o['center'][0]) > half + o['half'] + 2
            or abs(cy - o['center'][1]) > half + o['half'] + 2
            for o in objects
        ):
            return float(cx), float(cy)
    return None


def sample_scene(
    seed: int,
    index: int,
    image_size: int,
    num_objects: Sequence[int] = (1, 3),
    captions_per_image: int = 5,
) -> dict:
    """The layout and captions of image ``index`` (no pixels), a pure function of its arguments."""
    rng = np.random.default_rng([seed, index])
    wanted = int(rng.integers(num_objects[0], num_objects[1] + 1))
    objects: list[dict] = []
    for _ in range(wanted):
        for _attempt in range(10):  # no two objects with the same size, colour and shape
            attrs = (
                str(rng.choice(list(SIZES))),
                str(rng.choice(list(COLORS))),
                str(rng.choice(SHAPES)),
            )
            if all((o['size'], o['color'], o['shape']) != attrs for o in objects):
                break
        center = None
        for size_name in dict.fromkeys((attrs[0], 'small')):  # fall back to a small object
            side = rng.uniform(*SIZES[size_name]) * image_size
            center = _place(rng, image_size, objects, side)
            if center is not None:
                break
        if center is None or any(
            (o['size'], o['color'], o['shape']) == (size_name, *attrs[1:]) for o in objects
        ):
            continue  # no room left (or a twin after shrinking): fewer objects
        objects.append(
            dict(
                index=len(objects),
                size=size_name,
                color=attrs[1],
                shape=attrs[2],
                center=center,
                half=side / 2,
            )
        )
    templates = TEMPLATES[len(objects)]
    order = rng.permutation(len(templates))
    captions, word_indices = [], []
    for k in range(captions_per_image):
        for attempt in range(8):  # another template / role order when the caption repeats one
            roles = [objects[i] for i in rng.permutation(len(objects))]
            template = templates[order[(k + attempt) % len(templates)]]
            caption, named = _caption(template, roles, len(objects))
            if caption not in captions:
                break
        captions.append(caption)
        word_indices.append(named)
    background = dict(
        gray=int(rng.integers(70, 181)),
        tint=rng.integers(-12, 13, size=3).tolist(),
        texture=str(rng.choice(['plain', 'noise', 'gradient'])),
    )
    return dict(
        index=index,
        seed=seed,
        image_size=image_size,
        objects=objects,
        background=background,
        captions=captions,
        word_indices=word_indices,
    )


def _polygon(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    if shape == 'square':
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif shape == 'triangle':
        pts = [(0, -r), (r, r), (-r, r)]
    elif shape == 'diamond':
        pts = [(0, -r), (r, 0), (0, r), (-r, 0)]
    elif shape == 'star':
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        pts = list(zip(radii * np.cos(angles), radii * np.sin(angles)))
    elif shape == 'cross':
        w = r / 3
        pts = [
            (-w, -r),
            (w, -r),
            (w, -w),
            (r, -w),
            (r, w),
            (w, w),
            (w, r),
            (-w, r),
            (-w, w),
            (-r, w),
            (-r, -w),
            (-w, -w),
        ]
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return np.round((np.asarray(pts) + (cx, cy)) * 16).astype(np.int32)  # 4 fractional bits


def _draw(canvas: np.ndarray, obj: dict, color: Any, line_type: int) -> None:
    cx, cy = obj['center']
    r = obj['half']
    if obj['shape'] == 'circle':
        cv2.circle(canvas, (round(cx * 16), round(cy * 16)), round(r * 16), color, -1, line_type, 4)
    else:
        cv2.fillPoly(canvas, [_polygon(obj['shape'], cx, cy, r)], color, line_type, 4)


def render_scene(scene: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (RGB ``uint8 [S, S, 3]``) and tight xyxy boxes (float32 ``[K, 4]``) of a scene."""
    size = scene['image_size']
    rng = np.random.default_rng([scene['seed'], scene['index'], 1])
    bg = scene['background']
    base = np.clip(bg['gray'] + np.asarray(bg['tint']), 0, 255).astype(np.float32)
    img = np.broadcast_to(base, (size, size, 3)).copy()
    if bg['texture'] == 'noise':
        img += rng.normal(0.0, 6.0, size=(size, size, 1))
    elif bg['texture'] == 'gradient':
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * np.arange(size)[None, :] + np.sin(angle) * np.arange(size)[:, None]
        img += (ramp / size * 30.0 - 15.0)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    boxes = np.zeros((len(scene['objects']), 4), dtype=np.float32)
    for k, obj in enumerate(scene['objects']):
        color = np.clip(np.asarray(COLORS[obj['color']]) + rng.integers(-10, 11, size=3), 0, 255)
        _draw(img, obj, tuple(int(c) for c in color), cv2.LINE_AA)
        mask = np.zeros((size, size), dtype=np.uint8)
        _draw(mask, obj, 255, cv2.LINE_8)
        ys, xs = np.nonzero(mask)
        boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return img, boxes


@DATASETS.register_module()
class SyntheticShapesDataset(VLBaseDataset):
    """Generated shapes with captions, same output contract as the caption / retrieval datasets.

    Before the pipeline, a sample holds ``img`` (RGB ``uint8``; no ``LoadImage`` needed),
    ``img_path`` (``synthetic://seed<seed>/<index>``), ``image_id`` (the image index), ``caption``
    (one caption in ``'pretrain'`` mode, the list of the image's captions in ``'retrieval'`` mode,
    with ``text_index``),
    ``gt_bboxes`` (float32 ``[K, 4]`` tight xyxy pixel boxes, pixels ``x0 <= x < x1``), ``objects``
    (per object: ``shape``, ``color``, ``size``) and ``gt_word_indices``: per object, the indices of
    the words of the (whitespace-split) caption that name it (in retrieval mode, one such list per
    caption). Captions are already clean (lower case, no punctuation).

    Args:
        num_images: number of distinct images.
        image_size: side of the square images, in pixels.
        seed: the dataset's seed; image ``i`` depends only on ``(seed, i)``.
        captions_per_image: captions per image, from different templates where there are enough.
        mode: ``'pretrain'`` (one sample per caption) or ``'retrieval'`` (one sample per image).
        pipeline: transforms, the last one ``PackInputs``.
        num_objects: inclusive range of the number of objects per image.
        **kwargs: forwarded to :class:`~vlreg.datasets.VLBaseDataset`.

    Example:
        >>> dict(type='SyntheticShapesDataset', num_images=1000, image_size=64, mode='pretrain',
        ...      pipeline=[dict(type='Tokenize', tokenizer=dict(type='SyntheticTokenizer')),
        ...                dict(type='PackInputs')])
    """

    def __init__(
        self,
        num_images: int = 1000,
        image_size: int = 64,
        seed: int = 0,
        captions_per_image: int = 5,
        mode: str = 'pretrain',
        pipeline: Sequence[dict | Callable] = (),
        num_objects: Sequence[int] = (1, 3),
        **kwargs: Any,
    ) -> None:
        if mode not in ('pretrain', 'retrieval'):
            raise ValueError(f"mode must be 'pretrain' or 'retrieval', got {mode!r}")
        if not 1 <= num_objects[0] <= num_objects[1] <= 3:
            raise ValueError(f'num_objects must be a range within 1..3, got {num_objects}')
        if image_size < 32:
            raise ValueError(f'image_size must be at least 32 pixels, got {image_size}')
        self.num_images, self.image_size, self.seed = num_images, image_size, seed
        self.captions_per_image, self.mode = captions_per_image, mode
        self.num_objects = (int(num_objects[0]), int(num_objects[1]))
        self.retrieval = mode == 'retrieval'
        super().__init__(pipeline=pipeline, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = []
        for index in range(self.num_images):
            scene = sample_scene(
                self.seed, index, self.image_size, self.num_objects, self.captions_per_image
            )
            common = dict(
                img_path=f'synthetic://seed{self.seed}/{index}',
                image_id=index,
                ori_image_id=index,
                ann_index=index,
                scene=scene,
                objects=[{k: o[k] for k in ('shape', 'color', 'size')} for o in scene['objects']],
            )
            if self.retrieval:
                data_list.append(
                    dict(
                        common,
                        caption=list(scene['captions']),
                        gt_word_indices=scene['word_indices'],
                    )
                )
            else:
                for caption, named in zip(scene['captions'], scene['word_indices']):
                    data_list.append(dict(common, caption=caption, gt_word_indices=named))
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['ann_file'] = f'{type(self).__name__}(seed={self.seed})'
        return info

    def prepare_data(self, idx: int) -> Any:
        info = self.get_data_info(idx)
        img, boxes = render_scene(info.pop('scene'))
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], gt_bboxes=boxes)
        return self.pipeline(info)
