"""Console scripts (``vlreg-train``, ``vlreg-test``, ...): each runs the matching ``tools/*.py``.

The tools stay the implementation (MMEngine users expect ``python tools/train.py``); a console
script runs the same file's ``main`` with the command line, so both behave identically. They
need the source checkout next to the package (``pip install -e .``, as the README installs).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parents[1] / 'tools'


def load_tool(name: str) -> Any:
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    path = TOOLS / f'{name}.py'
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} not found: the vlreg console scripts run the tools of a '
            'source checkout; install it with `pip install -e .` from the '
            'repository'
        )
    spec = importlib.util.spec_from_file_location(f'vlreg_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name: str, argv: list[str] | None = None) -> Any:
    """Import ``tools/<name>.py`` and return ``main(argv)`` (default: ``sys.argv[1:]``)."""
    module = load_tool(name)
    sys.argv[0] = f'vlreg-{name.split("_")[0]}'
    return module.main(sys.argv[1:] if argv is None else argv)


def _exit(result: Any) -> None:
    if isinstance(result, int) and not isinstance(result, bool):
        sys.exit(result)


def train() -> None:
    _exit(run_tool('train'))


def test() -> None:
    _exit(run_tool('test'))


def search() -> None:
    _exit(run_tool('search'))


def convert() -> None:
    _exit(run_tool('convert_albef'))


def prepare() -> None:
    _exit(run_tool('prepare_data'))


def export() -> None:
    _exit(run_tool('export'))
