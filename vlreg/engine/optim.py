"""Optimizer construction for models with frozen momentum copies."""
from __future__ import annotations

import logging

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from vlreg.registry import OPTIM_WRAPPER_CONSTRUCTORS


class _CountFrozen(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if 'is skipped since its requires_grad=False' in record.getMessage():
            self.count += 1
            return False
        return True


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class VLOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor (``paramwise_cfg`` and all), but the frozen parameters of the
    momentum encoders are reported in one line instead of one warning per tensor.

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
                print_log(f'optimizer: {counter.count} frozen tensors (momentum encoders) are not '
                          'optimised', logger='current')
