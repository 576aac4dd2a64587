"""Weakly supervised grounding by Grad-CAM (ALBEF's RefCOCO+ protocol) as test / val loops.

For every expression of a batch, in one Grad-CAM pass over the whole batch (``model.gradcam``):

1. the Grad-CAM of the ITM match logit w.r.t. the cross-attention probabilities of fusion layer
   ``layer`` (ALBEF's ``block_num=8`` of BERT-base = the 3rd of the 6 fusion layers, index 2),
   heads averaged, one map ``[L, N_patches]`` per text token;
2. one map per expression ``[N_patches]``: the mean of the rows of the tokens chosen by
   ``tokens`` (ALBEF's Grounding.py averages every text position of the masked map, [CLS]
   included: ``'all'``, the default);
3. the map reshaped to the patch grid, upsampled (bicubic) to the original image size, and every
   proposal scored by the sum of the map inside it over ``area ** 0.5``
   (:func:`vlreg.evaluation.grounding.score_boxes_by_cam`); the best proposal is the prediction.

One dict per expression goes to the evaluator (``proposals``, ``proposal_scores``, ``pred_bbox``,
``ori_gt_bboxes``, ``split``; :class:`~vlreg.evaluation.grounding.GroundingAccuracyMetric`,
accuracy at IoU >= its ``thr``), and the metrics get a ``<prefix>/protocol`` line.

Samples come from :class:`~vlreg.datasets.GroundingDataset` (metainfo ``proposals`` and
``ori_gt_bboxes`` in original-image pixels, ``ori_shape`` from ``LoadImage``, ``split``); pack them
with ``PackInputs(meta_keys=GROUNDING_META_KEYS)``. Any image resize of the test pipeline is
undone by the upsampling to ``ori_shape``, as in ALBEF (a 384 x 384 resize of every image).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from torch import Tensor

from vlreg.evaluation.grounding import score_boxes_by_cam
from vlreg.registry import LOOPS

from .pointing_loop import GradCAMEvalMixin

__all__ = ['GradCAMGroundingLoop', 'GradCAMGroundingValLoop', 'TOKEN_REDUCTIONS', 'expression_maps']

#: How the token rows of an expression's Grad-CAM become one map (see :func:`expression_maps`).
TOKEN_REDUCTIONS = ('all', 'words', 'cls')


def expression_maps(
    cam: Tensor, attention_mask: Tensor, word_ids: Tensor | None = None, tokens: str = 'all'
) -> Tensor:
    """One Grad-CAM map per expression from the token-level maps.

    Args:
        cam: ``[B, L, N]`` token-level Grad-CAM.
        attention_mask: ``[B, L]`` (1 = real token).
        word_ids: ``[B, L]`` caption word of each token (-1 for special tokens), from
            ``AnnotateWords``; only read by ``tokens='words'``.
        tokens: ``'all'``: mean over every real token, [CLS] included (ALBEF's Grounding.py, whose
            mean over the padded length differs from this one by a per-expression factor that no
            box ranking sees); ``'words'``: mean over the tokens of the expression's words (no
            [CLS] / [SEP]; without ``word_ids``: every real token after position 0);
            ``'cls'``: the [CLS] row only.

    Returns:
        ``[B, N]``; an expression with no selected token gets an all-zero map.
    """
    if tokens not in TOKEN_REDUCTIONS:
        raise ValueError(f'tokens must be one of {TOKEN_REDUCTIONS}, got {tokens!r}')
    mask = attention_mask[:, : cam.shape[1]].to(cam.dtype)
    if tokens == 'cls':
        return cam[:, 0] * mask[:, 0:1]
    if tokens == 'words':
        if word_ids is not None:
            mask = mask * (word_ids[:, : cam.shape[1]] >= 0).to(cam.dtype)
        else:
            mask = mask.clone()
            mask[:, 0] = 0
    total = (cam * mask[:, :, None]).sum(1)
    return total / mask.sum(1, keepdim=True).clamp(min=1)


def _image_hw(sample: Any, where: str) -> tuple[int, int]:
    """Original ``(H, W)`` of a sample's image: ``ori_shape`` (``LoadImage``), else height,
    width."""
    shape = sample.metainfo.get('ori_shape')
    if shape is not None:
        return int(shape[0]), int(shape[1])
    h, w = sample.metainfo.get('height'), sample.metainfo.get('width')
    if h is None or w is None:
        raise KeyError(
            f'{where}: grounding needs the original image size (metainfo ori_shape '
            'from LoadImage, or height / width); add them to PackInputs meta_keys'
        )
    return int(h), int(w)


class _GroundingMixin(GradCAMEvalMixin):
    """The grounding run shared by the test and val loops."""

    def _init_grounding(
        self,
        layer: int | None,
        head_reduction: str,
        tokens: str,
        area_exponent: float,
        interpolation: str,
    ) -> None:
        if tokens not in TOKEN_REDUCTIONS:
            raise ValueError(f'tokens must be one of {TOKEN_REDUCTIONS}, got {tokens!r}')
        if interpolation not in ('bicubic', 'bilinear', 'nearest'):
            raise ValueError(
                f'interpolation must be bicubic, bilinear or nearest, got {interpolation!r}'
            )
        self._init_gradcam(layer, head_reduction)
        self.tokens, self.area_exponent = tokens, float(area_exponent)
        self.interpolation = interpolation
        self.num_without_proposals = 0

    def describe_protocol(self, layer: int) -> str:
        thr = getattr(self.evaluator.metrics[0], 'thr', None) if self.evaluator.metrics else None
        hit = f'; hit = IoU >= {thr:g} with a ground-truth box' if thr is not None else ''
        return (
            f'{super().describe_protocol(layer)}; expression map = mean over tokens '
            f'"{self.tokens}"; {self.interpolation} upsampling to the original image; proposal '
            f'score = sum inside / area^{self.area_exponent:g}; best proposal{hit}'
        )

    def _run(self, mode: str) -> dict:
        self.num_without_proposals = 0
        metrics = super()._run(mode)
        if self.num_without_proposals:
            print_log(
                f'{type(self).__name__}: {self.num_without_proposals} expressions had no '
                'proposal and count as misses',
                logger='current',
                level=30,
            )
        return metrics

    def score_batch(self, model: Any, data_batch: Any, layer: int) -> list[dict]:
        """One result dict per expression (see the module docstring)."""
        with torch.no_grad():
            data = model.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        ids, mask = inputs['input_ids'], inputs['attention_mask']
        with autocast(enabled=self.fp16):
            cam, _ = model.gradcam(
                inputs['image'], ids, mask, layer=layer, head_reduction=self.head_reduction
            )
        word_ids = inputs.get('word_ids')
        maps = expression_maps(cam.float(), mask, word_ids, self.tokens).cpu()
        grid = self._patch_grid(model, maps.shape[-1])
        return [
            self._score_sample(sample, maps[b].reshape(grid), b) for b, sample in enumerate(samples)
        ]

    def _score_sample(self, sample: Any, grid_map: Tensor, b: int) -> dict:
        meta = sample.metainfo
        where = (
            f'sample {meta.get("sample_idx", b)} ({meta.get("img_path")!r}, ref_id '
            f'{meta.get("ref_id")!r})'
        )
        if 'proposals' not in meta or 'ori_gt_bboxes' not in meta:
            raise KeyError(
                f'{where}: grounding needs the metainfo "proposals" and '
                '"ori_gt_bboxes" (PackInputs(meta_keys=GROUNDING_META_KEYS))'
            )
        proposals = torch.as_tensor(np.asarray(meta['proposals'], dtype=np.float64)).reshape(-1, 4)
        result = dict(
            sample_idx=meta.get('sample_idx', b),
            ref_id=meta.get('ref_id'),
            split=meta.get('split'),
            ori_gt_bboxes=meta['ori_gt_bboxes'],
            proposals=proposals,
        )
        if not len(proposals):
            self.num_without_proposals += 1
            result.update(
                pred_bbox=torch.zeros(4, dtype=torch.float64),
                proposal_scores=torch.zeros(0, dtype=torch.float64),
            )
            return result
        scores = score_boxes_by_cam(
            grid_map,
            proposals,
            _image_hw(sample, where),
            alpha=self.area_exponent,
            interpolation=self.interpolation,
        )
        result.update(proposal_scores=scores, pred_bbox=proposals[int(torch.argmax(scores))])
        return result


@LOOPS.register_module()
class GradCAMGroundingLoop(_GroundingMixin, TestLoop):
    """Test loop: weakly supervised grounding accuracy by Grad-CAM (see the module docstring).

    Args:
        runner: the runner.
        dataloader: a dataloader (or its config) over :class:`~vlreg.datasets.GroundingDataset`.
        evaluator: the evaluator (or its config), e.g.
            ``dict(type='GroundingAccuracyMetric', thr=0.5)``.
        layer: fusion layer whose cross-attention is explained; None (default): the model's
            ``gradcam_layer`` when it has one, else ALBEF's 2 = BERT layer 8 (a model with fewer
            fusion layers uses the deepest one before the last, with a warning).
        head_reduction: ``'mean'`` (ALBEF) or ``'max'`` over the attention heads.
        tokens: ``'all'`` (ALBEF), ``'words'`` or ``'cls'``: see :func:`expression_maps`.
        area_exponent: proposal score = sum inside / area ** this (ALBEF: 0.5).
        interpolation: upsampling of the patch-grid map to the image (ALBEF: ``'bicubic'``).
        fp16: autocast the Grad-CAM pass.

    Example:
        >>> test_cfg = dict(type='GradCAMGroundingLoop', tokens='all')
        >>> test_evaluator = dict(type='GroundingAccuracyMetric', thr=0.5)
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        layer: int | None = None,
        head_reduction: str = 'mean',
        tokens: str = 'all',
        area_exponent: float = 0.5,
        interpolation: str = 'bicubic',
        fp16: bool = False,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_grounding(layer, head_reduction, tokens, area_exponent, interpolation)

    def run(self) -> dict:
        """Ground every expression and evaluate; returns the metrics."""
        return self._run('test')


@LOOPS.register_module()
class GradCAMGroundingValLoop(_GroundingMixin, ValLoop):
    """Validation loop with the protocol of :class:`GradCAMGroundingLoop` (val hooks; ALBEF
    evaluates grounding after every fine-tuning epoch and keeps the best on val).

    Args:
        runner: the runner.
        dataloader: the dataloader (or its config).
        evaluator: the evaluator (or its config).
        layer: fusion layer to explain (None: the model's, see :class:`GradCAMGroundingLoop`).
        head_reduction: ``'mean'`` or ``'max'``.
        tokens: ``'all'``, ``'words'`` or ``'cls'``.
        area_exponent: area exponent of the proposal score.
        interpolation: upsampling mode.
        fp16: autocast the Grad-CAM pass.

    Example:
        >>> val_cfg = dict(type='GradCAMGroundingValLoop')
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        layer: int | None = None,
        head_reduction: str = 'mean',
        tokens: str = 'all',
        area_exponent: float = 0.5,
        interpolation: str = 'bicubic',
        fp16: bool = False,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_grounding(layer, head_reduction, tokens, area_exponent, interpolation)

    def run(self) -> dict:
        """Ground every expression and evaluate; returns the metrics."""
        return self._run('val')
