"""Tuning on your own queries: an index's nprobe / efSearch calibrated on midpoints of rows, then on held-out real
queries (`Collection.tune`), each measured on other real queries.

    PYTHONPATH=src python benchmarks/tune_queries.py --rows 100000 --profiles binary-ivf-rescore,hnsw-f32
    PYTHONPATH=src python benchmarks/tune_queries.py --rows 1000000 --profiles binary-ivf-rescore

The vectors are benchmarks/peers.py's scale set (`--rows` synthetic MiniLM rows, 1,000 real held-out SciFact and
NFCorpus queries; cached under --work). The first 300 queries are the test queries (peers.py's scale runs use
the same 300); the other 700 are what a user would give `slimvec tune`. One collection per profile is built as
peers.py builds it (calibrated on midpoints of its rows, the default), measured, tuned on the 700, measured
again: the same index, only the knob differs. Recall@10 on the test queries against exact search (tie-robust,
as peers.py), and p50 of a lone query through `search_many` (dense, k=10, ids only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402
from peers import K, _ids, _scale, build_slimvec, exact_tenth, recall_at_k  # noqa: E402

TEST = 300


def _measure(col, docs: np.ndarray, queries: np.ndarray, tenth: np.ndarray) -> tuple[float, float]:  # noqa: ANN001
    """(Recall@10 on `queries`, p50 ms of a lone query) through the collection's dense search."""
    def rows(v: np.ndarray) -> list[int]:
        hits = col.search_many(["q"], vectors=v[None], k=K, mode="dense", rerank="none", with_payload=False)[0]
        return [int(h.id[1:]) for h in hits]  # ids are "r<row>"

    found = [rows(v) for v in queries]  # warm-up; these answers are scored
    times = []
    for v in queries:
        t0 = time.perf_counter()
        rows(v)
        times.append(time.perf_counter() - t0)
    return recall_at_k(docs, queries, tenth, found), float(np.median(times)) * 1000


def _knob(described: dict) -> tuple[str, dict]:
    cal = described.get("calibration") or {}
    knob = f"nprobe {described['nprobe']}" if "nprobe" in described else f"efSearch {described.get('ef_search')}"
    return knob, cal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--profiles", default="binary-ivf-rescore,hnsw-f32")
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"))
    args = ap.parse_args()
    from slimvec.collection import Collection

    print(f"machine: {machine()}")
    data = _scale(args.rows, args.work, 1000)
    docs = np.load(data / "docs.npy", mmap_mode="r")
    queries = np.load(data / "queries.npy").astype(np.float32)
    test, tune = queries[:TEST], queries[TEST:]
    tenth = exact_tenth(docs, test)
    ids = _ids(data)
    texts = [f"synthetic row {i}" for i in range(len(ids))]
    table = []
    for profile in args.profiles.split(","):
        with tempfile.TemporaryDirectory(prefix="slimvec-tune-", dir=args.work) as tmp:
            t0 = time.perf_counter()
            build_slimvec(profile, Path(tmp) / "c", docs, ids, texts)
            built = time.perf_counter() - t0
            with Collection.open(Path(tmp) / "c") as col:
                before = col.info()["indexes"]["dense"]
                r0, p0 = _measure(col, docs, test, tenth)
                t0 = time.perf_counter()
                after = col.tune(vectors=tune)["dense"]
                tuned = time.perf_counter() - t0
                r1, p1 = _measure(col, docs, test, tenth)
            for label, d, r, p, s in (("midpoints of rows (default)", before, r0, p0, built),
                                      (f"{len(tune)} held-out queries (tune)", after, r1, p1, tuned)):
                knob, cal = _knob(d)
                table.append([profile, label, knob, f"{cal.get('recall', float('nan')):.3f}",
                              cal.get("target_recall", "-"), f"{r:.3f}", f"{p:.2f}", f"{p / p0:.2f}x", f"{s:.0f}"])
            print(f"  {profile}: done", flush=True)
    print(f"\n{args.rows:,} rows, {TEST} test queries, k={K}")
    print_table(["profile", "calibrated on", "knob", "probe R@10", "target", "test R@10", "p50 ms",
                 "p50 ratio", "build / tune s"], table)


if __name__ == "__main__":
    main()
