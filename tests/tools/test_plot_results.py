"""tools/plot_results.py: bars at the seed mean, whiskers to the worst / best seed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT

RESULTS = [
    dict(variant='baseline', seed=0, r_mean=10.0),
    dict(variant='all', seed=0, r_mean=30.0),
    dict(variant='baseline', seed=1, r_mean=14.0),
    dict(variant='all', seed=1, r_mean=20.0),
    dict(variant='all', seed=2, r_mean=22.0),
]


def _tool():
    spec = importlib.util.spec_from_file_location(
        'plot_results', ROOT / 'tools' / 'plot_results.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_and_bars(tmp_path):
    tool = _tool()
    summary = tool.summarise(RESULTS)
    assert summary['baseline'] == dict(values=[10.0, 14.0], mean=12.0, min=10.0, max=14.0)
    assert summary['all']['mean'] == pytest.approx(24.0) and summary['all']['min'] == 20.0
    fig = tool.plot_recall(RESULTS, str(tmp_path / 'a.png'))
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([12.0, 24.0])
    bars = next(c for c in ax.containers if type(c).__name__ == 'ErrorbarContainer')
    whiskers = bars.lines[2][0].get_segments()
    assert [(s[0][1], s[1][1]) for s in whiskers] == [(10.0, 14.0), (20.0, 30.0)]
    assert (tmp_path / 'a.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_cli_writes_next_to_the_json(tmp_path):
    src = tmp_path / 'flickr8k.json'
    src.write_text(json.dumps(RESULTS))
    assert _tool().main([str(src)]) == str(tmp_path / 'flickr8k.png')
    assert (tmp_path / 'flickr8k.png').stat().st_size > 1000
    with pytest.raises(KeyError, match="no 'txt_r1'"):
        _tool().main([str(src), '--metric', 'txt_r1'])
