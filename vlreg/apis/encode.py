"""Notebook inference without the Runner: embeddings, ITM probabilities and ranked retrieval.

Every function takes a model from :func:`vlreg.apis.init_model` (any image backbone that gives
``[CLS]``-first tokens) and prepares its inputs with the model's config: the images go through the
steps of ``test_dataloader.dataset.pipeline`` before its ``Tokenize`` (plus a resize to the
config's image size when those steps do not resize), the texts through that ``Tokenize``'s
tokenizer and length, both through the model's data preprocessor. An image is a file path, an RGB
``uint8`` array ``[H, W, 3]``, or ``'synthetic:SEED:INDEX'`` (a scene of the embedded synthetic
data set, drawn at the config's image size).

Example:
    >>> from vlreg.apis import init_model, encode_texts
    >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')  # random
    >>> tuple(encode_texts(model, ['a red circle', 'a blue square']).shape)
    (2, 128)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn

from vlreg.evaluation.retrieval import topk_rerank

ImageLike = Union[str, np.ndarray]
_RESIZES = ('resize', 'crop')


def without_loading(steps: Sequence[Callable]) -> list[Callable]:
    """The pipeline steps without its ``LoadImage`` steps: for images given as arrays."""
    return [t for t in steps if type(t).__name__ != 'LoadImage']


@dataclass
class _Prep:
    """The image steps, the tokenizer step and the image size of a model's test pipeline."""

    image_steps: list
    tokenize: Any
    pack: Any
    size: tuple[int, int] | None


def _dataset_cfg(model: nn.Module) -> Any:
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError(
            f'{type(model).__name__} has no .cfg: build it with '
            'vlreg.apis.init_model(config, checkpoint)'
        )
    return cfg.test_dataloader.dataset


def _prep(model: nn.Module) -> _Prep:
    cached = getattr(model, '_vlreg_prep', None)
    if cached is not None:
        return cached
    from mmengine.dataset import Compose

    steps = list(Compose(list(_dataset_cfg(model).pipeline)).transforms)
    names = [type(t).__name__ for t in steps]
    if 'Tokenize' not in names:
        raise ValueError(f'the test pipeline {names} has no Tokenize step')
    cut = names.index('Tokenize')
    image_steps = without_loading(steps[:cut])
    prep = _Prep(image_steps, steps[cut], steps[-1], None)
    if not any(k in type(t).__name__.lower() for t in image_steps for k in _RESIZES):
        prep.size = _image_size(model)
    model._vlreg_prep = prep
    return prep


def _image_size(model: nn.Module) -> tuple[int, int] | None:
    """(H, W) from the config's ``image_size`` or the backbone's ``img_size``, if either says."""
    size = _dataset_cfg(model).get('image_size')
    if size is None:
        backbone = model.image_backbone
        size = getattr(backbone, 'img_size', None)
        inner = getattr(getattr(backbone, 'vit', None), 'patch_embed', None)
        size = size if size is not None else getattr(inner, 'img_size', None)
    if size is None:
        return None
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size),) * 2


def load_image(image: ImageLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB ``uint8 [H, W, 3]`` array from a path, an array or ``'synthetic:SEED:INDEX'``."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f'an image array must be uint8 [H, W, 3] RGB, got {image.dtype} {list(image.shape)}'
            )
        return image
    spec = str(image)
    if spec.startswith('synthetic:'):
        from vlreg.datasets.synthetic import render_scene, sample_scene

        try:
            _, seed, index = spec.split(':')
            scene = sample_scene(int(seed), int(index), (size or (96, 96))[0])
        except ValueError as err:
            raise ValueError(f'synthetic:SEED:INDEX expected, got {spec!r}') from err
        return render_scene(scene)[0]
    from vlreg.datasets.transforms.loading import LoadImage

    return LoadImage()(dict(img_path=spec))['img']


def _image_tensor(model: nn.Module, image: ImageLike) -> Tensor:
    prep = _prep(model)
    img = load_image(image, prep.size)
    if prep.size is not None and img.shape[:2] != prep.size:
        import cv2

        img = cv2.resize(img, (prep.size[1], prep.size[0]), interpolation=cv2.INTER_CUBIC)
    results: dict[str, Any] = dict(
        img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], sample_idx=0, image_id=0
    )
    for step in prep.image_steps:
        results = step(results)
    return prep.pack(results)['inputs']['image']


def preprocess_images(model: nn.Module, images: Sequence[ImageLike]) -> Tensor:
    """Normalised ``[B, 3, H, W]`` on the model's device, as the test pipeline prepares them."""
    batch = [_image_tensor(model, image) for image in images]
    return model.data_preprocessor({'inputs': {'image': batch}}, False)['inputs']['image']


def tokenize(model: nn.Module, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` ``[B, L]`` on the model's device."""
    if isinstance(texts, str):
        raise TypeError('texts must be a list of strings, got one string')
    step = _prep(model).tokenize
    ids = []
    for i, text in enumerate(texts):
        results = step(dict(caption=str(text), sample_idx=i))
        ids.append(torch.as_tensor(results['input_ids']))
    out = model.data_preprocessor({'inputs': {'input_ids': ids}}, False)['inputs']
    return out['input_ids'], out['attention_mask']


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def encode_images(
    model: nn.Module, images: Sequence[ImageLike], batch_size: int = 32, progress: bool = False
) -> Tensor:
    """L2-normalised ITC image embeddings ``[N, E]`` (on the CPU).

    Example:
        >>> from vlreg.apis import init_model, encode_images
        >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')
        >>> emb = encode_images(model, ['synthetic:0:0', 'synthetic:0:1'])
        >>> tuple(emb.shape), round(float(emb.norm(dim=1)[0]), 4)
        ((2, 128), 1.0)
    """
    from tqdm import tqdm

    out = []
    for part in tqdm(_batches(len(images), batch_size), desc='images', disable=not progress):
        out.append(model.encode_image(preprocess_images(model, images[part]))[1].float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)


@torch.no_grad()
def encode_texts(model: nn.Module, texts: Sequence[str], batch_size: int = 256) -> Tensor:
    """L2-normalised ITC text embeddings ``[N, E]`` (on the CPU).

    Example:
        >>> from vlreg.apis import init_model, encode_texts
        >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')
        >>> emb = encode_texts(model, ['a red circle'])
        >>> tuple(emb.shape), round(float(emb.norm()), 4)
        ((1, 128), 1.0)
    """
    texts = list(texts) if not isinstance(texts, str) else texts
    out = []
    for part in _batches(len(texts), batch_size):
        ids, mask = tokenize(model, texts[part])
        out.append(model.encode_text(ids, mask)[1].float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)


def _itm_logit(model: nn.Module, image_tokens: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
    """ITM logits ``[P, 2]`` of P (image tokens, text) pairs."""
    text_tokens, _ = model.encode_text(ids, mask)
    return model.itm_logits(text_tokens, mask, image_tokens)


@torch.no_grad()
def match(
    model: nn.Module, images: Sequence[ImageLike], texts: Sequence[str], batch_size: int = 64
) -> Tensor:
    """ITM match probabilities ``[len(images), len(texts)]`` of every (image, text) pair.

    Example:
        >>> from vlreg.apis import init_model, match
        >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')
        >>> p = match(model, ['synthetic:0:0'], ['a red circle', 'a blue square'])
        >>> tuple(p.shape), bool(((p > 0) & (p < 1)).all())
        ((1, 2), True)
    """
    if model.itm_head is None:
        raise ValueError(f'{type(model).__name__} has no ITM head: match() needs one')
    pixels = preprocess_images(model, list(images))
    image_tokens, _ = model.encode_image(pixels)
    ids, mask = tokenize(model, list(texts))
    n_img, n_txt = image_tokens.shape[0], ids.shape[0]
    pairs = torch.cartesian_prod(torch.arange(n_img), torch.arange(n_txt))
    probs = []
    for part in _batches(pairs.shape[0], batch_size):
        i, t = pairs[part, 0].to(ids.device), pairs[part, 1].to(ids.device)
        probs.append(_itm_logit(model, image_tokens[i], ids[t], mask[t]).softmax(-1)[:, 1])
    return torch.cat(probs).float().cpu().reshape(n_img, n_txt)


@dataclass
class Ranking:
    """What :func:`rank` returns: the top images best first and how they were ranked."""

    indices: list[int]
    scores: list[float]
    itc: list[float]
    images: list[Any]
    protocol: dict[str, Any] = field(default_factory=dict)


def default_protocol(model: nn.Module) -> tuple[int | None, str]:
    """The re-rank depth ``k`` and score of the config's ``test_cfg`` (ALBEF: 256, ``'itm'``)."""
    test_cfg = getattr(model, 'cfg', {}).get('test_cfg', {}) or {}
    return test_cfg.get('k', 256), test_cfg.get('score', 'itm')


@torch.no_grad()
def rank(
    model: nn.Module,
    query: str,
    images: Sequence[ImageLike] | Any,
    top: int = 10,
    k: int | None | str = 'config',
    score: str | None = None,
    batch_size: int = 64,
) -> Ranking:
    """Text -> image retrieval with the evaluation's protocol: ITC for every image, then the
    ITC top-``k`` re-scored by the ITM match logit (``score='itm'``, ALBEF) or ITM + ITC
    (``'itm+itc'``, BLIP / LAVIS); images outside the top-``k`` keep -100.

    Args:
        model: from :func:`init_model`.
        query: the text.
        images: images, or an :class:`~vlreg.apis.index.ImageIndex` (its stored embeddings give
            the ITC stage; only the top-``k`` images are read again for ITM).
        top: how many results to return.
        k: ITM re-rank depth; ``'config'`` (default) takes the config's ``test_cfg.k``; 0 = ITC
            only, None = every image.
        score: ``'itm'`` or ``'itm+itc'``; default the config's ``test_cfg.score``.
        batch_size: (image, text) pairs per ITM call.

    Example:
        >>> from vlreg.apis import init_model, rank
        >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')
        >>> r = rank(model, 'a red circle', [f'synthetic:0:{i}' for i in range(6)], top=3, k=4)
        >>> len(r.indices), r.protocol['k'], r.protocol['score'], r.protocol['first_stage']
        (3, 4, 'itm', 'itc')
    """
    cfg_k, cfg_score = default_protocol(model)
    k = cfg_k if k == 'config' else k
    score = score or cfg_score
    if score not in ('itm', 'itm+itc'):
        raise ValueError(f"score must be 'itm' or 'itm+itc', got {score!r}")
    from .index import ImageIndex

    if isinstance(images, ImageIndex):
        images.check_model(model)
        embeds, items = images.embeddings, list(images.paths)
    else:
        items = list(images)
        embeds = encode_images(model, items, batch_size=batch_size)
    sim = encode_texts(model, [query]) @ embeds.t()  # [1, N]
    if k == 0 or model.itm_head is None:
        final = sim.clone()
        used_k = 0
    else:
        ids, mask = tokenize(model, [query])
        final = topk_rerank(
            sim, k, _itm_scorer(model, items, ids, mask), batch_size, add_sim=score == 'itm+itc'
        )
        used_k = sim.shape[1] if k is None else min(k, sim.shape[1])
    order = final[0].sort(descending=True, stable=True).indices[:top].tolist()
    protocol = dict(
        first_stage='itc',
        k=used_k,
        score=score if used_k else 'itc',
        rerank_score='ITM match logit' + (' + ITC' if score == 'itm+itc' else ''),
        fill=-100.0,
        num_images=len(items),
        ties='stable: lower index first',
    )
    return Ranking(
        order,
        [float(final[0, i]) for i in order],
        [float(sim[0, i]) for i in order],
        [items[i] for i in order],
        protocol,
    )


def _itm_scorer(
    model: nn.Module, items: list, ids: Tensor, mask: Tensor
) -> Callable[[Tensor, Tensor], Tensor]:
    cache: dict[int, Tensor] = {}

    def score(q_idx: Tensor, c_idx: Tensor) -> Tensor:
        todo = sorted({int(c) for c in c_idx} - set(cache))
        if todo:
            tokens, _ = model.encode_image(preprocess_images(model, [items[c] for c in todo]))
            cache.update({c: tokens[j] for j, c in enumerate(todo)})
        tokens = torch.stack([cache[int(c)] for c in c_idx])
        n = tokens.shape[0]
        return _itm_logit(model, tokens, ids.expand(n, -1), mask.expand(n, -1))[:, 1]

    return score
