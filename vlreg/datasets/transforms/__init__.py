"""Data transforms: loading, image augmentations, text processing and packing."""
from __future__ import annotations

from .formatting import PackInputs
from .image import (ColorJitter, GaussianBlur, HorizontalFlip, RandAugment, RandomResizedCrop,
                    Resize, ToGray)
from .loading import BadSampleError, LoadImage, describe_sample
from .text import CleanCaption, MaskText, Tokenize, clean_caption

__all__ = ['BadSampleError', 'CleanCaption', 'ColorJitter', 'GaussianBlur', 'HorizontalFlip',
           'LoadImage', 'MaskText', 'PackInputs', 'RandAugment', 'RandomResizedCrop', 'Resize',
           'ToGray', 'Tokenize', 'clean_caption', 'describe_sample']
