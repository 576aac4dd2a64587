"""The registry shape of ``vlreg.registry`` (DESIGN.md, "Registries: the MMEngine pitfall").

Checks that every registry has the scope ``'vlreg'``, that every MMEngine root is mirrored by a
child ``default_scope='vlreg'`` resolves to, that the category registries are independent roots
holding the built-ins, that a component in the wrong slot or an unknown name fails at build time
with an error naming it, and that every registered loss keeps the loss contract.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

import mmengine.registry as mm_registry
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope, Registry
from torch import nn

import vlreg.registry as vr
from tests.models.loss_context import stub_context
from vlreg.models.losses import check_loss
from vlreg.models.losses.contract import FEATURE_FIELDS

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / 'configs' / 'albef' / 'albef_vit-t-bert-t_1xb32_synthetic-demo.py'
# the features a batch may lack (pipeline transforms, data-sample ids, momentum encoders)
_OPTIONAL_FEATURES = (
    'mlm_input_ids',
    'mlm_labels',
    'word_ids',
    'content_mask',
    'image_ids',
    'momentum',
)

# The design card's categories: independent roots (shape (a) of DESIGN.md).
CATEGORY_ROOTS = ('BACKBONES', 'FUSION_HEADS', 'HEADS', 'LOSSES', 'TOKENIZERS', 'AUGMENTATIONS')

# What vlreg itself registers, per registry (other packages may add more).
BUILTINS: dict[str, set[str]] = {
    'BACKBONES': {'TimmViTBackbone', 'BertTextBackbone'},
    'FUSION_HEADS': {'BertFusion'},
    'HEADS': {'ITMHead', 'MLMHead'},
    'LOSSES': {'ITCLoss', 'ITMLoss', 'MLMLoss'},
    'TOKENIZERS': {'SyntheticTokenizer', 'BertTokenizer'},
    'AUGMENTATIONS': {
        'RandomResizedCrop',
        'Resize',
        'HorizontalFlip',
        'ColorJitter',
        'ToGray',
        'GaussianBlur',
        'RandAugment',
    },
    'TRANSFORMS': {'LoadImage', 'CleanCaption', 'Tokenize', 'MaskText', 'PackInputs'},
    'MODELS': {'ALBEFPretrainer', 'VLDataPreprocessor'},
    'DATASETS': {'CaptionDataset', 'RetrievalDataset', 'SyntheticShapesDataset'},
    'METRICS': {'RetrievalMetric'},
    'LOOPS': {'RetrievalValLoop', 'RetrievalTestLoop'},
    'HOOKS': {'AlphaWarmupHook', 'RNGStateHook'},
    'OPTIM_WRAPPER_CONSTRUCTORS': {'VLOptimWrapperConstructor'},
}


def _vlreg_registries() -> dict[str, Registry]:
    """Every module-level registry of ``vlreg.registry`` (aliases included), by name."""
    return {
        name: obj
        for name, obj in vars(vr).items()
        if isinstance(obj, Registry) and not name.startswith('MMENGINE_')
    }


def _mmengine_roots() -> dict[str, Registry]:
    """MMEngine's root registries, by the name ``mmengine.registry`` exports them under."""
    return {
        name: getattr(mm_registry, name)
        for name in mm_registry.__all__
        if isinstance(getattr(mm_registry, name), Registry)
    }


def _load_train_tool() -> ModuleType:
    """``tools/train.py`` as a module (``tools`` is not a package)."""
    spec = importlib.util.spec_from_file_location('_vlreg_train_tool', ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _registered_losses() -> list[str]:
    vr.LOSSES.import_from_location()
    return sorted(vr.LOSSES.module_dict)


# --- shape ----------------------------------------------------------------------------------------
def test_every_registry_has_scope_vlreg() -> None:
    registries = _vlreg_registries()
    expected = set(_mmengine_roots()) | set(CATEGORY_ROOTS) | {'TASK_HEADS', 'EVALUATORS'}
    assert expected <= set(registries), sorted(expected - set(registries))
    wrong = {name: reg.scope for name, reg in registries.items() if reg.scope != 'vlreg'}
    assert wrong == {}
    assert vr.SCOPE == 'vlreg'
    # documented aliases are the same objects, not look-alikes
    assert vr.TASK_HEADS is vr.HEADS
    assert vr.EVALUATORS is vr.METRICS


def test_every_mmengine_root_is_mirrored() -> None:
    roots = _mmengine_roots()
    assert len(roots) >= 23, sorted(roots)  # MMEngine 0.10.7 has 23; every one must be mirrored
    for name, root in roots.items():
        assert root.parent is None and root.scope == 'mmengine', name
        mirror = getattr(vr, name, None)
        assert isinstance(mirror, Registry), f'vlreg.registry does not mirror {name}'
        assert mirror.parent is root, name
        assert mirror.name == root.name, name
        assert root.children.get('vlreg') is mirror, name
        # what the Runner does under default_scope='vlreg': find the child, no fallback warning
        with DefaultScope.overwrite_default_scope('vlreg'):
            with root.switch_scope_and_registry(None) as found:
                assert found is mirror, name


def test_category_registries_are_independent_roots() -> None:
    mirrors = {id(root.children.get('vlreg')) for root in _mmengine_roots().values()}
    for name in CATEGORY_ROOTS:
        reg = getattr(vr, name)
        assert reg.parent is None, f'{name} must be a root (a scoped grandchild is bypassed)'
        assert reg.scope == 'vlreg'
    # any other registry of vlreg.registry is either a mirror or a root of its own
    for name, reg in _vlreg_registries().items():
        assert id(reg) in mirrors or reg.parent is None, name
    # nothing hangs below vlreg's registries: a grandchild with another scope would be bypassed
    grandchildren = {
        name: sorted(reg.children) for name, reg in _vlreg_registries().items() if reg.children
    }
    assert grandchildren == {}


def test_slots_map_to_module_registries() -> None:
    module_regs = {id(reg) for reg in _vlreg_registries().values()}
    assert all(id(reg) in module_regs for reg in vr.SLOTS.values())
    assert vr.SLOTS['backbone'] is vr.BACKBONES and vr.SLOTS['loss'] is vr.LOSSES
    assert vr.SLOTS['augmentation'] is vr.AUGMENTATIONS


def test_every_location_imports() -> None:
    locations = {loc for reg in _vlreg_registries().values() for loc in reg._locations}
    assert 'vlreg.models.losses' in locations and 'vlreg.datasets.transforms' in locations
    for name, reg in _vlreg_registries().items():
        assert reg._locations, f'{name} has no locations: building by name would not import it'
        for loc in reg._locations:
            assert loc.split('.')[0] == 'vlreg', (name, loc)
            module = importlib.import_module(loc)
            assert module.__name__ == loc
        reg.import_from_location()
        assert reg._imported, name


# --- contents -------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(BUILTINS))
def test_category_contains_builtins(name: str) -> None:
    reg = getattr(vr, name)
    reg.import_from_location()
    missing = BUILTINS[name] - set(reg.module_dict)
    assert missing == set(), f'{name} lacks {sorted(missing)}; has {sorted(reg.module_dict)}'
    for type_name in BUILTINS[name]:
        cls = reg.get(type_name)
        assert inspect.isclass(cls) and cls.__name__ == type_name
        assert cls.__module__.startswith('vlreg.'), cls.__module__


def test_builtin_classes_are_the_exported_ones() -> None:
    from vlreg.evaluation import RetrievalMetric
    from vlreg.models.backbones import BertTextBackbone, TimmViTBackbone
    from vlreg.models.losses import ITCLoss

    assert vr.BACKBONES.get('TimmViTBackbone') is TimmViTBackbone
    assert vr.BACKBONES.get('BertTextBackbone') is BertTextBackbone
    assert vr.LOSSES.get('ITCLoss') is ITCLoss
    assert vr.METRICS.get('RetrievalMetric') is RetrievalMetric


def test_mmengine_components_stay_reachable_through_mirrors() -> None:
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import EpochBasedTrainLoop

    assert vr.HOOKS.get('CheckpointHook') is CheckpointHook
    assert vr.LOOPS.get('EpochBasedTrainLoop') is EpochBasedTrainLoop
    assert vr.OPTIMIZERS.get('AdamW') is torch.optim.AdamW


def test_augmentations_are_reachable_through_transforms() -> None:
    vr.AUGMENTATIONS.import_from_location()
    augmentations = sorted(vr.AUGMENTATIONS.module_dict)
    assert 'RandomResizedCrop' in augmentations
    for name in augmentations:
        assert name not in vr.TRANSFORMS.module_dict  # a category of its own ...
        assert vr.TRANSFORMS.get(name) is vr.AUGMENTATIONS.get(name)  # ... found by pipelines
    assert vr.TRANSFORMS.get('vlreg.RandomResizedCrop') is vr.AUGMENTATIONS.get('RandomResizedCrop')
    assert vr.TRANSFORMS.get('NoSuchAugmentation') is None
    crop = vr.TRANSFORMS.build(dict(type='RandomResizedCrop', size=(24, 32)))
    np.random.seed(0)
    out = crop({'img': np.random.randint(0, 256, (48, 40, 3), dtype=np.uint8)})
    assert out['img'].shape == (24, 32, 3) and tuple(out['img_shape']) == (24, 32)


# --- building under default_scope='vlreg' ---------------------------------------------------------
def test_default_scope_resolves_datasets_and_transforms() -> None:
    assert mm_registry.DATASETS.get('SyntheticShapesDataset') is None  # only found through scope
    pipeline = [
        dict(type='HorizontalFlip', p=1.0),
        dict(type='Tokenize', tokenizer=dict(type='SyntheticTokenizer'), max_length=20),
        dict(type='PackInputs'),
    ]
    with DefaultScope.overwrite_default_scope('vlreg'):
        flip = mm_registry.TRANSFORMS.build(dict(type='HorizontalFlip', p=1.0))
        dataset = mm_registry.DATASETS.build(
            dict(
                type='SyntheticShapesDataset',
                num_images=3,
                image_size=32,
                captions_per_image=2,
                mode='pretrain',
                pipeline=pipeline,
            )
        )
    assert type(flip).__name__ == 'HorizontalFlip'
    assert type(dataset).__name__ == 'SyntheticShapesDataset'
    assert len(dataset) == 6  # 3 images x 2 captions
    sample = dataset[0]
    assert sample['inputs']['image'].shape == (3, 32, 32)
    assert sample['inputs']['input_ids'].dtype == torch.int64
    assert sample['data_samples'].flipped is True


def test_default_scope_resolves_metrics_and_hooks() -> None:
    assert mm_registry.METRICS.get('RetrievalMetric') is None
    assert mm_registry.HOOKS.get('AlphaWarmupHook') is None
    with DefaultScope.overwrite_default_scope('vlreg'):
        metric = mm_registry.METRICS.build(dict(type='RetrievalMetric', ks=(1, 2)))
        hook = mm_registry.HOOKS.build(dict(type='AlphaWarmupHook', alpha=0.4, warmup_iters=10))
        with mm_registry.LOOPS.switch_scope_and_registry(None) as loops:  # as LOOPS.build does
            loop_cls = loops.get('RetrievalValLoop')
        preprocessor = mm_registry.MODELS.build(dict(type='VLDataPreprocessor'))
    assert loop_cls is vr.LOOPS.get('RetrievalValLoop')
    assert type(preprocessor).__name__ == 'VLDataPreprocessor'
    assert hook.value(5, 100) == pytest.approx(0.2)
    assert hook.value(50, 100) == pytest.approx(0.4)
    # 2 images x 2 texts; image 0 retrieves its text first, image 1 ranks its text second
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.3]])
    metric.process(
        None, [dict(scores_i2t=scores, scores_t2i=scores.t(), img2txt=[[0], [1]], txt2img=[0, 1])]
    )
    result = metric.evaluate(1)
    assert result['retrieval/txt_r1'] == pytest.approx(50.0)
    assert result['retrieval/txt_r2'] == pytest.approx(100.0)


# --- errors at build time -------------------------------------------------------------------------
def _tiny_parts() -> dict[str, Any]:
    return dict(
        image_backbone=dict(
            type='TimmViTBackbone',
            model_name='vit_tiny_patch16_224',
            img_size=32,
            embed_dim=32,
            depth=1,
            num_heads=2,
        ),
        text_backbone=dict(
            type='BertTextBackbone',
            vocab_size=50,
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=64,
            max_position_embeddings=16,
        ),
        fusion=dict(
            type='BertFusion',
            hidden_size=32,
            encoder_width=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=64,
            layer_offset=1,
        ),
        embed_dim=16,
        losses=dict(itc=dict(type='ITCLoss', embed_dim=16, queue_size=8)),
        momentum=None,
    )


def test_tiny_parts_build() -> None:
    model = vr.MODELS.build(dict(type='ALBEFPretrainer', **_tiny_parts()))
    assert type(model.image_backbone).__name__ == 'TimmViTBackbone'
    assert list(model.losses) == ['itc']


@pytest.mark.parametrize(
    'key,value,slot,registry,actual',
    [
        ('image_backbone', dict(type='ITCLoss'), 'image_backbone', 'backbone', 'loss'),
        ('fusion', dict(type='ITMHead'), 'fusion', 'fusion head', 'head'),
        ('losses', dict(itc=dict(type='TimmViTBackbone')), 'losses.itc', 'loss', 'backbone'),
        ('itm_head', dict(type='BertFusion'), 'itm_head', 'head', 'fusion head'),
    ],
)
def test_component_in_wrong_slot_fails_naming_the_slot(
    key: str, value: dict, slot: str, registry: str, actual: str
) -> None:
    cfg = dict(type='ALBEFPretrainer', **_tiny_parts())
    cfg[key] = value
    with pytest.raises(KeyError) as info:
        vr.MODELS.build(cfg)
    message = str(info.value)
    wrong_type = value['type'] if 'type' in value else value['itc']['type']
    assert f"'{slot}' expects a component from the '{registry}' registry" in message
    assert f"'{wrong_type}' is a {actual}, not a {registry}" in message


def test_unknown_name_in_a_slot_lists_the_known_ones() -> None:
    with pytest.raises(KeyError) as info:
        vr.build_from_slot(vr.FUSION_HEADS, dict(type='NoSuchFusion'), 'fusion')
    message = str(info.value)
    assert "'NoSuchFusion' is not registered there" in message
    known = sorted(vr.FUSION_HEADS.module_dict)
    assert 'BertFusion' in known
    assert f"registered in 'fusion head': {known}" in message
    with pytest.raises(KeyError, match='has no "type" key'):
        vr.build_from_slot(vr.LOSSES, dict(loss_weight=1.0), 'losses.itc')


@pytest.mark.slow
@pytest.mark.parametrize(
    'option,needle',
    [
        (
            'model.losses.itc.type=NoSuchLoss',
            "'losses.itc' expects a component from the 'loss' registry, but 'NoSuchLoss' is not "
            'registered there',
        ),
        (
            'model.image_backbone.type=NoSuchBackbone',
            "'image_backbone' expects a component from the 'backbone' registry, but 'NoSuchBackbone'",
        ),
        ('model.type=NoSuchPretrainer', 'NoSuchPretrainer is not in the vlreg::model registry'),
    ],
)
def test_unknown_type_through_train_tool_raises_clear_keyerror(
    tmp_path: Path, option: str, needle: str
) -> None:
    train = _load_train_tool()
    name = option.split('=')[1]
    with pytest.raises(KeyError) as info:
        train.main(
            [
                str(DEMO_CONFIG),
                '--work-dir',
                str(tmp_path),
                '--cfg-options',
                option,
                f'experiment_name=unknown_{name}',
                'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False',
            ]
        )
    assert needle in str(info.value)


# --- the loss contract, over every registered loss ------------------------------------------------
@pytest.mark.parametrize('name', _registered_losses())
def test_loss_contract(name: str) -> None:
    cls = vr.LOSSES.get(name)
    assert issubclass(cls, nn.Module), f'{name} is not an nn.Module'
    required = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != 'self'
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        pytest.skip(f'{name} needs constructor arguments {required}; not built with defaults')
    loss = vr.LOSSES.build(dict(type=name))
    requires = loss.requires
    assert isinstance(requires, tuple) and requires, f'{name}.requires must be a non-empty tuple'
    assert all(isinstance(k, str) and k for k in requires), requires
    trainable = [n for n, p in loss.named_parameters() if p.requires_grad]
    assert trainable == [], f'{name} owns trainable parameters {trainable}'
    # every declared feature is one the pretrainer provides (checked when the model is built)
    assert set(requires) <= FEATURE_FIELDS, set(requires) - FEATURE_FIELDS
    check_loss(
        name, loss, heads=dict(itm_head=nn.Identity(), mlm_head=nn.Identity()), has_momentum=True
    )
    # a declared optional feature the batch lacks fails naming it, before any computation
    optional = [k for k in requires if k in _OPTIONAL_FEATURES]
    if optional:
        with pytest.raises(KeyError) as info:
            loss(stub_context())
        assert repr(optional[0]) in str(info.value)
