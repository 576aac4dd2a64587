r"""NLVR2: the official json-lines files -> ALBEF-format json, with every entry and image checked.

    python tools/prepare_data.py nlvr2 --ann-file data/nlvr2/dev.json --image-root data/nlvr2/dev \
        --out data/nlvr2/dev_albef.json [--decode-images]

The output lists ``{"images": [left, right], "sentence", "label": "True"|"False", "identifier"}`` with
image paths relative to ``--image-root`` (so the config keeps ``image_root``); ``NLVR2Dataset`` reads both
formats, so converting is optional: it validates the files once, up front, instead of at training time.
"""

from __future__ import annotations

import argparse
import json
import os

from . import image_problem, progress, report

HELP = 'NLVR2 official json lines -> checked ALBEF json'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--ann-file', required=True, help='official train.json / dev.json / test1.json'
    )
    parser.add_argument('--image-root', required=True, help="folder of the split's images")
    parser.add_argument('--out', required=True, help='output json')
    parser.add_argument(
        '--no-directory',
        action='store_true',
        help='ignore the entries\' "directory" field (flat image folder)',
    )
    parser.add_argument('--decode-images', action='store_true', help='decode every image (slow)')


def run(args: argparse.Namespace) -> int:
    from vlreg.datasets import NLVR2Dataset

    ds = NLVR2Dataset(
        ann_file=os.path.abspath(args.ann_file),
        image_root=os.path.abspath(args.image_root),
        use_directory=not args.no_directory,
        skip_bad_samples=True,
        serialize_data=False,
    )
    skipped = list(ds.bad_entries)
    out = []
    root = os.path.abspath(args.image_root)
    for info in progress(ds.data_list, desc='nlvr2: checking images'):
        where = f'{args.ann_file!r}: entry {info["ann_index"]}'
        problem = image_problem(info['img_path'], args.decode_images) or image_problem(
            info['img_path2'], args.decode_images
        )
        if problem:
            skipped.append(f'{where}: {problem}')
            continue
        out.append(
            dict(
                images=[os.path.relpath(info[k], root) for k in ('img_path', 'img_path2')],
                sentence=info['caption'],
                label=('False', 'True')[info['label']],
                identifier=info['identifier'],
            )
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(out, f)
    report('nlvr2', len(out), args.out, skipped)
    return 0 if out else 1
