"""Data transforms: loading, image augmentations, text processing, multi-modal views, packing."""

from __future__ import annotations

from .formatting import PackInputs
from .image import (
    ColorJitter,
    GaussianBlur,
    HorizontalFlip,
    RandAugment,
    RandomResizedCrop,
    Resize,
    ToGray,
)
from .loading import BadSampleError, LoadImage, describe_sample
from .multimodal import CaptionAwareHorizontalFlip, ImageView
from .pair import ApplyToImagePair, LoadImagePair
from .text import CleanCaption, MaskText, Tokenize, clean_caption
from .words import AnnotateWords, load_stopwords

__all__ = [
    'AnnotateWords',
    'ApplyToImagePair',
    'LoadImagePair',
    'BadSampleError',
    'CaptionAwareHorizontalFlip',
    'CleanCaption',
    'ColorJitter',
    'GaussianBlur',
    'HorizontalFlip',
    'ImageView',
    'LoadImage',
    'MaskText',
    'PackInputs',
    'RandAugment',
    'RandomResizedCrop',
    'Resize',
    'ToGray',
    'Tokenize',
    'clean_caption',
    'describe_sample',
    'load_stopwords',
]
