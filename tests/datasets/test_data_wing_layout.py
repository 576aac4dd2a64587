"""The data wing's layout (issue 8, item 3): one module per task, one reader, no import circle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import vlreg.datasets as datasets
from vlreg.registry import DATASETS

PACKAGE = Path(datasets.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (relative imports keep their leading dots)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add('.' * node.level + (node.module or ''))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_tokenizer_does_not_import_the_synthetic_dataset() -> None:
    # was: caption_dataset -> transforms.text -> tokenizers -> synthetic -> caption_dataset
    tokenizer_imports = _imports(PACKAGE / 'tokenizers.py')
    assert '.synthetic_grammar' in tokenizer_imports
    assert not {'.synthetic', '.caption_dataset', 'vlreg.datasets.synthetic'} & tokenizer_imports
    assert _imports(PACKAGE / 'synthetic_grammar.py') == {'__future__'}
    assert '.caption_dataset' not in _imports(PACKAGE / 'synthetic.py')


def test_one_module_per_task_next_to_its_converter() -> None:
    for task, name, converter in (
        ('vqa', 'VQADataset', 'vqa'),
        ('nlvr2', 'NLVR2Dataset', 'nlvr2'),
        ('snli_ve', 'SNLIVEDataset', 'snli_ve'),
        ('grounding', 'GroundingDataset', 'refcoco'),
    ):
        module = importlib.import_module(f'vlreg.datasets.{task}')
        cls = getattr(module, name)
        assert DATASETS.get(name) is cls and getattr(datasets, name) is cls
        assert getattr(importlib.import_module('vlreg.datasets.downstream'), name) is cls
        assert (PACKAGE / 'prepare' / f'{converter}.py').is_file()


def test_json_is_parsed_in_one_module_only() -> None:
    parsers = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob('*.py')
        if 'json.load' in p.read_text() or 'JSONDecodeError' in p.read_text()
    )
    assert parsers == ['reader.py']
