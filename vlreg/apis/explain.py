"""Per-word Grad-CAM of one (image, text) pair: maps, overlays and a figure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from vlreg.engine.model_defaults import gradcam_layer_of
from vlreg.models.utils.softmask import (
    content_words,
    minmax_normalise,
    resolve_fusion_layer,
    upsample_map,
    word_rows_mean,
)

from .encode import ImageLike, _image_tensor, _prep, tokenize


def overlay(image: np.ndarray, cam: Tensor | np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` (RGB ``uint8 [H, W, 3]``) blended with a min-max-normalised ``[gh, gw]`` map
    upsampled to ``H x W`` in the jet colour map; RGB ``uint8``."""
    from matplotlib import colormaps

    h, w = image.shape[:2]
    heat = upsample_map(torch.as_tensor(np.asarray(cam), dtype=torch.float32), (h, w))
    heat = minmax_normalise(heat.reshape(1, -1)).reshape(h, w).numpy()
    mixed = (1 - alpha) * image.astype(np.float32) / 255 + alpha * colormaps['jet'](heat)[..., :3]
    return (mixed.clip(0, 1) * 255).round().astype(np.uint8)


@dataclass
class Explanation:
    """Per-word Grad-CAM of one pair: ``cams[i]`` ``[gh, gw]`` is the map of ``words[i]``."""

    image: np.ndarray
    text: str
    words: list[str]
    cams: Tensor
    itm: float
    layer: int

    def overlays(self, alpha: float = 0.5) -> list[np.ndarray]:
        """One RGB ``uint8`` overlay per word, at the size of :attr:`image`."""
        return [overlay(self.image, cam, alpha) for cam in self.cams]

    def figure(self, panel_inches: float = 1.8, dpi: int = 100) -> np.ndarray:
        """The image and one overlay per word, titled with the text and the ITM probability."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = [(self.image, 'image')] + list(zip(self.overlays(), self.words))
        fig = Figure(figsize=(len(panels) * panel_inches, panel_inches + 0.6), dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        for i, (pixels, label) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            ax.imshow(pixels)
            ax.set_title(label, fontsize=8)
            ax.set_axis_off()
        fig.suptitle(f'{self.text}  (ITM p={self.itm:.2f}, fusion layer {self.layer})', fontsize=8)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def explain(model: nn.Module, image: ImageLike, text: str, layer: int | None = None) -> Explanation:
    """Word-level Grad-CAM of the ITM match logit on a fusion layer's cross-attention (``layer``;
    None: the model's ``gradcam_layer``, the layer its soft-masked ITM explains, when it has one,
    else ALBEF's visualisation layer 2; a fusion encoder too shallow for it falls back to its
    deepest layer with non-zero word maps). Word pieces of one word are averaged; special tokens and
    punctuation are left out.

    Example:
        >>> from vlreg.apis import init_model, explain
        >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')
        >>> ex = explain(model, 'synthetic:0:3', 'a red circle')
        >>> ex.words, tuple(ex.cams.shape), ex.figure().shape[2]
        (['a', 'red', 'circle'], (3, 6, 6), 3)
    """
    prep = _prep(model)
    pixels = model.data_preprocessor({'inputs': {'image': [_image_tensor(model, image)]}}, False)[
        'inputs'
    ]['image']
    ids, mask = tokenize(model, [text])
    wanted = gradcam_layer_of(model, layer)
    n_layers = len(getattr(model.fusion, 'layer', ())) or wanted + 1
    layer, _ = resolve_fusion_layer(wanted, n_layers)
    cam, logits = model.gradcam(pixels, ids, mask, layer=layer)
    tokens = prep.tokenize.tokenizer.convert_ids_to_tokens(ids[0].tolist())
    spans = content_words(tokens)
    grid = tuple(model.image_backbone.grid_size)
    cams = word_rows_mean(cam[0].float().cpu(), [rows for _, rows in spans])
    shown = _image_tensor(model, image).permute(1, 2, 0).numpy().astype(np.uint8)
    return Explanation(
        np.ascontiguousarray(shown),
        text,
        [w for w, _ in spans],
        cams.reshape(-1, *grid),
        float(logits.softmax(-1)[0, 1]),
        layer,
    )
