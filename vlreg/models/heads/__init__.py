from .pretrain_heads import ITMHead, MLMHead

__all__ = ['ITMHead', 'MLMHead']
