from . import backbones, fusion, heads, losses, pretrainers  # noqa: F401 - registers the components
from .pretrainers import ALBEFPretrainer

__all__ = ['ALBEFPretrainer']
from . import data_preprocessor  # noqa: E402,F401 - registers VLDataPreprocessor
from . import tasks  # noqa: E402,F401 - registers the downstream task models
