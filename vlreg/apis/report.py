"""A self-contained HTML page of a text -> image search: thumbnails, scores, Grad-CAM overlays.

Every picture is embedded as a PNG data URI, so the page is one file that opens anywhere (a
browser, a notebook's ``IFrame``, an e-mail) without the image folder.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

from .encode import Ranking
from .explain import Explanation


def png_data_uri(image: np.ndarray, max_side: int | None = None) -> str:
    """``data:image/png;base64,...`` of an RGB ``uint8`` array (shrunk to ``max_side``)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image))
    if max_side is not None and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format='PNG')
    return 'data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
.hit { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; text-align: center; }
.hit img, .cam img { width: 160px; height: 160px; object-fit: contain; border: 1px solid #ccc; }
.cam { display: inline-block; margin-right: .5em; font-size: 80%; }
.explain { margin: 1em 0; } small { color: #666; }
"""


def render_search_html(
    query: str,
    ranking: Ranking,
    thumbnails: Sequence[np.ndarray],
    explanations: Sequence[Explanation] = (),
    title: str = 'vlreg search',
    thumb_side: int = 256,
) -> str:
    """The page: the query and protocol, one card per hit (rank, name, score, ITC similarity),
    then for the first ``len(explanations)`` hits each query word's Grad-CAM overlay."""
    esc = html.escape
    proto = ranking.protocol
    head = (
        f'<h1>{esc(title)}</h1><p>query: <b>{esc(query)}</b></p>'
        f'<p><small>{esc(describe(proto))}</small></p>'
    )
    cards = []
    for place, (item, score, itc, thumb) in enumerate(
        zip(ranking.images, ranking.scores, ranking.itc, thumbnails, strict=True), start=1
    ):
        cards.append(
            f'<div class="hit"><img class="thumb" alt="{esc(str(item))}" '
            f'src="{png_data_uri(thumb, thumb_side)}"><br>#{place} '
            f'{esc(_name(item))}<br>score {score:.3f} <small>(itc {itc:.3f})</small>'
            '</div>'
        )
    blocks = []
    for place, ex in enumerate(explanations, start=1):
        cams = ''.join(
            f'<div class="cam"><img class="gradcam" alt="Grad-CAM {esc(w)}" '
            f'src="{png_data_uri(o, thumb_side)}"><br>{esc(w)}</div>'
            for w, o in zip(ex.words, ex.overlays())
        )
        blocks.append(
            f'<div class="explain"><h3>#{place} {esc(_name(ranking.images[place - 1]))}'
            f' <small>ITM p={ex.itm:.3f}, Grad-CAM of fusion layer {ex.layer}</small>'
            f'</h3>{cams}</div>'
        )
    body = head + '<h2>top hits</h2>' + ''.join(cards)
    if blocks:
        body += '<h2>where each word looks</h2>' + ''.join(blocks)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<style>{_STYLE}</style></head><body>{body}</body></html>'
    )


def render_search_figure(
    query: str,
    ranking: Ranking,
    thumbnails: Sequence[np.ndarray],
    top: int = 5,
    panel_inches: float = 1.8,
    dpi: int = 100,
) -> np.ndarray:
    """The first ``top`` hits side by side as one RGB ``uint8`` picture (for a README or a report,
    where an HTML page cannot go): each titled with its rank, file name and score, the query and
    the protocol above."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = min(top, len(thumbnails))
    if n == 0:
        raise ValueError('render_search_figure: the ranking has no hits to draw')
    fig = Figure(figsize=(n * panel_inches, panel_inches + 0.8), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(thumbnails[i])
        ax.set_title(
            f'#{i + 1} {_name(ranking.images[i])[:18]}\nscore {ranking.scores[i]:.2f}', fontsize=7
        )
        ax.set_axis_off()
    fig.suptitle(f'"{query}"\n{describe(ranking.protocol)}', fontsize=7)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def describe(protocol: dict) -> str:
    """One line saying how the ranking was made."""
    if not protocol.get('k'):
        return f'ITC similarity over {protocol.get("num_images")} images (no ITM re-rank)'
    return (
        f'ITC over {protocol.get("num_images")} images, top-{protocol["k"]} re-ranked by '
        f'{protocol.get("rerank_score")}; others keep {protocol.get("fill")}'
    )


def _name(item: object) -> str:
    return str(item).replace('\\', '/').rsplit('/', 1)[-1]
