from .base import BaseVLLoss
from .itc import ITCLoss, soft_cross_entropy
from .itm import ITMLoss, sample_hard_negatives
from .mlm import MLMLoss

__all__ = ['BaseVLLoss', 'ITCLoss', 'ITMLoss', 'MLMLoss', 'sample_hard_negatives', 'soft_cross_entropy']
