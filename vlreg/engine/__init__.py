from .hooks import AlphaWarmupHook, RNGStateHook, unwrap
from .loops import RetrievalTestLoop, RetrievalValLoop
from .optim import VLOptimWrapperConstructor

__all__ = ['AlphaWarmupHook', 'RNGStateHook', 'RetrievalTestLoop', 'RetrievalValLoop', 'VLOptimWrapperConstructor',
           'unwrap']
