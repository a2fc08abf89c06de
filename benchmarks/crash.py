"""Crash safety, long version: SIGKILL a writer >= 100 times mid-add, then check the collection.

usage: .venv/bin/python benchmarks/crash.py [--runs 100] [--seed 1] [--dir DIR]
Writer: tests/crash_writer.py (FakeEncoder, batches of 1, 3 or 20 documents, printing each id after
its add returned). After each kill: check() must be empty, every printed id present, no document
without chunks, and a new add must succeed. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _reliability import crash_once  # noqa: E402
from _server_util import make_collection  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=None, help="where to build the collection (default: a temp dir)")
    a = ap.parse_args()
    root = a.dir or Path(tempfile.mkdtemp(prefix="slimvec-crash-"))
    path = root / "col"
    make_collection(path).close()
    rng = random.Random(a.seed)
    rows, t0 = [], time.perf_counter()
    print(f"{'run':>4} {'batch':>5} {'kill@s':>7} {'printed':>8} {'missing':>8} {'chunkless':>9} {'docs':>6}  problems")
    for run in range(a.runs):
        r = crash_once(path, run, rng)
        rows.append(r)
        print(f"{run:>4} {r['batch']:>5} {r['delay_s']:>7.3f} {r['printed']:>8} {r['missing']:>8} "
              f"{r['chunkless']:>9} {r['documents']:>6}  {'; '.join(r['problems']) or '-'}", flush=True)
    bad = [r for r in rows if r["problems"] or r["missing"] or r["chunkless"] or r["signal"] != -9]
    printed = sum(r["printed"] for r in rows)
    print(f"\nSUMMARY kills={len(rows)} promised_ids={printed} missing={sum(r['missing'] for r in rows)} "
          f"runs_with_problems={len(bad)} final_documents={rows[-1]['documents'] if rows else 0} "
          f"wall={time.perf_counter() - t0:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
