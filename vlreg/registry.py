"""Every registry of vlreg, in one place.

Shape (see DESIGN.md, "Registries: the MMEngine pitfall"):

* **MMEngine roots are mirrored** as children with ``scope='vlreg'`` (``MODELS``, ``DATASETS``, ``TRANSFORMS``,
  ``METRICS``, ``HOOKS``, ``LOOPS``, ...), so a config with ``default_scope='vlreg'`` resolves every kind the
  Runner builds, and MMEngine's own components stay reachable through the parent.
* **The design card's categories are independent roots** with ``scope='vlreg'``: ``BACKBONES``,
  ``FUSION_HEADS``, ``HEADS`` (ITM / MLM and downstream task heads), ``LOSSES``, ``TOKENIZERS`` and
  ``AUGMENTATIONS``. A grandchild of ``MODELS`` with another scope would be bypassed silently under
  ``default_scope='vlreg'``; independent roots are not. The models build their parts from these with
  :func:`build_from_slot`, which names the slot when a component is put in the wrong one.
* ``AUGMENTATIONS`` holds the image / text / paired augmentations. Dataset pipelines are built through
  ``TRANSFORMS``; our ``TRANSFORMS`` child falls back to ``AUGMENTATIONS`` so an augmentation can stand in a
  pipeline by its name while staying a category of its own.
* "Evaluators" of the design card are ``METRICS`` (retrieval, VQA, accuracy, grounding) and ``EVALUATOR``.

Each registry has ``locations`` so that building by name imports the module that registers the class.
A user's package registers into the same objects and is loaded by ``custom_imports`` in a config.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'vlreg'

# --- mirrors of MMEngine's roots ------------------------------------------------------------------------
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope=SCOPE, locations=['vlreg.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor',
    parent=MMENGINE_RUNNER_CONSTRUCTORS,
    scope=SCOPE,
    locations=['vlreg.engine'],
)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=['vlreg.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['vlreg.engine'])
STRATEGIES = Registry(
    'strategy', parent=MMENGINE_STRATEGIES, scope=SCOPE, locations=['vlreg.engine']
)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE, locations=['vlreg.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE, locations=['vlreg.datasets']
)


class _TransformRegistry(Registry):
    """``TRANSFORMS`` that also finds entries of ``AUGMENTATIONS`` (pipelines are built through it)."""

    def get(self, key: str) -> Any:
        obj = super().get(key)
        if obj is None and isinstance(key, str):
            obj = AUGMENTATIONS.get(key.split('.')[-1])
        return obj


TRANSFORMS = _TransformRegistry(
    'transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE, locations=['vlreg.datasets.transforms']
)
MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE, locations=['vlreg.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE, locations=['vlreg.models']
)
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMENGINE_WEIGHT_INITIALIZERS,
    scope=SCOPE,
    locations=['vlreg.models'],
)
OPTIMIZERS = Registry(
    'optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE, locations=['vlreg.engine']
)
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE, locations=['vlreg.engine']
)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE,
    locations=['vlreg.engine'],
)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE, locations=['vlreg.engine']
)
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE, locations=['vlreg.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE, locations=['vlreg.evaluation']
)
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE, locations=['vlreg.models']
)
VISUALIZERS = Registry(
    'visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE, locations=['vlreg.engine']
)
VISBACKENDS = Registry(
    'vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE, locations=['vlreg.engine']
)
LOG_PROCESSORS = Registry(
    'log_processor', parent=MMENGINE_LOG_PROCESSORS, scope=SCOPE, locations=['vlreg.engine']
)
INFERENCERS = Registry(
    'inferencer', parent=MMENGINE_INFERENCERS, scope=SCOPE, locations=['vlreg.apis']
)
FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, scope=SCOPE, locations=['vlreg.datasets']
)

# --- the design card's categories: independent roots ----------------------------------------------------
BACKBONES = Registry('backbone', scope=SCOPE, locations=['vlreg.models.backbones'])
FUSION_HEADS = Registry('fusion head', scope=SCOPE, locations=['vlreg.models.fusion'])
HEADS = Registry('head', scope=SCOPE, locations=['vlreg.models.heads'])
TASK_HEADS = HEADS  # downstream task heads are heads: one registry, documented alias
LOSSES = Registry('loss', scope=SCOPE, locations=['vlreg.models.losses'])
TOKENIZERS = Registry('tokenizer', scope=SCOPE, locations=['vlreg.datasets.tokenizers'])
AUGMENTATIONS = Registry('augmentation', scope=SCOPE, locations=['vlreg.datasets.transforms'])
EVALUATORS = METRICS  # the design card's "evaluators": registered metrics

SLOTS: dict[str, Registry] = {
    'backbone': BACKBONES,
    'fusion head': FUSION_HEADS,
    'head': HEADS,
    'loss': LOSSES,
    'tokenizer': TOKENIZERS,
    'augmentation': AUGMENTATIONS,
    'model': MODELS,
    'transform': TRANSFORMS,
    'dataset': DATASETS,
    'metric': METRICS,
    'hook': HOOKS,
}


def which_slots(type_name: str) -> list[str]:
    """Names of the registries in which ``type_name`` is registered."""
    found = []
    for slot, reg in SLOTS.items():
        try:
            reg.import_from_location()
        except Exception:  # noqa: BLE001 - only used to improve an error message
            pass
        if type_name in reg.module_dict:
            found.append(slot)
    return found


def build_from_slot(registry: Registry, cfg: Any, slot: str, **default_args: Any) -> Any:
    """Build ``cfg`` from ``registry``; a component registered elsewhere fails naming the slot.

    Args:
        registry: the registry of the slot.
        cfg: a config dict with ``type`` (an already-built object is returned as is).
        slot: what the caller calls the slot, e.g. ``'image_backbone'``; used in errors only.
        default_args: forwarded to :meth:`Registry.build`.
    """
    if not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise KeyError(f'the {slot!r} config has no "type" key: {cfg}')
    type_name = cfg['type']
    if isinstance(type_name, str):
        registry.import_from_location()
        if registry.get(type_name) is None:
            elsewhere = [s for s in which_slots(type_name) if SLOTS[s] is not registry]
            hint = (
                f'; {type_name!r} is a {" / ".join(elsewhere)}, not a {registry.name}'
                if elsewhere
                else f'; registered in {registry.name!r}: {sorted(registry.module_dict)}'
            )
            raise KeyError(
                f'{slot!r} expects a component from the {registry.name!r} registry, but '
                f'{type_name!r} is not registered there{hint}'
            )
    try:
        return registry.build(cfg, default_args=default_args or None)
    except ValueError as err:  # a bad value: say which config key holds it
        if str(err).startswith(f'{slot}'):
            raise
        name = type_name if isinstance(type_name, str) else getattr(type_name, '__name__', '?')
        raise ValueError(f'{slot} ({name}): {err}') from err
