"""Search a folder of images with a text query and write an HTML page of the top hits.

Usage:
    python tools/search.py CONFIG CKPT --images FOLDER --query "a dog on a beach" \
        [--top 10] [--out results.html] [--png FILE] [--explain 3] [--k K] [--index FILE] [--rebuild]

The folder is encoded once into an image index (``--index``, default
``FOLDER/.vlreg_index.safetensors``) that later searches reuse; an index built by another model
(or for other files) is rebuilt, with a message. Ranking follows the evaluation: ITC for every
image, the top ``k`` (default: the config's ``test_cfg.k``) re-ranked by ITM. The page shows the
thumbnails, the scores and, for the first ``--explain`` hits, the Grad-CAM overlay of each word.
``--png`` also writes the first five hits as one picture (where a page cannot go, e.g. a README).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402,F401 - stack fixes first

from vlreg.apis import ImageIndex, build_index, explain, init_model, load_image, rank  # noqa: E402
from vlreg.apis.index import list_images  # noqa: E402
from vlreg.apis.report import describe, render_search_figure, render_search_html  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint',
        help='weights (checkpoint, state dict or tools/export.py '
        'output); "none" keeps the random initialisation',
    )
    parser.add_argument('--images', required=True, help='folder of images (searched recursively)')
    parser.add_argument('--query', required=True)
    parser.add_argument('--top', type=int, default=10, help='hits on the page')
    parser.add_argument(
        '--k',
        type=int,
        default=None,
        help="ITM re-rank depth (default: the config's test_cfg.k; 0: ITC only)",
    )
    parser.add_argument('--explain', type=int, default=3, help='hits with Grad-CAM overlays')
    parser.add_argument(
        '--layer',
        type=int,
        default=None,
        help="fusion layer of the Grad-CAM (default: the model's gradcam_layer, else 2)",
    )
    parser.add_argument(
        '--index', help='image index file (default FOLDER/.vlreg_index.safetensors)'
    )
    parser.add_argument('--rebuild', action='store_true', help='re-encode the folder')
    parser.add_argument('--out', default='results.html')
    parser.add_argument('--png', help='also write the top 5 hits as one PNG picture')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def get_index(model, folder: str, path: str, rebuild: bool) -> ImageIndex:
    """The folder's index: loaded when it fits this model and these files, else (re)built."""
    paths = list_images(folder)
    if os.path.isfile(path) and not rebuild:
        index = ImageIndex.load(path)
        try:
            index.check_model(model)
            if index.paths == paths:
                print(f'image index: {path} ({len(paths)} images, reused)')
                return index
            print(f'image index: {path} lists other files than {folder}: rebuilding')
        except ValueError as err:
            print(f'{err}: rebuilding')
    index = build_index(model, paths, path)
    print(f'image index: {path} ({len(paths)} images, built)')
    return index


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = init_model(args.config, checkpoint, device=args.device)
    index_path = args.index or os.path.join(args.images, '.vlreg_index.safetensors')
    index = get_index(model, args.images, index_path, args.rebuild)
    ranking = rank(model, args.query, index, top=args.top, k='config' if args.k is None else args.k)
    thumbs = [load_image(p) for p in ranking.images]
    explanations = [
        explain(model, p, args.query, layer=args.layer)
        for p in ranking.images[: max(args.explain, 0)]
    ]
    page = render_search_html(args.query, ranking, thumbs, explanations)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(page)
    print(describe(ranking.protocol))
    for place, (path, score) in enumerate(zip(ranking.images, ranking.scores), start=1):
        print(f'{place:3d}. {score:9.3f}  {path}')
    print(f'page written to {args.out}')
    if args.png:
        from PIL import Image

        os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
        Image.fromarray(render_search_figure(args.query, ranking, thumbs)).save(args.png)
        print(f'picture written to {args.png}')
    return dict(ranking=ranking, out=args.out, index=index_path)


if __name__ == '__main__':
    main()
