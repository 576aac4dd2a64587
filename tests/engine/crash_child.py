"""Run tools/train.py in a child process that a test kills; optionally hang in the middle of a save.

``python tests/engine/crash_child.py [--block-save N] TRAIN_ARGS...``: with ``--block-save N`` the N-th
checkpoint file written stops after half its bytes (flushed to disk), ``<work_dir>/BLOCKED`` is created,
and the process sleeps until it is killed: a crash in the middle of a save.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'tools'))


def block_on_save(number: int, marker: Path) -> None:
    import vlreg

    vlreg.setup_env()
    from mmengine.fileio.backends.local_backend import LocalBackend

    put = LocalBackend.put
    count = {'n': 0}

    def hanging_put(self, obj, filepath):
        if str(filepath).endswith('.tmp') and isinstance(obj, bytes):
            count['n'] += 1
            if count['n'] == number:
                with open(filepath, 'wb') as f:
                    f.write(obj[: len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                marker.write_text(str(filepath))
                while True:
                    time.sleep(1)
        return put(self, obj, filepath)

    LocalBackend.put = hanging_put


if __name__ == '__main__':
    args = sys.argv[1:]
    if args[:1] == ['--block-save']:
        work = Path(args[args.index('--work-dir') + 1])
        work.mkdir(parents=True, exist_ok=True)
        block_on_save(int(args[1]), work / 'BLOCKED')
        args = args[2:]
    import train

    train.main(args)
