"""Sharded training of vlreg's ALBEF models through MMEngine's ``FlexibleRunner`` and torch FSDP.

``runner_type='FlexibleRunner'`` with ``strategy=dict(type='vlreg.VLFSDPStrategy')``, which
``tools/train.py --fsdp`` sets on any config (:func:`vlreg.engine.launch.enable_fsdp`); the base preset's
is ``configs/softmask/softmask_vit-b16-bert-base_8xb64_4m-30e-fsdp.py`` (docs/performance.md). What is
sharded, and why the rest is not:

* **Transformer layers** (timm ``Block`` of the ViTs, vlreg's ``BertLayer`` of the text and fusion
  encoders; :data:`LAYER_CLASSES`) are FSDP units with ``FULL_SHARD``: parameters, gradients and
  optimizer state are split over the ranks. They hold almost all the weights of ALBEF-base.
* **Everything else** (patch / word embeddings, projections, ITM / MLM heads, layer norms outside the
  layers) sits in the root unit, which is ``NO_SHARD`` (replicated, gradients all-reduced). Two reasons:
  the MLM decoder is tied to the word embeddings (FSDP needs tied weights in one unit, and the embeddings
  and the head are siblings), and the momentum (EMA) update must see online and momentum weights laid out
  alike (below).
* **Momentum encoders** are sharded exactly as their online twins: the online and momentum copy of a
  layer are two units with the same parameter shapes in the same order, so their flat parameters are
  split at the same offsets and the EMA of the local shards is the EMA of the full tensors, restricted to
  this rank's slice. :class:`VLFullyShardedDataParallel` runs the EMA in ``train_step`` just before the
  forward (while every layer is resharded; at the same point of the step as the model's own
  ``loss``), and tells the model not to run it again inside the forward.
* **Scalar parameters** (the ITC temperature): FSDP cannot flatten 0-d tensors; they are left out of FSDP
  (``ignored_states``, replicated) and their gradient is averaged over ranks by a hook.
* **Buffers** (the ITC queues and their pointer) are not sharded: every rank enqueues the globally
  gathered momentum features (``gather_no_grad``), so the queues stay equal on all ranks;
  ``sync_module_states=True`` makes them start equal.

The optimizer's parameter groups (``paramwise_cfg``: no decay on biases, norms and 1-d tensors) are built
on the model before it is wrapped (:class:`VLFSDPStrategy`), because a sharded parameter is a 1-d slice
and would be taken for a "flat" one; MMEngine's ``FSDPStrategy`` then rebuilds the optimizer on the
sharded parameters by name.

The soft-mask Grad-CAM (``torch.autograd.grad`` of the ITM score w.r.t. one fusion layer's attention
probabilities, inside the forward) runs through FSDP's backward hooks unchanged; tests/engine/test_fsdp.py
checks that the map equals the unsharded one. ``share_image_kv`` must be False: it calls the fusion
layers' key / value projections outside the layers' forward, where their parameters are sharded.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from mmengine._strategy import FSDPStrategy
from mmengine.dist import is_main_process
from mmengine.model.wrappers import MMFullyShardedDataParallel
from mmengine.optim import AmpOptimWrapper, BaseOptimWrapper, OptimWrapper, build_optim_wrapper
from torch import nn
from torch.optim import Optimizer
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import ShardingStrategy
from torch.distributed.fsdp.wrap import CustomPolicy

from vlreg.models.pretrainers.albef import starts_optimizer_step
from vlreg.registry import MODEL_WRAPPERS, STRATEGIES
from vlreg.utils.checkpoint_io import atomic_replace, temp_path

from .runner import ALLOWED_MISSING, ALLOWED_UNEXPECTED, load_checked, strip_module_prefix

__all__ = [
    'LAYER_CLASSES',
    'LayerShardingPolicy',
    'VLFSDPStrategy',
    'VLFullyShardedDataParallel',
    'broadcast_module_states',
    'find_layer_classes',
]

#: class names of the transformer layers that become FSDP units (timm ViT blocks, vlreg BERT layers)
LAYER_CLASSES: tuple[str, ...] = ('Block', 'BertLayer')


def find_layer_classes(model: nn.Module, names: Iterable[str | type]) -> tuple[type, ...]:
    """The module classes of ``model`` named in ``names`` (class objects are taken as given).

    Raises:
        ValueError: when no module of the model has one of the names.
    """
    wanted = [n for n in names if isinstance(n, str)]
    found = {type(m) for m in model.modules() if type(m).__name__ in wanted}
    found |= {n for n in names if isinstance(n, type)}
    if not found:
        present = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(
            f'FSDP layer_classes {list(names)} match no module of {type(model).__name__}; '
            f'its module classes are {present}'
        )
    return tuple(sorted(found, key=lambda c: c.__qualname__))


class LayerShardingPolicy(CustomPolicy):
    """Wrap each module of ``classes`` as its own FSDP unit with ``sharding_strategy``.

    Callable with the legacy ``(module, recurse, nonwrapped_numel)`` signature as well, so that
    MMEngine's wrapper accepts it; FSDP itself uses the per-unit keyword overrides of
    :class:`~torch.distributed.fsdp.wrap.CustomPolicy`.
    """

    def __init__(
        self, classes: Sequence[type], sharding_strategy: ShardingStrategy | str = 'FULL_SHARD'
    ) -> None:
        if isinstance(sharding_strategy, str):
            sharding_strategy = ShardingStrategy[sharding_strategy]
        self.classes = tuple(classes)
        self.sharding_strategy = sharding_strategy
        super().__init__(self._unit_kwargs)

    def _unit_kwargs(self, module: nn.Module) -> dict[str, Any] | bool:
        if isinstance(module, self.classes):
            return dict(sharding_strategy=self.sharding_strategy)
        return False

    def __call__(self, module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
        return recurse or isinstance(module, self.classes)


def _average_grad_over_ranks(param: torch.Tensor) -> None:
    """Post-accumulate-grad hook: replace ``param.grad`` by its mean over the ranks."""
    if param.grad is not None and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(param.grad)
        param.grad.div_(dist.get_world_size())


@torch.no_grad()
def broadcast_module_states(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (FSDP's ``sync_module_states`` for a
    CPU model, which FSDP refuses)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=src)


def _fsdp_device(device_id: Any) -> Any:
    """``device_id`` for FSDP: the CPU device when there is no CUDA (FSDP refuses None on CPU)."""
    if not torch.cuda.is_available():
        return torch.device('cpu')
    return device_id


@MODEL_WRAPPERS.register_module()
class VLFullyShardedDataParallel(MMFullyShardedDataParallel):
    """MMEngine's FSDP wrapper for vlreg's ALBEF models (module docstring: what is sharded and why).

    Args:
        module: the model (an ``ALBEFEncoderModel``; any module works, without the EMA step).
        layer_classes: class names (or classes) of the layers to shard, default :data:`LAYER_CLASSES`.
        sharding_strategy: FSDP strategy of those layers (default ``'FULL_SHARD'``); the root unit is
            always ``NO_SHARD``.
        auto_wrap_policy: replaces the layer policy (then the EMA is only correct if online and momentum
            parts are still wrapped alike and the root is not sharded).
        sync_module_states: broadcast rank 0's weights and buffers (queues) at wrap time (on a GPU
            by FSDP, which leaves out the scalar parameters: they start from the config's value).
        device_id: the device; on a machine without CUDA, the CPU.
        **kwargs: :class:`MMFullyShardedDataParallel` / FSDP keywords.
    """

    def __init__(
        self,
        module: nn.Module,
        layer_classes: Sequence[str | type] = LAYER_CLASSES,
        sharding_strategy: ShardingStrategy | str = 'FULL_SHARD',
        auto_wrap_policy: Callable | None = None,
        sync_module_states: bool = True,
        device_id: Any = None,
        **kwargs: Any,
    ) -> None:
        if getattr(module, 'share_image_kv', False):
            raise ValueError(
                'FSDP needs model.share_image_kv=False: the shared image keys / values call the '
                "fusion layers' projections outside the layers' forward, where their weights are "
                'sharded (False gives the same arithmetic)'
            )
        if auto_wrap_policy is None:
            auto_wrap_policy = LayerShardingPolicy(
                find_layer_classes(module, layer_classes), sharding_strategy
            )
        scalars = [p for p in module.parameters() if p.dim() == 0]
        ignored = list(kwargs.pop('ignored_states', None) or []) + scalars
        on_cpu = not torch.cuda.is_available()
        if sync_module_states and on_cpu:
            broadcast_module_states(module)  # FSDP's own sync needs a GPU
        super().__init__(
            module=module,
            sharding_strategy=ShardingStrategy.NO_SHARD,
            auto_wrap_policy=auto_wrap_policy,
            sync_module_states=sync_module_states and not on_cpu,
            device_id=_fsdp_device(device_id),
            ignored_states=ignored or None,
            **kwargs,
        )
        for param in scalars:  # not FSDP's: their gradient is averaged here
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(_average_grad_over_ranks)

    def train_step(self, data: dict, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """The EMA of the momentum encoders on the (identically) sharded weights, then MMEngine's
        FSDP step with the model's own in-forward EMA turned off."""
        model = self.module
        has_momentum = bool(getattr(model, 'has_momentum', False))
        if has_momentum and model.training and starts_optimizer_step(optim_wrapper):
            model.momentum_update()
        model._ema_now = False  # read by ALBEFPretrainer.loss
        try:
            return super().train_step(data, optim_wrapper)
        finally:
            model._ema_now = True


@STRATEGIES.register_module()
class VLFSDPStrategy(FSDPStrategy):
    """MMEngine's ``FSDPStrategy`` with :class:`VLFullyShardedDataParallel`, full (rank-0,
    unsharded-layout) checkpoints by default, and the optimizer's parameter groups built before
    sharding (module docstring).

    Args:
        model_wrapper: keywords of :class:`VLFullyShardedDataParallel` (``type`` defaults to it).
        state_dict_cfg: ``'full'`` (default: one ordinary checkpoint written by rank 0, loadable
            without FSDP, e.g. by ``tools/test.py``), ``'local'`` (one file per rank) or a dict (see
            ``FSDPStrategy``).
        load_partial: accept a checkpoint that lacks some of the model's tensors or has extra
            ones (a warning); default: an error naming them (:func:`vlreg.engine.runner.load_checked`).
        **kwargs: ``FSDPStrategy`` keywords.
    """

    def __init__(
        self,
        *,
        model_wrapper: dict | None = None,
        state_dict_cfg: str | dict = 'full',
        load_partial: bool = False,
        **kwargs: Any,
    ) -> None:
        wrapper = dict(type=VLFullyShardedDataParallel)
        wrapper.update(model_wrapper or {})
        super().__init__(model_wrapper=wrapper, state_dict_cfg=state_dict_cfg, **kwargs)
        self.load_partial = bool(load_partial)
        if not torch.cuda.is_available():  # offloading CPU tensors "to the CPU" crashes FSDP
            for config in (self.state_dict_config, self.optim_state_dict_config):
                if getattr(config, 'offload_to_cpu', False):
                    config.offload_to_cpu = False
        self._optim_cfg: Any = None
        self._unsharded_optim: BaseOptimWrapper | None = None

    def prepare(self, model: nn.Module | dict, *, optim_wrapper: Any = None, **kwargs: Any) -> Any:
        """MMEngine's ``prepare``; the optimizer config is kept for :meth:`_wrap_model`."""
        if not self._prepared:
            self._optim_cfg = optim_wrapper
        return super().prepare(model, optim_wrapper=optim_wrapper, **kwargs)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """Build the optimizer wrapper on the unsharded model, then wrap the model in FSDP."""
        cfg = self._optim_cfg
        if isinstance(cfg, dict) and cfg.get('optimizer') is not None:
            cfg = copy.deepcopy(cfg)
            if cfg.get('type', 'OptimWrapper') in ('AmpOptimWrapper', AmpOptimWrapper):
                cfg.setdefault(
                    'use_fsdp', True
                )  # the sharded gradient scaler, as FSDPStrategy sets
            self._unsharded_optim = build_optim_wrapper(model, cfg)
        os.environ.setdefault('LOCAL_RANK', '0')  # MMEngine's wrap reads it
        return super()._wrap_model(model)

    def build_optim_wrapper(self, optim_wrapper: Any, model: nn.Module | None = None) -> Any:
        """The wrapper built before sharding, its optimizer moved onto the sharded parameters."""
        if self._unsharded_optim is None:
            return super().build_optim_wrapper(optim_wrapper, model)
        built, self._unsharded_optim = self._unsharded_optim, None
        built.optimizer = self._reshard_optimizer(built.optimizer, model or self.model)
        return built

    def save_checkpoint(self, filename: str, **kwargs: Any) -> None:
        """MMEngine's save; a full (rank-0) checkpoint is written under a temporary name and renamed
        when complete, as :class:`~vlreg.engine.runner.VLRunner` does (a crash leaves the last
        complete file, and ``--resume`` skips the partial one)."""
        if not self._is_full_state_dict():
            return super().save_checkpoint(filename, **kwargs)
        tmp = temp_path(filename)
        super().save_checkpoint(tmp, **kwargs)
        if is_main_process():
            atomic_replace(tmp, filename)

    def load_checkpoint(self, filename: str, **kwargs: Any) -> dict:
        """MMEngine's load (weights-only), the model's part checked by :meth:`load_model_state_dict`."""
        self._loading = str(filename)
        try:
            return super().load_checkpoint(filename, **kwargs)
        finally:
            self._loading = None

    def load_model_state_dict(
        self, state_dict: dict, *, strict: bool = False, **kwargs: Any
    ) -> None:
        """Load a full state dict and refuse a poor fit as ``VLRunner`` does
        (:func:`~vlreg.engine.runner.load_checked`: missing / unexpected keys beyond the counters,
        shape mismatches), unless ``load_partial`` (the strategy's argument, set by
        ``tools/train.py --partial-load``); a ``module.`` prefix is stripped. A ``'local'``
        (sharded) state dict is loaded as MMEngine loads it."""
        if not self._is_full_state_dict():
            return super().load_model_state_dict(state_dict, strict=strict, **kwargs)
        state = strip_module_prefix(state_dict)
        source = getattr(self, '_loading', None) or 'the checkpoint'
        missing, unexpected = load_checked(
            self.model,
            state,
            source,
            partial=self.load_partial,
            allow_missing=ALLOWED_MISSING,
            allow_unexpected=ALLOWED_UNEXPECTED,
        )
        if missing or unexpected:
            self.logger.warning(
                f'partial load of {source}: {len(missing)} missing, {len(unexpected)} unexpected'
            )

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state saved by :meth:`optim_state_dict` (MMEngine's own call passes the
        arguments in the order of torch < 2.1)."""
        converted = FSDP.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict
        )
        self.optim_wrapper.load_state_dict(converted)

    def _reshard_optimizer(self, optimizer: Optimizer, model: nn.Module) -> Optimizer:
        """Point the parameter groups of ``optimizer`` (built on the unsharded model, no state yet)
        at the parameters of the wrapped ``model``, by name (MMEngine's own conversion calls an FSDP
        function with the argument order of torch < 2.1)."""
        if optimizer.state:
            raise RuntimeError('the optimizer built before sharding already has a state')
        by_name = {_clean_name(k): p for k, p in model.named_parameters()}
        for group in optimizer.param_groups:
            names = [self.id_to_name[id(p)] for p in group['params']]
            missing = [n for n in names if n not in by_name]
            if missing:
                raise RuntimeError(
                    f'{len(missing)} optimised parameters are not parameters of the FSDP model: '
                    f'{missing[:5]} (FSDP needs use_orig_params=True here)'
                )
            group['params'] = [by_name[n] for n in names]
        return optimizer


def _clean_name(name: str) -> str:
    """A parameter name of the wrapped model without FSDP's / activation checkpointing's prefixes."""
    for prefix in ('_fsdp_wrapped_module.', '_checkpoint_wrapped_module.'):
        name = name.replace(prefix, '')
    return name
