"""Optimizer construction for models with frozen momentum copies."""

from __future__ import annotations

import logging

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from vlreg.registry import OPTIM_WRAPPER_CONSTRUCTORS


class _CountFrozen(logging.Filter):
    """Counts (and hides) MMEngine's one-line-per-tensor messages."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.paramwise = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if 'is skipped since its requires_grad=False' in message:
            self.count += 1
            return False
        if message.startswith('paramwise_options -- '):
            self.paramwise += 1
            return False
        return True


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class VLOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor (``paramwise_cfg`` and all), but the frozen parameters of the
    momentum encoders and the per-tensor ``paramwise_cfg`` options are reported in one line each
    instead of one log line per tensor.

    Example:
        ``optim_wrapper = dict(constructor='VLOptimWrapperConstructor', optimizer=dict(type='AdamW'))``
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        logger = MMLogger.get_current_instance()
        counter = _CountFrozen()
        logger.addFilter(counter)
        try:
            return super().__call__(model)
        finally:
            logger.removeFilter(counter)
            if counter.count:
                print_log(
                    f'optimizer: {counter.count} frozen tensors (momentum encoders) are not '
                    'optimised',
                    logger='current',
                )
            if counter.paramwise:
                print_log(
                    f'optimizer: paramwise_cfg set options of {counter.paramwise} tensors '
                    '(e.g. no weight decay on biases and norms)',
                    logger='current',
                )
