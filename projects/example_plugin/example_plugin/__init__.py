"""An example user package that adds components to vlreg without editing vlreg.

Importing this package registers, into vlreg's own registries (``vlreg.registry``):

* ``LOSSES``: :class:`TextUniformityLoss` (Wang & Isola's uniformity of the text embeddings);
* ``BACKBONES``: :class:`ConvStemViTBackbone` (a small ViT with a convolutional stem, same
  interface as ``TimmViTBackbone``);
* ``AUGMENTATIONS``: :class:`JitterBrightness` (usable in a pipeline by name: vlreg's
  ``TRANSFORMS`` falls back to ``AUGMENTATIONS``);
* ``METRICS``: :class:`MedianRankMetric` (median / mean rank of image-text retrieval).

A config loads it with ``custom_imports = dict(imports=['example_plugin'])``; the directory that
holds this package (``projects/example_plugin``) must be on ``sys.path`` (``PYTHONPATH``).
"""

from __future__ import annotations

from .backbones import ConvStemViTBackbone
from .losses import TextUniformityLoss
from .metrics import MedianRankMetric
from .transforms import JitterBrightness

__all__ = ['ConvStemViTBackbone', 'JitterBrightness', 'MedianRankMetric', 'TextUniformityLoss']
