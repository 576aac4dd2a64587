"""Convert an ALBEF checkpoint to a vlreg checkpoint.

Usage: python tools/convert_albef.py ALBEF.pth OUT.pth [--fusion-layer 6] [--itc-loss-name itc]
The output is ``{'state_dict': ...}``, loadable with ``tools/test.py CONFIG OUT.pth`` or ``load_from``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402

vlreg.setup_env()

import torch  # noqa: E402

from vlreg.models.utils.albef_convert import convert_albef_state_dict  # noqa: E402
from vlreg.models.utils.checkpoint import load_state_dict_file  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--fusion-layer', type=int, default=6)
    parser.add_argument('--itc-loss-name', default='itc')
    args = parser.parse_args(argv)
    state = convert_albef_state_dict(load_state_dict_file(args.src), args.fusion_layer,
                                     args.itc_loss_name)
    torch.save({'state_dict': state, 'meta': {'converted_from': os.path.basename(args.src)}}, args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
