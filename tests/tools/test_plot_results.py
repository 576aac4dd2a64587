"""tools/plot_results.py: bars at the seed mean, whiskers to the worst / best seed."""

from __future__ import annotations

import json

import pytest

from vlreg.cli import load_tool


RESULTS = [
    dict(variant='baseline', seed=0, r_mean=10.0),
    dict(variant='all', seed=0, r_mean=30.0),
    dict(variant='baseline', seed=1, r_mean=14.0),
    dict(variant='all', seed=1, r_mean=20.0),
    dict(variant='all', seed=2, r_mean=22.0),
]


def _tool():
    return load_tool('plot_results')


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


# two sides, two batches, two rounds each (three for albef at 16: the median is not the mean) (a matmul record in between, as the benchmark writes it)
STEPS = [
    dict(kind='matmul', flops_per_s=1e11, round=0),
    dict(kind='train', side='albef', batch=16, round=0, median_step_s=2.0, peak_rss_mb=1900.0),
    dict(kind='train', side='albef', batch=16, round=1, median_step_s=1.6, peak_rss_mb=1950.0),
    dict(kind='train', side='albef', batch=16, round=2, median_step_s=1.7, peak_rss_mb=1920.0),
    dict(kind='train', side='vlreg', batch=16, round=0, median_step_s=1.5, peak_rss_mb=1800.0),
    dict(kind='train', side='vlreg', batch=16, round=1, median_step_s=1.3, peak_rss_mb=1700.0),
    dict(kind='train', side='albef', batch=32, round=0, median_step_s=3.0, peak_rss_mb=2800.0),
    dict(kind='train', side='albef', batch=32, round=1, median_step_s=3.4, peak_rss_mb=2700.0),
    dict(kind='train', side='vlreg', batch=32, round=0, median_step_s=2.9, peak_rss_mb=2500.0),
    dict(kind='train', side='vlreg', batch=32, round=1, median_step_s=2.7, peak_rss_mb=2600.0),
]


def test_step_plot_medians_ranges_and_peaks(tmp_path):
    tool = _tool()
    summary = tool.summarise_steps(STEPS)
    assert summary['albef'][16] == dict(
        step_s=pytest.approx(1.7), step_min=1.6, step_max=2.0, peak_mb=1950.0, rounds=3
    )
    assert summary['vlreg'][32]['step_s'] == pytest.approx(2.8)
    fig = tool.plot_steps(STEPS, str(tmp_path / 's.png'))
    ax_t, ax_m = fig.axes
    times = {line.get_label(): list(line.get_ydata()) for line in ax_t.lines}
    assert times['albef'] == pytest.approx([1.7, 3.2]) and times['vlreg'] == pytest.approx(
        [1.4, 2.8]
    )
    assert [list(line.get_xdata()) for line in ax_t.lines] == [[16, 32], [16, 32]]
    peaks = {line.get_label(): list(line.get_ydata()) for line in ax_m.lines}
    assert peaks == {'albef': [1950.0, 2800.0], 'vlreg': [1800.0, 2600.0]}
    band = ax_t.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(1.6) and band.max() == pytest.approx(3.4)
    assert (tmp_path / 's.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_cli_picks_the_step_plot_and_refuses_empty_results(tmp_path):
    src = tmp_path / 'results.json'
    src.write_text(json.dumps(STEPS))
    out = _tool().main([str(src), '--out', str(tmp_path / 'steps.png')])
    assert out == str(tmp_path / 'steps.png') and (tmp_path / 'steps.png').stat().st_size > 1000
    with pytest.raises(ValueError, match='no step records'):
        _tool().summarise_steps(STEPS[:1])
