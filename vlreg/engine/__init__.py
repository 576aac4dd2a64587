from .fsdp import VLFSDPStrategy, VLFullyShardedDataParallel
from .grounding_loop import GradCAMGroundingLoop, GradCAMGroundingValLoop
from .hooks import AlphaWarmupHook, RNGStateHook, SoftMaskWarmupHook, VLCheckpointHook, unwrap
from .loops import RetrievalTestLoop, RetrievalValLoop
from .nonfinite import NonFiniteGuard, NonFiniteLossError
from .optim import VLOptimWrapperConstructor
from .pointing_loop import GradCAMPointingLoop, GradCAMPointingValLoop
from .retrieval_grid_hook import RetrievalGridHook
from .runner import CheckpointFitError, VLRunner, build_runner
from .shard_stream import ShardStream, ShardStreamHook
from .train_loop import ResumableEpochBasedTrainLoop, ResumableSampler, SeededDataset
from .visualization_hook import SoftMaskVisualizationHook

__all__ = [
    'AlphaWarmupHook',
    'CheckpointFitError',
    'GradCAMGroundingLoop',
    'GradCAMGroundingValLoop',
    'GradCAMPointingLoop',
    'GradCAMPointingValLoop',
    'NonFiniteGuard',
    'NonFiniteLossError',
    'RNGStateHook',
    'ResumableEpochBasedTrainLoop',
    'ResumableSampler',
    'RetrievalGridHook',
    'RetrievalTestLoop',
    'RetrievalValLoop',
    'SeededDataset',
    'ShardStream',
    'ShardStreamHook',
    'SoftMaskVisualizationHook',
    'SoftMaskWarmupHook',
    'VLCheckpointHook',
    'VLFSDPStrategy',
    'VLFullyShardedDataParallel',
    'VLOptimWrapperConstructor',
    'VLRunner',
    'build_runner',
    'unwrap',
]
