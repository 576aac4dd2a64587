"""tools/search.py: the page's thumbnails are the ranked files, the index is reused and rebuilt
for another model, and a real headless Chromium renders the pictures."""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import ROOT
from vlreg.apis import init_model, rank

CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')
COLOURS = {
    'magenta': (255, 0, 255),
    'cyan': (0, 255, 255),
    'orange': (255, 128, 0),
    'olive': (128, 128, 0),
}
QUERY = 'a red circle'


def _tool():
    spec = importlib.util.spec_from_file_location('vlreg_tool_search', ROOT / 'tools' / 'search.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    work = tmp_path_factory.mktemp('search')
    folder = work / 'photos'
    folder.mkdir()
    for name, rgb in COLOURS.items():
        pixels = np.zeros((64, 64, 3), np.uint8)
        pixels[:] = rgb
        pixels[16:48, 16:48] = 255 - np.array(rgb)  # a square, so Grad-CAM has structure
        Image.fromarray(pixels).save(folder / f'{name}.png')
    out = work / 'results.html'
    torch.save(init_model(CONFIG).state_dict(), work / 'model.pth')
    result = _tool().main(
        [
            CONFIG,
            str(work / 'model.pth'),
            '--images',
            str(folder),
            '--query',
            QUERY,
            '--top',
            '4',
            '--explain',
            '1',
            '--out',
            str(out),
            '--png',
            str(work / 'hits.png'),
        ]
    )
    return work, folder, out, result


def _decode(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.split(',', 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))


def test_page_shows_the_ranked_files_with_their_scores(page):
    _, folder, out, result = page
    text = out.read_text()
    thumbs = re.findall(r'<img class="thumb" alt="([^"]+)" src="([^"]+)"', text)
    ranking = result['ranking']
    assert [alt for alt, _ in thumbs] == ranking.images and len(thumbs) == 4
    for alt, uri in thumbs:
        np.testing.assert_array_equal(_decode(uri), np.asarray(Image.open(alt).convert('RGB')))
    for score in ranking.scores:
        assert f'score {score:.3f}' in text
    assert 'top-4 re-ranked by ITM match logit' in text  # tiny_synthetic: test_cfg.k = 4
    cams = re.findall(r'<img class="gradcam" alt="Grad-CAM (\w+)"', text)
    assert cams == ['a', 'red', 'circle']


def test_index_is_reused_and_rebuilt_for_another_model(page, tmp_path, capsys):
    work, folder, out, first = page
    tool = _tool()
    capsys.readouterr()
    again = tool.main(
        [
            CONFIG,
            str(work / 'model.pth'),
            '--images',
            str(folder),
            '--query',
            QUERY,
            '--top',
            '4',
            '--explain',
            '0',
            '--out',
            str(tmp_path / 'a.html'),
        ]
    )
    printed = capsys.readouterr().out
    assert '(4 images, reused)' in printed and 'built' not in printed
    assert again['ranking'].images == first['ranking'].images
    other = init_model(CONFIG)
    torch.save(other.state_dict(), tmp_path / 'other.pth')
    second = tool.main(
        [
            CONFIG,
            str(tmp_path / 'other.pth'),
            '--images',
            str(folder),
            '--query',
            QUERY,
            '--top',
            '4',
            '--explain',
            '0',
            '--out',
            str(tmp_path / 'b.html'),
        ]
    )
    printed = capsys.readouterr().out
    assert 'built by another model' in printed and '(4 images, built)' in printed
    want = rank(other, QUERY, sorted(str(p) for p in folder.glob('*.png')), top=4)
    assert second['ranking'].images == want.images


BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'chrome-headless-shell')


def _screenshot(browser: str, html_file, png) -> np.ndarray:
    subprocess.run(
        [
            browser,
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--hide-scrollbars',
            f'--screenshot={png}',
            '--window-size=1400,1400',
            f'file://{html_file}',
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return np.asarray(Image.open(png).convert('RGB')).astype(int)


def _magenta_pixels(shot: np.ndarray) -> int:
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    return int(((r > 240) & (g < 15) & (b > 240)).sum())


def test_headless_browser_renders_the_pictures(page, tmp_path):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip('no headless browser installed (Debian: apt-get install chromium)')
    _, _, out, _ = page
    shot = _screenshot(browser, out, tmp_path / 'page.png')
    # the magenta thumbnail is drawn at 160 x 160 px, its outer ring (3/4 of it) magenta
    assert _magenta_pixels(shot) > 0.5 * 160 * 160
    broken = tmp_path / 'broken.html'
    broken.write_text(re.sub(r'base64,[^"]+', 'base64,AAAA', out.read_text()))
    assert _magenta_pixels(_screenshot(browser, broken, tmp_path / 'broken.png')) == 0


def test_png_picture_shows_the_hits_left_to_right_in_ranked_order(page):
    work, _, _, result = page
    picture = np.asarray(Image.open(work / 'hits.png').convert('RGB')).astype(int)
    centres = []
    for path in result['ranking'].images:
        rgb = COLOURS[path.rsplit('/', 1)[-1].split('.')[0]]
        hit = (np.abs(picture - np.array(rgb)).sum(-1) <= 6).nonzero()
        assert hit[1].size > 100, f'{path}: its colour is not in the picture'
        centres.append(hit[1].mean())
    assert centres == sorted(centres), f'hits not drawn in ranked order: x centres {centres}'
