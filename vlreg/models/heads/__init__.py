from .pretrain_heads import ITMHead, MLMHead

__all__ = ['ITMHead', 'MLMHead']
from .classification import MLPClassifierHead  # noqa: E402,F401 - registers the task head
