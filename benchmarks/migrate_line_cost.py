"""What serving through a migration adds per query beside the adapter: the per-query score line (merged.py),
which scores the query against every kept reference chunk in both spaces, for 2,000 and 5,000 references.

    PYTHONPATH=src python benchmarks/migrate_line_cost.py

Median wall and CPU milliseconds of one query (1 x 384 new, 1 x 384 old), 200 calls after 20 warm-up calls, one
BLAS thread (as a lone query runs), random unit vectors (the cost does not depend on the values).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402

from slimvec.migrate.adapters import ProcrustesRidge, normalise  # noqa: E402
from slimvec.migrate.merged import MigratingCollection, reference_depth  # noqa: E402


def _median_ms(fn, calls: int = 200) -> tuple[float, float]:
    for _ in range(20):
        fn()
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)) * 1000, float(np.median(cpu)) * 1000


def main() -> None:
    print(f"machine: {machine()}")
    rng = np.random.default_rng(0)
    d = 384
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for n in (2000, 5000):
            x, y = normalise(rng.standard_normal((n, d))), normalise(rng.standard_normal((n, d)))
            col = MigratingCollection.__new__(MigratingCollection)  # only the line's state: no files needed
            col.reference, col.merge = (x, y), "per-query"
            adapter = ProcrustesRidge(ridge=1.0).fit(x, y)
            q = normalise(rng.standard_normal((1, d)))
            qo = adapter.apply(q)
            line = _median_ms(lambda: col._lines(q, qo))
            apply = _median_ms(lambda: adapter.apply(q))
            rows.append([n, reference_depth(n), f"{line[0]:.3f}", f"{line[1]:.3f}", f"{apply[0]:.3f}", f"{apply[1]:.3f}"])
    print_table(["reference chunks", "line depth", "line ms wall", "line ms CPU", "adapter ms wall", "adapter ms CPU"], rows)


if __name__ == "__main__":
    main()
