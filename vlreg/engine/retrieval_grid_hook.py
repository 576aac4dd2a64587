"""At each retrieval validation, a picture next to the scalars: fixed queries and their top images.

:class:`RetrievalGridHook` takes the first caption of a few evenly spaced validation images as
fixed queries (the same every validation, so the grids of successive epochs compare), ranks every
validation image for each of them with the evaluation's protocol (ITC, then the ITC top-``k``
re-ranked by the ITM match logit) and writes one grid to the visualizer (TensorBoard:
``retrieval/top{top}``): one row per query, its top images left to right, the correct image
outlined in green, the others in grey.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from torch import Tensor

from vlreg.evaluation.retrieval import topk_rerank
from vlreg.registry import HOOKS

from .hooks import unwrap
from vlreg.utils.rng import preserved_rng

from .visualization_hook import eval_mode

__all__ = ['RetrievalGridHook', 'render_retrieval_grid']


def render_retrieval_grid(
    queries: list[str],
    images: list[np.ndarray],
    ranked: list[list[int]],
    correct: list[int],
    panel_inches: float = 1.3,
    dpi: int = 100,
) -> np.ndarray:
    """Rows of ``images[ranked[q][j]]``; the one equal to ``correct[q]`` outlined in green."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(len(r) for r in ranked)
    fig = Figure(figsize=(cols * panel_inches + 2.4, len(queries) * panel_inches), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    for q, (text, row) in enumerate(zip(queries, ranked, strict=True)):
        label = fig.add_subplot(len(queries), cols + 1, q * (cols + 1) + 1)
        label.text(0, 0.5, textwrap.fill(text, 22), fontsize=7, va='center')
        label.set_axis_off()
        for j, idx in enumerate(row):
            ax = fig.add_subplot(len(queries), cols + 1, q * (cols + 1) + j + 2)
            ax.imshow(images[idx])
            ax.set_xticks([])
            ax.set_yticks([])
            hit = idx == correct[q]
            for spine in ax.spines.values():
                spine.set_edgecolor('#00c000' if hit else '#bbbbbb')
                spine.set_linewidth(4 if hit else 1)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.08)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


@HOOKS.register_module()
class RetrievalGridHook(Hook):
    """Write a grid of fixed text queries and their top images after each validation.

    Args:
        num_queries: fixed queries (first captions of evenly spaced validation images).
        top: images shown per query.
        k: ITM re-rank depth (the evaluation's ``k``; 0 = ITC only).
        max_images: rank among the first ``max_images`` validation images at most (cost bound).
        batch_size: images / pairs per forward pass.
    """

    priority = 'LOW'

    def __init__(
        self,
        num_queries: int = 4,
        top: int = 5,
        k: int = 16,
        max_images: int = 256,
        batch_size: int = 32,
    ) -> None:
        if num_queries < 1 or top < 1 or k < 0:
            raise ValueError('num_queries and top must be >= 1 and k >= 0')
        self.num_queries, self.top, self.k = num_queries, top, k
        self.max_images, self.batch_size = max_images, batch_size

    def render(self, runner: Any) -> np.ndarray:
        """The grid of the runner's model on its validation set (RGB ``uint8``)."""
        return render_retrieval_grid(*self.rank_queries(runner))

    @torch.no_grad()
    def rank_queries(
        self, runner: Any
    ) -> tuple[list[str], list[np.ndarray], list[list[int]], list[int]]:
        """(query captions, images, each query's top image indices, each query's image)."""
        model = unwrap(runner.model)
        dataset = runner.val_dataloader.dataset
        n = min(len(dataset), self.max_images)
        samples = [dataset[i] for i in range(n)]
        pixels = [s['inputs']['image'] for s in samples]
        tokens, embeds = [], []
        for start in range(0, n, self.batch_size):
            batch = pseudo_collate(
                [{'inputs': {'image': p}} for p in pixels[start : start + self.batch_size]]
            )
            image = model.data_preprocessor(batch, False)['inputs']['image']
            t, e = model.encode_image(image)
            tokens.append(t)
            embeds.append(e)
        image_tokens, image_embed = torch.cat(tokens), torch.cat(embeds)
        picks = np.linspace(0, n - 1, min(self.num_queries, n)).round().astype(int).tolist()
        ids = [_trim(samples[i]['inputs']['caption_ids'][0]) for i in picks]
        text = model.data_preprocessor({'inputs': {'input_ids': ids}}, False)['inputs']
        mask = text['attention_mask']
        text_tokens, text_embed = model.encode_text(text['input_ids'], mask)
        sim = text_embed @ image_embed.t()

        def itm(q: Tensor, c: Tensor) -> Tensor:
            return model.itm_logits(text_tokens[q], mask[q], image_tokens[c])[:, 1]

        scores = (
            sim
            if self.k == 0 or getattr(model, 'itm_head', None) is None
            else topk_rerank(sim, self.k, itm, self.batch_size)
        )
        ranked = scores.sort(dim=1, descending=True, stable=True).indices[:, : self.top].tolist()
        captions = [_caption(samples[i]) for i in picks]
        shown = [p.permute(1, 2, 0).cpu().numpy().astype(np.uint8) for p in pixels]
        return captions, shown, ranked, picks

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        if not is_main_process():
            return
        with preserved_rng(), eval_mode(unwrap(runner.model)):
            grid = self.render(runner)
        runner.visualizer.add_image(f'retrieval/top{self.top}', grid, step=runner.epoch)


def _trim(ids: Tensor) -> Tensor:
    """A padded caption row without its trailing padding (id 0)."""
    nonzero = (ids != 0).nonzero()
    return ids[: int(nonzero.max()) + 1] if nonzero.numel() else ids


def _caption(sample: dict) -> str:
    meta = sample['data_samples'].metainfo
    captions = meta.get('captions') or [meta.get('caption', '')]
    return str(captions[0])
