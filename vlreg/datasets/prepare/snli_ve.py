r"""SNLI-VE: the official jsonl files -> ALBEF-format json, with every entry and image checked.

    python tools/prepare_data.py snli_ve --ann-file data/snli_ve/snli_ve_dev.jsonl \
        --image-root data/flickr30k-images --out data/snli_ve/ve_dev.json [--decode-images]

The output lists ``{"image": "<Flickr30K id>.jpg", "sentence", "label": "entailment"|"neutral"|
"contradiction", "premise"?, "pair_id"?}``; entries without a gold label (``"-"``) are skipped and
counted. ``SNLIVEDataset`` reads both formats.
"""

from __future__ import annotations

import argparse
import json
import os

from . import image_problem, progress, report

HELP = 'SNLI-VE official jsonl -> checked ALBEF json'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--ann-file', required=True, help='official snli_ve_{train,dev,test}.jsonl')
    parser.add_argument('--image-root', required=True, help='the Flickr30K image folder')
    parser.add_argument('--out', required=True, help='output json')
    parser.add_argument('--decode-images', action='store_true', help='decode every image (slow)')


def run(args: argparse.Namespace) -> int:
    from vlreg.datasets import SNLIVEDataset

    root = os.path.abspath(args.image_root)
    ds = SNLIVEDataset(
        ann_file=os.path.abspath(args.ann_file),
        image_root=root,
        skip_bad_samples=True,
        serialize_data=False,
    )
    skipped = list(ds.bad_entries)
    out = []
    for info in progress(ds.data_list, desc='snli_ve: checking images'):
        problem = image_problem(info['img_path'], args.decode_images)
        if problem:
            skipped.append(f'{args.ann_file!r}: entry {info["ann_index"]}: {problem}')
            continue
        entry = dict(
            image=os.path.relpath(info['img_path'], root),
            sentence=info['caption'],
            label=info['gold_label'],
        )
        entry.update({k: info[k] for k in ('premise', 'pair_id') if info.get(k) is not None})
        out.append(entry)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(out, f)
    report('snli_ve', len(out), args.out, skipped)
    return 0 if out else 1
