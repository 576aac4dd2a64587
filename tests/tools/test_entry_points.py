"""pyproject's console scripts run the same tools/*.py as `python tools/<name>.py`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tomllib

import pytest

from tests.conftest import ROOT

WANTED = {
    'vlreg-train': 'train',
    'vlreg-test': 'test',
    'vlreg-search': 'search',
    'vlreg-convert': 'convert_albef',
    'vlreg-prepare': 'prepare_data',
    'vlreg-export': 'export',
}


def _scripts() -> dict[str, str]:
    with open(ROOT / 'pyproject.toml', 'rb') as f:
        return tomllib.load(f)['project']['scripts']


def test_every_tool_has_a_console_script():
    assert set(WANTED) <= set(_scripts())


@pytest.mark.parametrize('script', sorted(WANTED))
def test_console_script_runs_its_tool(script, monkeypatch, capsys):
    module, func = _scripts()[script].split(':')
    entry = getattr(importlib.import_module(module), func)
    monkeypatch.setattr(sys, 'argv', [script, '--help'])
    with pytest.raises(SystemExit) as done:
        entry()
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f'usage: {script} ')
    # the same text as the tool file itself prints
    spec = importlib.util.spec_from_file_location(
        f'tool_{script}', ROOT / 'tools' / f'{WANTED[script]}.py'
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit):
        tool.main(['--help'])
    assert capsys.readouterr().out == shown
