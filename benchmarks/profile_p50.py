"""Single-query p50 of slimvec profiles over the peers benchmark's SciFact vectors, for before/after comparisons.

    PYTHONPATH=src python benchmarks/profile_p50.py binary-ivf-rescore binary-rescore --work /tmp/peers-cache
    PYTHONPATH=/path/to/old/tree/src python benchmarks/profile_p50.py ...   # the same on another tree

Reads the vectors `benchmarks/peers.py` caches under --work (run it once first), builds one collection per
profile under --work/p50 (reused), and times `Collection.search_many([q], vectors=..., k=10, mode="dense",
rerank="none", with_payload=False)` for every test query, --rounds times after one untimed pass: wall and
thread-CPU p50 in ms. Run two trees alternately (see BENCHMARKS.md) so load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profiles", nargs="+")
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"), help="benchmarks/peers.py's --work")
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    from peers import build_slimvec

    from slimvec import Collection

    data = a.work / a.dataset
    queries = np.load(data / "queries.npy").astype(np.float32)
    import slimvec

    print(f"tree: {Path(slimvec.__file__).resolve().parents[1]}")
    print("| profile | p50 ms | CPU p50 ms |\n| --- | ---: | ---: |")
    for profile in a.profiles:
        d = a.work / "p50" / a.dataset / profile
        if not d.exists():
            build_slimvec(profile, d, np.load(data / "docs.npy"), json.loads((data / "ids.json").read_text()),
                          json.loads((data / "texts.json").read_text()))
        with Collection.open(d) as col:
            def search(v: np.ndarray) -> None:
                col.search_many(["q"], vectors=v[None], k=10, mode="dense", rerank="none", with_payload=False)

            for v in queries:
                search(v)
            wall, cpu = [], []
            for _ in range(a.rounds):
                for v in queries:
                    c, t = time.thread_time(), time.perf_counter()
                    search(v)
                    wall.append(time.perf_counter() - t)
                    cpu.append(time.thread_time() - c)
        print(f"| {profile} | {statistics.median(wall) * 1e3:.3f} | {statistics.median(cpu) * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
