"""Datasets, tokenizers and transforms of vlreg."""

from __future__ import annotations

from .base import EntryCollector, RecordDataset, VLBaseDataset, build_pipeline
from .caption_dataset import CaptionDataset, RetrievalDataset
from .concat import ConcatCaptionDataset
from .coco_categories import LinkCategoryWords, find_category_mentions
from .grounding import GroundingDataset
from .karpathy import KarpathyEntries, is_karpathy_file, load_karpathy, read_karpathy
from .nlvr2 import NLVR2Dataset
from .reader import read_annotation_file, read_json, read_records
from .shards import ShardedCaptionDataset
from .snli_ve import SNLIVEDataset
from .synthetic import SyntheticShapesDataset
from .synthetic_grammar import synthetic_vocabulary
from .tokenizers import BertTokenizer, SyntheticTokenizer, build_tokenizer
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all
from .vqa import VQADataset

__all__ = [
    'BertTokenizer',
    'CaptionDataset',
    'ConcatCaptionDataset',
    'EntryCollector',
    'GroundingDataset',
    'LinkCategoryWords',
    'find_category_mentions',
    'NLVR2Dataset',
    'SNLIVEDataset',
    'ShardedCaptionDataset',
    'VQADataset',
    'RetrievalDataset',
    'KarpathyEntries',
    'is_karpathy_file',
    'load_karpathy',
    'read_karpathy',
    'SyntheticShapesDataset',
    'SyntheticTokenizer',
    'VLBaseDataset',
    'build_pipeline',
    'build_tokenizer',
    'RecordDataset',
    'read_annotation_file',
    'read_json',
    'read_records',
    'synthetic_vocabulary',
    *_transforms_all,
]
