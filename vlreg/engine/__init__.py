from .grounding_loop import GradCAMGroundingLoop, GradCAMGroundingValLoop
from .hooks import AlphaWarmupHook, RNGStateHook, SoftMaskWarmupHook, unwrap
from .loops import RetrievalTestLoop, RetrievalValLoop
from .optim import VLOptimWrapperConstructor
from .pointing_loop import GradCAMPointingLoop, GradCAMPointingValLoop
from .retrieval_grid_hook import RetrievalGridHook
from .visualization_hook import SoftMaskVisualizationHook

__all__ = ['AlphaWarmupHook', 'GradCAMGroundingLoop', 'GradCAMGroundingValLoop',
           'GradCAMPointingLoop', 'GradCAMPointingValLoop', 'RNGStateHook', 'RetrievalGridHook',
           'RetrievalTestLoop', 'RetrievalValLoop', 'SoftMaskVisualizationHook', 'SoftMaskWarmupHook',
           'VLOptimWrapperConstructor', 'unwrap']
