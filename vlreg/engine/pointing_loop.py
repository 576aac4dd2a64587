"""Grad-CAM pointing evaluation: does a word's Grad-CAM peak inside the object the word names?

For datasets whose samples carry object boxes (``gt_bboxes``, xyxy pixels after the pipeline)
and, per caption, the indices of the caption words naming each object (metainfo
``gt_word_indices``), e.g. :class:`~vlreg.datasets.SyntheticShapesDataset` in retrieval mode.
For every image and its first ``num_captions`` captions the loop computes the model's word-level
Grad-CAM of the matching pair (``model.gradcam``, batched over pairs), averages the rows of the
tokens of each object's words, and scores a hit when the peak patch's centre lies inside that
object's box
(:func:`vlreg.evaluation.pointing.pointing_hit`). One dict per image goes to the evaluator
(:class:`~vlreg.evaluation.pointing.PointingMetric`).

When the metainfo also holds ``gt_box_groups`` (object k -> the indices of its boxes, aligned
with ``gt_word_indices``; e.g. :class:`~vlreg.datasets.coco_categories.LinkCategoryWords` for the
COCO pointing game, where a word names a category with several instances), a peak inside any box
of the group is a hit and the chance level is that of the union of the boxes; without it object
k is box k.

Words to token rows: from the batch's ``caption_word_ids`` (``[T, L]``, the caption word index of
each token, -1 for special tokens; ``word_ids`` for one-caption samples) when present; otherwise
token position = word index + 1 (the [CLS] in front), which is right for a word-level tokenizer
such as ``SyntheticTokenizer`` only.
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from torch import Tensor

from vlreg.evaluation.pointing import box_chance, pointing_hit
from vlreg.models.utils.softmask import resolve_fusion_layer
from vlreg.registry import LOOPS

from .hooks import unwrap
from .model_defaults import gradcam_layer_of

__all__ = ['GradCAMEvalMixin', 'GradCAMPointingLoop', 'GradCAMPointingValLoop', 'object_token_rows']


def object_token_rows(
    words: list[int], length: int, mask_row: Tensor, word_ids_row: Tensor | None = None
) -> list[int]:
    """Token positions (below ``length``) of the caption words ``words``.

    Args:
        words: whitespace-word indices of the caption naming one object.
        length: number of token positions of the Grad-CAM.
        mask_row: ``[L']`` attention mask of the caption (1 = real token).
        word_ids_row: ``[L'']`` word index of each token (-1 for specials), or None for the
            word-level rule ``position = word index + 1``.

    Returns:
        The positions, possibly empty (words truncated away).
    """
    wanted = {int(w) for w in words}
    if word_ids_row is not None:
        ids = word_ids_row[:length].tolist()
        valid = mask_row[:length].tolist()
        return [p for p, w in enumerate(ids) if w in wanted and p < len(valid) and valid[p]]
    limit = min(length, mask_row.shape[0])
    return [w + 1 for w in sorted(wanted) if 0 <= w + 1 < limit and bool(mask_row[w + 1])]


class GradCAMEvalMixin:
    """What every Grad-CAM evaluation loop shares (pointing here, grounding in
    :mod:`vlreg.engine.grounding_loop`): the fusion layer explained, the hook-calling run over the
    dataloader, and the protocol string added to the metrics.

    A loop mixes it in front of MMEngine's ``TestLoop`` / ``ValLoop``, calls
    :meth:`_init_gradcam` in ``__init__`` and implements ``score_batch(model, data_batch, layer)
    -> list`` (what ``evaluator.process`` receives for the batch) and :meth:`describe_protocol`.
    """

    runner: Any
    dataloader: Any
    evaluator: Any
    fp16: bool

    def _init_gradcam(self, layer: int | None, head_reduction: str) -> None:
        if head_reduction not in ('mean', 'max'):
            raise ValueError(f'head_reduction must be "mean" or "max", got {head_reduction!r}')
        self.layer, self.head_reduction = layer, head_reduction
        self._layer_logged = False

    def _resolve_layer(self, model: Any) -> int:
        wanted = gradcam_layer_of(model, self.layer)  # None: the model's own Grad-CAM layer
        layers = getattr(getattr(model, 'fusion', None), 'layer', None)
        if layers is None:
            return wanted
        layer, warning = resolve_fusion_layer(wanted, len(layers))
        if warning and not self._layer_logged:
            print_log(f'{type(self).__name__}: {warning}', logger='current', level=30)
            self._layer_logged = True
        return layer

    @staticmethod
    def _patch_grid(model: Any, num_patches: int) -> tuple[int, int]:
        """The image backbone's patch grid (a square one when it does not say)."""
        grid = tuple(getattr(getattr(model, 'image_backbone', None), 'grid_size', ()))
        if grid:
            return int(grid[0]), int(grid[1])
        side = int(round(num_patches**0.5))
        return side, side

    def describe_protocol(self, layer: int) -> str:
        """One line saying how the numbers were made (written into the metrics)."""
        return (
            f'Grad-CAM of the ITM match logit on fusion layer {layer}, heads {self.head_reduction}'
        )

    def score_batch(self, model: Any, data_batch: Any, layer: int) -> list:
        raise NotImplementedError

    def _run(self, mode: str) -> dict:
        runner = self.runner
        runner.call_hook(f'before_{mode}')
        runner.call_hook(f'before_{mode}_epoch')
        runner.model.eval()
        model = unwrap(runner.model)
        layer = self._resolve_layer(model)
        for idx, data_batch in enumerate(self.dataloader):
            runner.call_hook(f'before_{mode}_iter', batch_idx=idx, data_batch=data_batch)
            results = self.score_batch(model, data_batch, layer)
            self.evaluator.process(data_samples=results, data_batch=data_batch)
            runner.call_hook(
                f'after_{mode}_iter', batch_idx=idx, data_batch=data_batch, outputs=results
            )
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        prefix = (
            getattr(self.evaluator.metrics[0], 'prefix', None) if self.evaluator.metrics else None
        )
        metrics[f'{prefix}/protocol' if prefix else 'protocol'] = self.describe_protocol(layer)
        runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        runner.call_hook(f'after_{mode}')
        return metrics


class _PointingMixin(GradCAMEvalMixin):
    """The pointing run shared by the test and val loops (``mode`` picks the hook names)."""

    def _init_pointing(
        self,
        num_captions: int,
        layer: int | None,
        pair_batch_size: int,
        head_reduction: str,
        tolerance: float,
    ) -> None:
        if num_captions < 1:
            raise ValueError(f'num_captions must be >= 1, got {num_captions}')
        if pair_batch_size < 1:
            raise ValueError(f'pair_batch_size must be >= 1, got {pair_batch_size}')
        self._init_gradcam(layer, head_reduction)
        self.num_captions, self.pair_batch_size = num_captions, pair_batch_size
        self.tolerance = tolerance

    def describe_protocol(self, layer: int) -> str:
        return (
            f"{super().describe_protocol(layer)}; word map = mean of its tokens' rows; hit = "
            f'peak patch centre inside a box of the object (tolerance {self.tolerance:g} px); '
            f'first {self.num_captions} caption(s) per sample; chance = share of patch centres '
            'inside the boxes'
        )

    def score_batch(self, model: Any, data_batch: Any, layer: int) -> list[dict]:
        """One result dict per sample of the batch: ``hits``, ``total``, ``chance``, ``skipped``."""
        with torch.no_grad():
            data = model.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        image = inputs['image']
        image_hw = tuple(image.shape[-2:])
        if 'caption_ids' in inputs:  # retrieval samples: several captions per image
            ids, mask = inputs['caption_ids'], inputs['caption_attention_mask']
            owner = inputs['caption_image_index'].tolist()
            word_ids = inputs.get('caption_word_ids')
            several = True
        else:
            ids, mask = inputs['input_ids'], inputs['attention_mask']
            owner = list(range(image.shape[0]))
            word_ids = inputs.get('word_ids')
            several = False
        # (image b, caption row r, caption j of that image) for the first num_captions captions
        pairs, seen = [], [0] * image.shape[0]
        for row, b in enumerate(owner):
            if seen[b] < self.num_captions:
                pairs.append((b, row, seen[b]))
            seen[b] += 1
        grid: tuple[int, int] | None = None
        results = [
            dict(
                hits=0,
                total=0,
                chance=0.0,
                skipped=0,
                sample_idx=samples[b].metainfo.get('sample_idx', b),
            )
            for b in range(image.shape[0])
        ]
        for start in range(0, len(pairs), self.pair_batch_size):
            chunk = pairs[start : start + self.pair_batch_size]
            b_idx = torch.tensor([p[0] for p in chunk], device=image.device)
            r_idx = torch.tensor([p[1] for p in chunk], device=ids.device)
            m = mask[r_idx]
            length = int(m.any(0).nonzero().max()) + 1
            with autocast(enabled=self.fp16):
                cam, _ = model.gradcam(
                    image[b_idx],
                    ids[r_idx, :length],
                    m[:, :length],
                    layer=layer,
                    head_reduction=self.head_reduction,
                )
            cam = cam.float().cpu()
            grid = grid or self._patch_grid(model, cam.shape[-1])
            for i, (b, row, j) in enumerate(chunk):
                self._score_pair(
                    results[b],
                    samples[b],
                    cam[i],
                    j if several else None,
                    mask[row].cpu(),
                    None if word_ids is None else word_ids[row].cpu(),
                    grid,
                    image_hw,
                )
        return results

    def _score_pair(
        self,
        result: dict,
        sample: Any,
        cam: Tensor,
        caption: int | None,
        mask_row: Tensor,
        word_ids_row: Tensor | None,
        grid: tuple[int, int],
        image_hw: tuple[int, int],
    ) -> None:
        if 'gt_bboxes' not in sample or 'gt_word_indices' not in sample.metainfo:
            raise KeyError(
                'pointing evaluation needs samples with gt_bboxes and the metainfo '
                f'gt_word_indices; got {sorted(sample.keys())} and '
                f'{sorted(sample.metainfo_keys())}'
            )
        boxes = sample.gt_bboxes
        named = sample.metainfo['gt_word_indices']
        groups = sample.metainfo.get('gt_box_groups')  # object k -> its boxes (any of them hits)
        named = named[caption] if caption is not None else named
        if groups is not None and caption is not None:
            groups = groups[caption]
        for k, words in enumerate(named):
            rows = object_token_rows(list(words), cam.shape[0], mask_row, word_ids_row)
            if groups is None:
                target = boxes[k] if k < len(boxes) else None
            else:
                index = [int(i) for i in groups[k]] if k < len(groups) else []
                target = boxes[index] if index and max(index) < len(boxes) else None
            if not rows or target is None:
                result['skipped'] += 1
                continue
            word_map = cam[rows].mean(0).reshape(grid)
            result['hits'] += int(pointing_hit(word_map, target, image_hw, self.tolerance))
            result['total'] += 1
            result['chance'] += box_chance(grid, target, image_hw, self.tolerance)


@LOOPS.register_module()
class GradCAMPointingLoop(_PointingMixin, TestLoop):
    """Test loop: Grad-CAM pointing accuracy of each object's words (see the module docstring).

    Args:
        runner: the runner.
        dataloader: a dataloader (or its config) whose samples carry ``gt_bboxes`` and the metainfo
            ``gt_word_indices`` (retrieval-mode samples: one list per caption), optionally
            ``gt_box_groups`` (see the module docstring).
        evaluator: the evaluator (or its config), e.g. ``dict(type='PointingMetric')``.
        num_captions: captions scored per image (the first ones).
        layer: fusion layer whose cross-attention is explained; None (default): the model's
            ``gradcam_layer`` (the layer its soft-masked ITM explains) when it has one, else ALBEF's
            2 (a model with fewer fusion layers uses the deepest one before the last, with a
            warning).
        pair_batch_size: (image, caption) pairs per ``gradcam`` call.
        head_reduction: ``'mean'`` or ``'max'`` over the attention heads.
        tolerance: pixels added around every box.
        fp16: autocast the Grad-CAM passes.

    Example:
        >>> test_cfg = dict(type='GradCAMPointingLoop', num_captions=2)
        >>> test_evaluator = dict(type='PointingMetric')
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        num_captions: int = 1,
        layer: int | None = None,
        pair_batch_size: int = 64,
        head_reduction: str = 'mean',
        tolerance: float = 0.0,
        fp16: bool = False,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_pointing(num_captions, layer, pair_batch_size, head_reduction, tolerance)

    def run(self) -> dict:
        """Score every image and evaluate; returns the metrics."""
        return self._run('test')


@LOOPS.register_module()
class GradCAMPointingValLoop(_PointingMixin, ValLoop):
    """Validation loop with the protocol of :class:`GradCAMPointingLoop` (val hooks).

    Args:
        runner: the runner.
        dataloader: the dataloader (or its config).
        evaluator: the evaluator (or its config).
        num_captions: captions scored per image.
        layer: fusion layer to explain (None: the model's, see :class:`GradCAMPointingLoop`).
        pair_batch_size: pairs per ``gradcam`` call.
        head_reduction: ``'mean'`` or ``'max'``.
        tolerance: pixels added around every box.
        fp16: autocast the Grad-CAM passes.

    Example:
        >>> val_cfg = dict(type='GradCAMPointingValLoop', num_captions=1)
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        num_captions: int = 1,
        layer: int | None = None,
        pair_batch_size: int = 64,
        head_reduction: str = 'mean',
        tolerance: float = 0.0,
        fp16: bool = False,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_pointing(num_captions, layer, pair_batch_size, head_reduction, tolerance)

    def run(self) -> dict:
        """Score every image and evaluate; returns the metrics."""
        return self._run('val')
