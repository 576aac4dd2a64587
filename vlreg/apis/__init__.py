from .inference import PairScorer, init_model

__all__ = ['PairScorer', 'init_model']
