"""Export a checkpoint's model weights only (no momentum encoders, queues, optimizer, message hub).

Usage: python tools/export.py CKPT OUT [--task all|retrieval] [--config CONFIG]

Writes OUT.safetensors and OUT.json (the model config, the source, what was dropped, the sizes).
The file loads everywhere a checkpoint does: ``vlreg.apis.init_model(CONFIG, OUT.safetensors)``,
``tools/test.py CONFIG OUT.safetensors``, and fine-tuning with ``model.pretrained=OUT.safetensors``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402,F401 - stack fixes first

from vlreg.apis.export import TASKS, export_weights  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='output path (.safetensors is appended when missing)')
    parser.add_argument(
        '--task',
        choices=sorted(TASKS),
        default='all',
        help='all: every online tensor; retrieval: without the MLM head',
    )
    parser.add_argument(
        '--config',
        help='model config for the JSON (default: the one the checkpoint carries in meta.cfg)',
    )
    args = parser.parse_args(argv)
    info = export_weights(args.checkpoint, args.out, args.task, args.config)
    mb = 1 / 2**20
    print(
        f'wrote {info["tensors"]} tensors to {info["weights"]} ({info["bytes"] * mb:.1f} MB) and '
        f'its .json; the checkpoint is {info["source_bytes"] * mb:.1f} MB '
        f'({info["bytes"] / max(info["source_bytes"], 1):.0%}); dropped {info["dropped"]}'
    )
    if info['model'] is None:
        print(
            'warning: the checkpoint carries no config and --config was not given: the JSON has '
            'no model config'
        )
    return info


if __name__ == '__main__':
    main()
