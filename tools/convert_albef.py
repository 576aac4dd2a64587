"""Convert an ALBEF checkpoint (any released layout) to a vlreg checkpoint.

Usage: python tools/convert_albef.py ALBEF.pth OUT.pth [--layout auto] [--fusion-layer 6]

Layouts (detected from the keys unless --layout is given): pretrain ({'model': sd} with momentum
copies and queues), retrieval / grounding (bare fine-tuned state dicts, no ``*_m``), snli_ve and
nlvr2 (``cls_head``), vqa (``text_decoder``). The tool prints what it dropped and what it created
(momentum copies a fine-tuned file lacks, from the online weights) and why. The output is
``{'state_dict': ...}`` (``.pth``) or a safetensors file (``OUT.safetensors``), loadable with
``tools/test.py CONFIG OUT`` or ``model.pretrained=OUT`` / ``load_from``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402

vlreg.setup_env()

import torch  # noqa: E402

from vlreg.models.utils.albef_convert import LAYOUTS, convert_albef_layout  # noqa: E402
from vlreg.models.utils.checkpoint import load_state_dict_file  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--layout', choices=['auto', *LAYOUTS], default='auto')
    parser.add_argument(
        '--fusion-layer', type=int, default=6, help="ALBEF's first fusion layer (6 for BERT-base)"
    )
    parser.add_argument('--itc-loss-name', default='itc')
    args = parser.parse_args(argv)
    layout = None if args.layout == 'auto' else args.layout
    state, report = convert_albef_layout(
        load_state_dict_file(args.src), layout, args.fusion_layer, args.itc_loss_name
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    if args.dst.endswith('.safetensors'):
        from safetensors.torch import save_file

        save_file({k: v.contiguous().clone() for k, v in state.items()}, args.dst)
    else:
        torch.save(
            {
                'state_dict': state,
                'meta': {
                    'converted_from': os.path.basename(args.src),
                    'albef_layout': report['layout'],
                },
            },
            args.dst,
        )
    print(f'layout: {report["layout"]} -> {report["target"]}')
    for what, reason in report['dropped'].items():
        print(f'dropped {what}: {reason}')
    for what, reason in report['created'].items():
        print(f'created {what}: {reason}')
    print(f'wrote {len(state)} tensors to {args.dst}')
    return report


if __name__ == '__main__':
    main()
