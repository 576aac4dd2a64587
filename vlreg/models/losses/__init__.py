from .base import BaseVLLoss, check_views, view_key
from .focal_itc import FocalITCLoss
from .itc import ITCLoss, soft_cross_entropy
from .itm import ITMLoss, sample_hard_negatives
from .mlm import MLMLoss
from .softmask_itm import SoftMaskITMLoss, pick_random_words, word_map

__all__ = ['BaseVLLoss', 'FocalITCLoss', 'ITCLoss', 'ITMLoss', 'MLMLoss', 'SoftMaskITMLoss',
           'check_views', 'pick_random_words', 'sample_hard_negatives', 'soft_cross_entropy',
           'view_key', 'word_map']
