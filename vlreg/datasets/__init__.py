"""Datasets, tokenizers and transforms of vlreg."""
from __future__ import annotations

from .caption_dataset import (CaptionDataset, RetrievalDataset, VLBaseDataset, build_pipeline,
                              read_annotation_file)
from .concat import ConcatCaptionDataset
from .coco_categories import LinkCategoryWords, find_category_mentions
from .downstream import GroundingDataset, NLVR2Dataset, SNLIVEDataset, VQADataset
from .karpathy import KarpathyEntries, is_karpathy_file, load_karpathy, read_karpathy
from .synthetic import SyntheticShapesDataset, synthetic_vocabulary
from .tokenizers import BertTokenizer, SyntheticTokenizer, build_tokenizer
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = ['BertTokenizer', 'CaptionDataset', 'ConcatCaptionDataset', 'GroundingDataset', 'LinkCategoryWords',
           'find_category_mentions', 'NLVR2Dataset', 'SNLIVEDataset',
           'VQADataset', 'RetrievalDataset', 'KarpathyEntries', 'is_karpathy_file', 'load_karpathy',
           'read_karpathy', 'SyntheticShapesDataset',
           'SyntheticTokenizer', 'VLBaseDataset', 'build_pipeline', 'build_tokenizer',
           'read_annotation_file', 'synthetic_vocabulary', *_transforms_all]
