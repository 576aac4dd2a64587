"""Convert and check the official dataset files for vlreg's downstream tasks.

    python tools/prepare_data.py {retrieval,vqa,nlvr2,snli_ve,refcoco} --help

Each sub-command validates every entry (and image), writes the files the task configs read, and prints
what it wrote and what it skipped with the reason. The formats are documented in README.md
("Downstream data") and in each converter's module (vlreg/datasets/prepare/<name>.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vlreg.datasets.prepare import DATASETS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='dataset', required=True, metavar='DATASET')
    for name in DATASETS:
        module = importlib.import_module(f'vlreg.datasets.prepare.{name}')
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one converter; an unreadable input (missing, not UTF-8, malformed or truncated JSON)
    ends the run with ``error: <file and where>`` and exit code 1 instead of a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.module.run(args)
    except (OSError, ValueError) as err:
        print(f'error: {err}')
        return 1


if __name__ == '__main__':
    sys.exit(main())
