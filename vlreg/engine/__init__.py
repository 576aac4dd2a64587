from .grounding_loop import GradCAMGroundingLoop, GradCAMGroundingValLoop
from .hooks import AlphaWarmupHook, RNGStateHook, VLCheckpointHook, unwrap
from .loops import RetrievalTestLoop, RetrievalValLoop
from .nonfinite import NonFiniteGuard, NonFiniteLossError
from .optim import VLOptimWrapperConstructor
from .pointing_loop import GradCAMPointingLoop, GradCAMPointingValLoop
from .runner import CheckpointFitError, VLRunner, build_runner
from .train_loop import ResumableEpochBasedTrainLoop, ResumableSampler, SeededDataset
from .visualization_hook import SoftMaskVisualizationHook

__all__ = ['AlphaWarmupHook', 'CheckpointFitError', 'GradCAMGroundingLoop', 'GradCAMGroundingValLoop',
           'GradCAMPointingLoop', 'GradCAMPointingValLoop', 'NonFiniteGuard', 'NonFiniteLossError',
           'RNGStateHook', 'ResumableEpochBasedTrainLoop', 'ResumableSampler', 'RetrievalTestLoop',
           'RetrievalValLoop', 'SeededDataset', 'SoftMaskVisualizationHook', 'VLCheckpointHook',
           'VLOptimWrapperConstructor', 'VLRunner', 'build_runner', 'unwrap']
