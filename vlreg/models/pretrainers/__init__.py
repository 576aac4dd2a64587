from .albef import ALBEFPretrainer

__all__ = ['ALBEFPretrainer']
