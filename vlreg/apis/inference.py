"""A small inference API: build a model from a config, load a checkpoint, score and explain pairs."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from torch import Tensor

from vlreg.engine.model_defaults import gradcam_layer_of
from vlreg.engine.runner import ALLOWED_MISSING, load_checked
from vlreg.models.utils.checkpoint import load_state_dict_file
from vlreg.registry import MODELS
from vlreg.utils.compat import setup_env

from .encode import without_loading

#: Missing keys :func:`init_model` accepts besides the Runner's: the MLM decoder, tied to the word
#: embeddings (files converted from other code bases may store only one of the two names).
API_ALLOWED_MISSING = (*ALLOWED_MISSING, '*decoder.weight')


def init_model(
    config: str | Config, checkpoint: str | None = None, device: str = 'cpu', partial: bool = False
) -> torch.nn.Module:
    """Build ``config.model`` (scope vlreg), load ``checkpoint`` and switch to eval.

    ``checkpoint`` is a Runner checkpoint, a state dict, or an export of ``tools/export.py``
    (``.safetensors``, no momentum encoders or queues: the momentum copies are then set to the
    online weights, the queues keep their initialisation; neither is used at inference). The file
    is read with ``weights_only=True`` (whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says) and must
    fit the model: other missing / unexpected keys (beyond :data:`API_ALLOWED_MISSING`) and shape
    mismatches raise :class:`~vlreg.engine.runner.CheckpointFitError` listing them, unless
    ``partial=True`` (shape mismatches always raise).
    """
    setup_env()
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope', 'vlreg'))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        state = {k.removeprefix('module.'): v for k, v in load_state_dict_file(checkpoint).items()}
        load_checked(
            model,
            state,
            checkpoint,
            partial=partial,
            allow_missing=API_ALLOWED_MISSING,
            export=True,
        )
        if any(k.startswith('mlm_head.') and k not in state for k in model.state_dict()):
            print_log(
                f'{checkpoint} has no MLM head (a retrieval export): it stays random',
                logger='current',
                level=logging.WARNING,
            )
    model.cfg = cfg
    return model.to(device).eval()


class PairScorer:
    """Score and explain (image, caption) pairs with a model and its config's test pipeline.

    The pipeline is the config's ``test_dataloader.dataset.pipeline``; images may be paths (``LoadImage``
    in the pipeline reads them) or RGB ``uint8`` arrays (run through the pipeline without its
    ``LoadImage`` steps, :attr:`array_pipeline`).

    Example:
        >>> scorer = PairScorer(init_model(cfg_path, ckpt))
        >>> scorer.itm_scores([img], ['a red circle'])          # match probabilities
        >>> cams, tokens = scorer.gradcam(img, 'a red circle')  # per-word maps over the patch grid
    """

    def __init__(self, model: torch.nn.Module, pipeline: list | None = None) -> None:
        self.model = model
        cfg = model.cfg
        steps = pipeline if pipeline is not None else cfg.test_dataloader.dataset.pipeline
        self.pipeline = Compose(list(steps))
        #: the same steps for an image given as an array: nothing to load
        self.array_pipeline = Compose(without_loading(self.pipeline.transforms))

    def _batch(self, images: list[Any], captions: list[str]) -> dict[str, Tensor]:
        samples = []
        for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
            results: dict[str, Any] = dict(caption=caption, sample_idx=i, image_id=i)
            if isinstance(image, np.ndarray):
                results.update(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2])
                samples.append(self.array_pipeline(results))
            else:
                results['img_path'] = str(image)
                samples.append(self.pipeline(results))
        return self.model.data_preprocessor(pseudo_collate(samples), False)['inputs']

    @torch.no_grad()
    def itm_scores(self, images: list[Any], captions: list[str]) -> Tensor:
        inputs = self._batch(images, captions)
        image_tokens, _ = self.model.encode_image(inputs['image'])
        text_tokens, _ = self.model.encode_text(inputs['input_ids'], inputs['attention_mask'])
        logits = self.model.itm_logits(text_tokens, inputs['attention_mask'], image_tokens)
        return logits.softmax(dim=-1)[:, 1]

    def gradcam(
        self, image: Any, caption: str, layer: int | None = None
    ) -> tuple[Tensor, list[str]]:
        """Per-token Grad-CAM ``[L, grid_h, grid_w]`` and the tokens, for one pair, on fusion layer
        ``layer`` (None: the model's ``gradcam_layer`` when it has one, else ALBEF's 2)."""
        inputs = self._batch([image], [caption])
        cam, _ = self.model.gradcam(
            inputs['image'],
            inputs['input_ids'],
            inputs['attention_mask'],
            layer=gradcam_layer_of(self.model, layer),
        )
        grid = self.model.image_backbone.grid_size
        ids = inputs['input_ids'][0].tolist()
        tokenizer = next(
            (t.tokenizer for t in self.pipeline.transforms if hasattr(t, 'tokenizer')), None
        )
        tokens = (
            tokenizer.convert_ids_to_tokens(ids) if tokenizer is not None else [str(i) for i in ids]
        )
        return cam[0].reshape(len(ids), *grid), tokens
