"""Values that hooks, loops, the API and the tools read from the model unless told otherwise.

A config states the Grad-CAM layer once, in the loss that uses it (``SoftMaskITMLoss(layer=...)``;
``ALBEFPretrainer`` keeps it as ``gradcam_layer``), and the distillation weight once, as the
model's ``alpha``. Everything else that needs them calls these functions with its own argument:
``None`` (the default everywhere) reads the model, a number overrides it.
"""

from __future__ import annotations

from typing import Any

from mmengine.model import is_model_wrapper

DEFAULT_GRADCAM_LAYER = 2  # ALBEF's Grad-CAM layer: the 3rd of 6 fusion layers (BERT layer 8)


def _bare(model: Any) -> Any:
    return model.module if is_model_wrapper(model) else model


def gradcam_layer_of(model: Any, layer: int | None = None) -> int:
    """The fusion layer to explain: ``layer`` when given, else the model's ``gradcam_layer``
    (the layer its soft-masked ITM explains) when it has one, else ALBEF's default 2.

    The result is not checked against the fusion depth here; callers pass it to
    :func:`vlreg.models.utils.softmask.resolve_fusion_layer`.
    """
    if layer is not None:
        return int(layer)
    found = getattr(_bare(model), 'gradcam_layer', None)
    return DEFAULT_GRADCAM_LAYER if found is None else int(found)


def alpha_of(model: Any, alpha: float | None = None) -> float:
    """The distillation weight: ``alpha`` when given, else the model's ``alpha`` attribute.

    Raises:
        AttributeError: ``alpha`` is None and the model has no ``alpha`` (say which to set).
    """
    if alpha is not None:
        return float(alpha)
    bare = _bare(model)
    if getattr(bare, 'alpha', None) is None:
        raise AttributeError(
            f'{type(bare).__name__} has no `alpha` to read: set it on the model '
            '(model.alpha in the config) or pass alpha= explicitly'
        )
    return float(bare.alpha)
