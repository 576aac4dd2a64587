"""See the soft masks while training: word-level Grad-CAM and the soft-masked image, as images.

:func:`render_softmask_figure` draws one (image, caption) pair: the image, one Grad-CAM overlay per
content word of the caption, and the image multiplied by the soft mask of the chosen word (what the
fusion encoder's patch tokens get in the soft-masked ITM loss). ``tools/visualize_softmask.py`` and
:class:`SoftMaskVisualizationHook` share it.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from torch import Tensor

from vlreg.models.utils.softmask import (
    content_words,
    minmax_normalise,
    resolve_fusion_layer,
    soft_mask_from_cam,
    upsample_map,
    word_rows_mean,
)
from vlreg.registry import HOOKS
from vlreg.utils.rng import preserved_rng

from .hooks import unwrap
from .model_defaults import gradcam_layer_of

__all__ = ['SoftMaskVisualizationHook', 'find_tokenizer', 'render_softmask_figure', 'stack_figures']

WORD_CHOICES = ('random', 'first')


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def render_softmask_figure(
    image_uint8: np.ndarray,
    tokens: Sequence[str],
    cams: Any,
    chosen: int,
    mask: Any,
    title: str | None = None,
    max_cols: int = 8,
    panel_inches: float = 1.8,
    dpi: int = 100,
) -> np.ndarray:
    """Draw one pair: the image, a Grad-CAM overlay per word, the soft-masked image of ``chosen``.

    Args:
        image_uint8: RGB ``uint8 [H, W, 3]``, the image as the model saw it.
        tokens: the label of each map (one per word; wordpieces already merged).
        cams: ``[W, gh, gw]`` Grad-CAM of each word over the patch grid (Tensor or array).
        chosen: index in ``tokens`` of the word whose soft mask is shown.
        mask: the soft mask of ``chosen``, ``[gh, gw]`` (upsampled bilinearly) or ``[H, W]``.
        title: written above the panels (e.g. the caption and the ITM score).
        max_cols: panels per row; more words wrap to further rows.
        panel_inches: side of one panel.
        dpi: resolution of the drawing.

    Returns:
        RGB ``uint8 [h, w, 3]``.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(image_uint8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f'image_uint8 must be RGB uint8 [H, W, 3], got {image.dtype} {image.shape}')
    h, w = image.shape[:2]
    cams_t = torch.as_tensor(_to_numpy(cams), dtype=torch.float32)
    if cams_t.dim() != 3 or cams_t.shape[0] != len(tokens):
        raise ValueError(
            f'cams must be [W, gh, gw] with W = {len(tokens)} words, got {list(cams_t.shape)}'
        )
    if not 0 <= chosen < len(tokens):
        raise IndexError(f'chosen word {chosen} is out of range for {len(tokens)} words')
    heat = minmax_normalise(upsample_map(cams_t, (h, w)).flatten(1)).reshape(-1, h, w).numpy()
    mask_t = torch.as_tensor(_to_numpy(mask), dtype=torch.float32)
    mask_min = float(mask_t.min())  # before resizing: the value the weakest patch token gets
    if tuple(mask_t.shape) != (h, w):
        mask_t = upsample_map(mask_t, (h, w))
    masked = (image.astype(np.float32) * mask_t.clamp(0, 1).numpy()[..., None]).round()
    masked = masked.clip(0, 255).astype(np.uint8)

    cmap = colormaps['jet']
    panels: list[tuple[np.ndarray, str, dict]] = [(image, 'image', {})]
    for k, word in enumerate(tokens):
        overlay = 0.5 * image.astype(np.float32) / 255 + 0.5 * cmap(heat[k])[..., :3]
        style = dict(color='red', fontweight='bold') if k == chosen else {}
        panels.append((overlay.clip(0, 1), word, style))
    panels.append((masked, f'soft mask: {tokens[chosen]}\nmin {mask_min:.2f}', dict(color='red')))

    cols = min(len(panels), max_cols)
    rows = math.ceil(len(panels) / cols)
    title_lines = textwrap.wrap(title, width=max(20, int(cols * panel_inches * 9))) if title else []
    head = 0.22 * len(title_lines) + (0.1 if title_lines else 0.0)
    fig = Figure(figsize=(cols * panel_inches, rows * (panel_inches + 0.3) + head), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    total_h = rows * (panel_inches + 0.3) + head
    for i, (pixels, label, style) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(pixels, interpolation='nearest')
        ax.set_title(label, fontsize=8, **style)
        ax.set_axis_off()
    if title_lines:
        fig.suptitle('\n'.join(title_lines), fontsize=8, y=1.0 - 0.05 / total_h, va='top')
    fig.subplots_adjust(
        left=0.01,
        right=0.99,
        bottom=0.01,
        wspace=0.05,
        top=1.0 - (head + 0.3) / total_h,
        hspace=0.3 / (panel_inches + 0.3) * 2,
    )
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def stack_figures(figures: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack RGB figures vertically, padding narrower ones on the right with white."""
    if not figures:
        raise ValueError('no figure to stack')
    width = max(f.shape[1] for f in figures)
    parts = []
    for k, fig in enumerate(figures):
        pad = np.full((fig.shape[0], width - fig.shape[1], 3), 255, dtype=np.uint8)
        parts.append(np.concatenate([fig, pad], axis=1))
        if gap and k < len(figures) - 1:
            parts.append(np.full((gap, width, 3), 200, dtype=np.uint8))
    return np.concatenate(parts, axis=0)


def find_tokenizer(pipeline: Any) -> Any:
    """The first ``tokenizer`` attribute among a pipeline's transforms (a ``Compose`` or a list)."""
    steps = getattr(pipeline, 'transforms', pipeline) or []
    return next((t.tokenizer for t in steps if hasattr(t, 'tokenizer')), None)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Switch every submodule to eval and restore each one's own ``training`` flag on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@HOOKS.register_module()
class SoftMaskVisualizationHook(Hook):
    """Log the word-level Grad-CAM and the soft-masked image of a fixed batch, every ``interval``.

    Once, on first use, the hook takes ``num_samples`` distinct images (and the first caption of
    each) from the start of the validation dataset (else an already built test dataset, else the
    train dataset), reading the dataset items directly so that no dataloader iterator or worker is
    disturbed. Every ``interval`` training iterations, on rank 0 only, it runs the model's
    ``gradcam`` (``torch.autograd.grad`` w.r.t. the attention probabilities only: parameter
    gradients, momentum encoders and queues are untouched) in eval mode, restores each module's
    train / eval flag and all random states afterwards (training continues exactly as without the
    hook), and logs one image per call, one row per sample drawn by
    :func:`render_softmask_figure`, through ``runner.visualizer.add_image('softmask', image,
    step)`` (LocalVisBackend: ``vis_data/vis_image/softmask_<step>.png``; TensorBoard: tag
    ``softmask``). ``step`` is ``runner.iter + 1``, the number of finished iterations, the step
    of the loss scalars of the same iteration.

    Args:
        interval: log every ``interval`` training iterations (``<= 0`` never).
        num_samples: images in the fixed batch.
        layer: fusion layer whose cross-attention is explained; None (default): the model's
            ``gradcam_layer`` (the layer its soft-masked ITM explains) when it has one, else
            ALBEF's 2, the third (a model with fewer fusion layers uses the deepest one before
            the last, with a warning).
        word: which content word's soft mask is drawn: ``'random'`` (drawn once per sample with a
            generator seeded by ``seed``, then fixed, so the figures stay comparable over
            training) or ``'first'``. Every word gets a Grad-CAM panel; when the samples carry
            ``AnnotateWords``' content mask, the soft-masked word is drawn among the words the
            soft-masked ITM loss may pick (stop words out).
        floor: lower bound of the mask (see
            :func:`~vlreg.models.utils.softmask.soft_mask_from_cam`).
        sharpness: exponent of the normalised map.
        strength: scale of the damping.
        seed: seed of the word choice.
        max_cols: panels per figure row.

    Example:
        >>> custom_hooks = [dict(type='SoftMaskVisualizationHook', interval=500, num_samples=4)]
    """

    priority = 'LOW'

    def __init__(
        self,
        interval: int = 500,
        num_samples: int = 4,
        layer: int | None = None,
        word: str = 'random',
        floor: float = 0.0,
        sharpness: float = 1.0,
        strength: float = 1.0,
        seed: int = 0,
        max_cols: int = 8,
    ) -> None:
        if word not in WORD_CHOICES:
            raise ValueError(f'word must be one of {WORD_CHOICES}, got {word!r}')
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        self.interval, self.num_samples, self.layer, self.word = interval, num_samples, layer, word
        self.mask_kwargs = dict(floor=floor, sharpness=sharpness, strength=strength)
        self.seed, self.max_cols = seed, max_cols
        self._batch: dict | None = None

    # -- the fixed batch ---------------------------------------------------------------------------
    @staticmethod
    def _dataset(runner: Any) -> Any:
        for attr in ('_val_loop', '_test_loop'):
            loop = getattr(runner, attr, None)
            if isinstance(loop, BaseLoop) and getattr(loop, 'dataloader', None) is not None:
                return loop.dataloader.dataset
        return runner.train_dataloader.dataset

    def _capture(self, runner: Any) -> dict:
        dataset = self._dataset(runner)
        tokenizer = find_tokenizer(getattr(dataset, 'pipeline', None))
        pad_id = int(getattr(tokenizer, 'pad_token_id', 0))
        items, captions, selectable, seen = [], [], [], set()
        for idx in range(min(len(dataset), 50 * self.num_samples)):
            item = dataset[idx]
            sample = item['data_samples']
            image_id = sample.metainfo.get('image_id', idx)
            if image_id in seen:
                continue
            seen.add(image_id)
            inputs = item['inputs']
            if 'caption_ids' in inputs:
                ids = torch.as_tensor(inputs['caption_ids'])
                ids = ids[0] if ids.dim() == 2 else ids
                length = int((ids != pad_id).nonzero().max()) + 1 if (ids != pad_id).any() else 1
                ids = ids[:length]
                text = (sample.metainfo.get('captions') or [''])[0]
                content = inputs.get('caption_content_mask')
                content = None if content is None else torch.as_tensor(content)[0][:length]
            else:
                ids = torch.as_tensor(inputs['input_ids'])
                text = sample.metainfo.get('caption', '')
                content = inputs.get('content_mask')
            # AnnotateWords' content mask (stop words out): the words the soft-mask loss may pick
            selectable.append(None if content is None else torch.as_tensor(content).tolist())
            items.append(
                {'inputs': {'image': inputs['image'], 'input_ids': ids}, 'data_samples': sample}
            )
            captions.append(text)
            if len(items) == self.num_samples:
                break
        if not items:
            raise RuntimeError('SoftMaskVisualizationHook: the dataset has no sample')
        rng = np.random.default_rng(self.seed)
        words, chosen = [], []
        for item, content in zip(items, selectable):
            ids = item['inputs']['input_ids'].tolist()
            if tokenizer is not None:
                tokens = tokenizer.convert_ids_to_tokens(ids)
            else:  # no tokenizer to name the tokens: every non-first position is a word
                tokens = ['[CLS]'] + [f'#{i}' for i in ids[1:]]
            spans = content_words(tokens)
            words.append(spans)
            options = list(range(len(spans)))
            if content is not None:
                options = [
                    k
                    for k, (_, rows) in enumerate(spans)
                    if any(p < len(content) and content[p] for p in rows)
                ] or options
            if not options:
                chosen.append(0)
            elif self.word == 'first':
                chosen.append(options[0])
            else:
                chosen.append(options[int(rng.integers(len(options)))])
        return dict(data=pseudo_collate(items), captions=captions, words=words, chosen=chosen)

    # -- drawing -----------------------------------------------------------------------------------
    def render(self, runner: Any) -> np.ndarray:
        """The figure of the fixed batch with the model as it is now (RGB ``uint8``)."""
        if self._batch is None:
            self._batch = self._capture(runner)
        batch = self._batch
        model = unwrap(runner.model)
        fusion_layers = getattr(getattr(model, 'fusion', None), 'layer', None)
        wanted = gradcam_layer_of(model, self.layer)  # None: the model's own Grad-CAM layer
        layer, warning = (
            (wanted, None)
            if fusion_layers is None
            else resolve_fusion_layer(wanted, len(fusion_layers))
        )
        if warning and not getattr(self, '_warned', False):
            runner.logger.warning(f'SoftMaskVisualizationHook: {warning}')
            self._warned = True
        with eval_mode(model):
            inputs = model.data_preprocessor(batch['data'], False)['inputs']
            cam, logits = model.gradcam(
                inputs['image'], inputs['input_ids'], inputs['attention_mask'], layer=layer
            )
        grid = tuple(model.image_backbone.grid_size)
        probs = logits.float().softmax(-1)[:, 1].cpu()
        cam = cam.float().cpu()
        figures = []
        for b, spans in enumerate(batch['words']):
            image = batch['data']['inputs']['image'][b].permute(1, 2, 0).cpu().numpy()
            title = (
                f'{batch["captions"][b]}  (itm p={float(probs[b]):.2f}, layer {layer}, '
                f'iter {runner.iter + 1})'
            )
            if not spans:
                spans = [('(no word)', [0])]
            word_cams = word_rows_mean(cam[b], [rows for _, rows in spans])
            pick = batch['chosen'][b]
            mask = soft_mask_from_cam(word_cams[pick][None], **self.mask_kwargs)[0]
            figures.append(
                render_softmask_figure(
                    np.ascontiguousarray(image.astype(np.uint8)),
                    [w for w, _ in spans],
                    word_cams.reshape(-1, *grid),
                    pick,
                    mask.reshape(grid),
                    title=title,
                    max_cols=self.max_cols,
                )
            )
        return stack_figures(figures)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.interval <= 0 or not self.every_n_train_iters(runner, self.interval):
            return
        if not is_main_process():
            return
        with preserved_rng():
            image = self.render(runner)
        runner.visualizer.add_image('softmask', image, step=runner.iter + 1)
