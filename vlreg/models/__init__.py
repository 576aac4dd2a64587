from . import backbones, fusion, heads, losses, pretrainers  # noqa: F401 - registers the components
from .pretrainers import ALBEFPretrainer

__all__ = ['ALBEFPretrainer']
