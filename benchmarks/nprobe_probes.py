"""Which probe queries track real queries' IVF recall? Recall@10 of binary-ivf-rescore's staged search at fixed
nprobe values, for real held-out queries and for probe queries made from the stored rows.

    PYTHONPATH=src python benchmarks/nprobe_probes.py --rows 100000
    PYTHONPATH=src python benchmarks/nprobe_probes.py --rows 1000000

The rows and the real queries are benchmarks/peers.py's scale set (cached under --work; all 1,000 queries at
100k, the first 300 otherwise). One index is built as the `binary-ivf-rescore` profile builds it (1-bit codes,
~4 sqrt(rows) lists, oversample 40), then each probe kind is searched at every nprobe of the grid:
- mid2: midpoints of two random stored rows (what `index.nprobe` calibrates on by default);
- mid3 / mid4: the normalised sum of three / four random rows;
- row+noise: a stored row turned away from itself to a cosine of 0.7 / 0.6 (a real query's to its top document);
- rows leave-one-out: stored rows, themselves left out of truth and results.
The column "top1 cos" is the median cosine of each probe to its nearest row (for rows, the nearest other row).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402
from peers import _scale  # noqa: E402

from slimvec.index import nprobe as npb  # noqa: E402
from slimvec.index.compressed import staged_search  # noqa: E402
from slimvec.index.flat import ExactIndex  # noqa: E402
from slimvec.retrievers.compressed import CompressedDenseRetriever  # noqa: E402

GRID = (8, 16, 24, 32, 48, 64, 96, 128)
SAMPLE, K, OVERSAMPLE = 256, 10, 40


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"))
    args = ap.parse_args()
    print(f"machine: {machine()}")
    data = _scale(args.rows, args.work, 1000 if args.rows <= 100_000 else 300)
    docs = np.load(data / "docs.npy", mmap_mode="r")
    n = len(docs)
    t0 = time.perf_counter()
    retriever = CompressedDenseRetriever("binary", True, OVERSAMPLE, docs.shape[1], ivf=(None, None))
    index = retriever._build(docs, n)  # the profile's index, without its calibration
    print(f"{n:,} rows, {index.nlist} lists, built in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(n, SAMPLE, replace=False))
    rows = np.asarray(docs[pick], np.float32)

    def mix(m: int) -> np.ndarray:
        return _unit(sum(np.asarray(docs[np.sort(rng.choice(n, SAMPLE, replace=False))], np.float32) for _ in range(m)))

    g = rng.standard_normal(rows.shape).astype(np.float32)
    g = _unit(g - (g * rows).sum(1, keepdims=True) * rows)  # orthogonal to each row
    kinds = {"real queries": np.load(data / "queries.npy").astype(np.float32),
             "mid2 (the default)": npb.probe_queries(docs, n), "mid3": mix(3), "mid4": mix(4),
             "row+noise cos 0.7": _unit(0.7 * rows + np.sqrt(1 - 0.49) * g),
             "row+noise cos 0.6": _unit(0.6 * rows + np.sqrt(1 - 0.36) * g),
             "rows leave-one-out": rows}
    table = []
    for name, q in kinds.items():
        loo = name.startswith("rows")
        kk = K + 1 if loo else K
        scores, truth = ExactIndex.over(docs).search(q, kk)

        def drop_self(found: np.ndarray) -> np.ndarray:
            return np.array([[f for f in fr if f != s][:K] for fr, s in zip(found, pick)]) if loo else found

        truth, recalls = drop_self(truth), []
        for p in GRID:
            index.nprobe = p
            recalls.append(npb._recall(drop_self(staged_search(q, kk, OVERSAMPLE, index, docs)[1]), truth, K))
        table.append([name, len(q), f"{np.median(scores[:, 1] if loo else scores[:, 0]):.3f}",
                      *(f"{r:.3f}" for r in recalls)])
        print(f"  {name}: done", flush=True)
    print_table(["probes", "queries", "top1 cos", *(f"nprobe {p}" for p in GRID)], table)


if __name__ == "__main__":
    main()
