"""The package's layers (issue 8, item 3; issue 11): models below datasets and evaluation, and
``vlreg.structures`` below everything.

Imports are read with ``ast`` (not by importing), so an import inside a function counts as much as
one at the top of a file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vlreg

ROOT = Path(vlreg.__file__).resolve().parent


def _module_name(path: Path, root: Path = ROOT) -> str:
    """``.../vlreg/models/heads/vqa.py`` -> ``vlreg.models.heads.vqa`` (a package: its name)."""
    parts = list(path.relative_to(root.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every absolute module a file imports, at any depth; relative imports are resolved, and
    ``from pkg import name`` counts both ``pkg`` and ``pkg.name`` (``name`` may be a module)."""
    name = _module_name(path, root)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                module = f'{base}.{node.module}' if node.module else base
            else:
                module = node.module or ''
            found.add(module)
            found.update(f'{module}.{alias.name}' for alias in node.names)
    return found


def _violations(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    folder = root.parent.joinpath(*package.split('.'))
    out = []
    for path in sorted(folder.rglob('*.py')):
        for module in sorted(imported_modules(path, root)):
            if any(module == f or module.startswith(f + '.') for f in forbidden):
                out.append(f'{path.relative_to(root.parent)} imports {module}')
    return out


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The check itself: a violation hidden in a function or written relatively is found."""
    heads = tmp_path / 'vlreg' / 'models' / 'heads'
    heads.mkdir(parents=True)
    for folder in (tmp_path / 'vlreg', tmp_path / 'vlreg' / 'models', heads):
        (folder / '__init__.py').write_text('')
    (heads / 'lazy.py').write_text('def f():\n    from vlreg.datasets.tokenizers import x\n')
    (heads / 'relative.py').write_text('from ...evaluation import vqa\n')
    (heads / 'fine.py').write_text('from ..utils import bert_layers\nimport torch\n')
    found = _violations('vlreg.models', ('vlreg.datasets', 'vlreg.evaluation'), tmp_path / 'vlreg')
    assert found == [
        f'{Path("vlreg/models/heads/lazy.py")} imports vlreg.datasets.tokenizers',
        f'{Path("vlreg/models/heads/lazy.py")} imports vlreg.datasets.tokenizers.x',
        f'{Path("vlreg/models/heads/relative.py")} imports vlreg.evaluation',
        f'{Path("vlreg/models/heads/relative.py")} imports vlreg.evaluation.vqa',
    ]
    assert imported_modules(heads / 'fine.py', tmp_path / 'vlreg') == {
        'vlreg.models.utils',
        'vlreg.models.utils.bert_layers',
        'torch',
    }


def test_models_import_neither_datasets_nor_evaluation() -> None:
    assert _violations('vlreg.models', ('vlreg.datasets', 'vlreg.evaluation')) == []


def test_structures_import_only_themselves() -> None:
    forbidden = (
        'vlreg.apis',
        'vlreg.datasets',
        'vlreg.engine',
        'vlreg.evaluation',
        'vlreg.models',
        'vlreg.registry',
        'vlreg.utils',
    )
    assert _violations('vlreg.structures', forbidden) == []


def test_importing_structures_loads_no_other_layer() -> None:
    code = (
        'import sys, vlreg.structures; print(sorted(m for m in sys.modules if '
        "m.startswith(('vlreg.models', 'vlreg.datasets', 'vlreg.evaluation', 'vlreg.engine', "
        "'vlreg.apis'))))"
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT.parent, check=True
    )
    assert out.stdout.strip() == '[]', out.stdout + out.stderr
