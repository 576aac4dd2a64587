from .pretrain_heads import ITMHead, MLMHead

__all__ = ['ITMHead', 'MLMHead']
from .classification import MLPClassifierHead  # noqa: E402,F401 - registers the task head
from .vqa import AnswerClassifierHead  # noqa: E402,F401 - registers the VQA classifier head
from .answer_decoder import AnswerDecoderHead  # noqa: E402,F401 - registers ALBEF's decoder
