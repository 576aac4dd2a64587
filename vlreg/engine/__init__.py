from .hooks import AlphaWarmupHook, RNGStateHook, unwrap
from .loops import RetrievalTestLoop, RetrievalValLoop

__all__ = ['AlphaWarmupHook', 'RNGStateHook', 'RetrievalTestLoop', 'RetrievalValLoop', 'unwrap']
