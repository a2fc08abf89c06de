"""Helper for test_s17_break_fixes: tune the collection at argv[1] and die by SIGKILL at the calibration.

usage: python _tune_kill.py COLLECTION
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

from slimvec import Collection
from slimvec.index import nprobe


def main() -> None:
    nprobe.calibrate_ef = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
    col = Collection.open(sys.argv[1])
    q = np.random.default_rng(5).standard_normal((20, int(col.manifest["dim"]))).astype(np.float32)
    col.tune(vectors=q / np.linalg.norm(q, axis=1, keepdims=True))


if __name__ == "__main__":
    main()
