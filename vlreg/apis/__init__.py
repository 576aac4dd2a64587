"""Inference without the Runner: build a model, embed, match, rank, explain, index a folder."""

from .encode import (
    Ranking,
    encode_images,
    encode_texts,
    load_image,
    match,
    preprocess_images,
    rank,
    tokenize,
)
from .explain import Explanation, explain
from .index import ImageIndex, build_index, model_fingerprint
from .inference import PairScorer, init_model

__all__ = [
    'Explanation',
    'ImageIndex',
    'PairScorer',
    'Ranking',
    'build_index',
    'encode_images',
    'encode_texts',
    'explain',
    'init_model',
    'load_image',
    'match',
    'model_fingerprint',
    'preprocess_images',
    'rank',
    'tokenize',
]
