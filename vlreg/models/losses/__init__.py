from .base import BaseVLLoss, check_views
from .context import LossContext, in_batch_similarities
from .contract import EncodedView, LossModel, MomentumFeatures, VLFeatures
from .focal_itc import FocalITCLoss
from .itc import ITCLoss, soft_cross_entropy
from .itm import ITMLoss, sample_hard_negatives
from .mlm import MLMLoss
from .requirements import check_loss, declared_attn_layer
from .softmask_itm import SoftMaskITMLoss, pick_random_words, word_map

__all__ = [
    'BaseVLLoss',
    'EncodedView',
    'FocalITCLoss',
    'ITCLoss',
    'ITMLoss',
    'LossContext',
    'LossModel',
    'MLMLoss',
    'MomentumFeatures',
    'SoftMaskITMLoss',
    'VLFeatures',
    'check_loss',
    'check_views',
    'declared_attn_layer',
    'in_batch_similarities',
    'pick_random_words',
    'sample_hard_negatives',
    'soft_cross_entropy',
    'word_map',
]
