"""Graph indexes beside faiss's HNSW for the p50 goal (issue 16 item 6): is there one that answers a lone query
faster at equal recall? faiss only, no slimvec code: each candidate's R@10 (against exact inner-product search,
counting a row right when its score reaches the exact 10th best) and median latency of lone queries, one
OpenMP thread, each setting timed three times over every query (the best median kept).

    python benchmarks/graph_alternatives.py --what nsg --data /tmp/peers-cache/scale-100000-q300
    python benchmarks/graph_alternatives.py --what segments --data /tmp/peers-cache/scale-100000-q300
    python benchmarks/graph_alternatives.py --what nsg-paired --data /tmp/peers-cache/scale-100000-q300

--data: a folder of docs.npy / queries.npy as benchmarks/peers.py caches them (the scale set or a BEIR set).
- nsg: faiss HNSW (M 32, efConstruction 128: slimvec hnsw-f32's graph) at efSearch 32-128, then faiss NSG
  (R 32 and 48, its default NN-descent build) at search_L 32-128.
- nsg-paired: HNSW efSearch 48/64/96 and NSG R32 search_L 64/96/128 timed query by query in turn (each query
  runs through every setting before the next query, the order rotating), so the VM's drift over minutes, as
  large as the difference sought, falls on every setting alike; medians of 5 passes over the queries.
- segments: the same HNSW over all rows against two HNSW graphs over the halves, searched in two threads at
  once (faiss releases the GIL) and merged, and the same two searched one after the other.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", choices=["nsg", "nsg-paired", "segments"], default="nsg")
    ap.add_argument("--data", type=Path, default=Path("/tmp/peers-cache/scale-100000-q300"))
    a = ap.parse_args()
    x = np.ascontiguousarray(np.load(a.data / "docs.npy"), dtype=np.float32)
    q = np.load(a.data / "queries.npy").astype(np.float32)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(q, 10)
    kth = np.einsum("ij,ij->i", q, x[truth[:, 9]])
    del exact

    def recall(labels: list[np.ndarray]) -> float:
        return float(np.mean([np.sum(x[lab[:10]] @ q[i] >= kth[i] - 1e-6) / 10 for i, lab in enumerate(labels)]))

    def p50(fn) -> float:  # noqa: ANN001
        best = float("inf")
        for _ in range(3):
            ts = []
            for i in range(len(q)):
                t = time.perf_counter()
                fn(q[i : i + 1])
                ts.append(time.perf_counter() - t)
            best = min(best, float(np.median(ts)) * 1e3)
        return best

    def hnsw(rows: np.ndarray) -> faiss.IndexHNSWFlat:
        h = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 128
        h.add(rows)
        return h

    print(f"{a.data.name}: {len(x):,} rows, {len(q)} queries\n\n| index | setting | R@10 | p50 ms |\n| --- | --- | ---: | ---: |")
    full = hnsw(x)
    if a.what == "nsg-paired":
        faiss.omp_set_num_threads(2)
        g = faiss.IndexNSGFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        g.add(x)
        faiss.omp_set_num_threads(1)
        settings = []
        for ef in (48, 64, 96):
            p = faiss.SearchParametersHNSW()
            p.efSearch = ef
            settings.append((f"| HNSW M32 | efSearch {ef}", lambda v, p=p: full.search(v, 10, params=p)[1][0]))
        for size in (64, 96, 128):
            def nsg(v: np.ndarray, size: int = size) -> np.ndarray:
                g.nsg.search_L = size  # a field of the index: set before each call, as the settings take turns
                return g.search(v, 10)[1][0]
            settings.append((f"| NSG R32 | search_L {size}", nsg))
        found = {name: [fn(q[i : i + 1]) for i in range(len(q))] for name, fn in settings}
        times: dict[str, list[float]] = {name: [] for name, _ in settings}
        for rnd in range(5):
            for i in range(len(q)):
                v = q[i : i + 1]
                for j in range(len(settings)):
                    name, fn = settings[(i + rnd + j) % len(settings)]
                    t = time.perf_counter()
                    fn(v)
                    times[name].append(time.perf_counter() - t)
        for name, _ in settings:
            print(f"{name} | {recall(found[name]):.3f} | {np.median(times[name]) * 1e3:.3f} |")
        return
    if a.what == "nsg":
        faiss.omp_set_num_threads(1)
        for ef in (32, 48, 64, 96, 128):
            full.hnsw.efSearch = ef
            fn = lambda v: full.search(v, 10)[1][0]  # noqa: E731
            print(f"| HNSW M32 | efSearch {ef} | {recall([fn(q[i:i + 1]) for i in range(len(q))]):.3f} | {p50(fn):.3f} |",
                  flush=True)
        for r in (32, 48):
            faiss.omp_set_num_threads(2)
            g = faiss.IndexNSGFlat(x.shape[1], r, faiss.METRIC_INNER_PRODUCT)
            g.add(x)
            faiss.omp_set_num_threads(1)
            for size in (32, 48, 64, 96, 128):
                g.nsg.search_L = size
                fn = lambda v: g.search(v, 10)[1][0]  # noqa: E731
                got = recall([fn(q[i:i + 1]) for i in range(len(q))])
                print(f"| NSG R{r} | search_L {size} | {got:.3f} | {p50(fn):.3f} |", flush=True)
        return
    half = len(x) // 2
    parts = [hnsw(x[:half]), hnsw(x[half:])]
    faiss.omp_set_num_threads(1)
    pool = ThreadPoolExecutor(1)
    for ef in (32, 48, 64, 96, 128):
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef

        def merged(found: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
            scores = np.concatenate([found[0][0][0], found[1][0][0]])
            rows = np.concatenate([found[0][1][0], found[1][1][0] + half])
            return rows[np.argsort(-scores, kind="stable")[:10]]

        def both(v: np.ndarray) -> np.ndarray:
            other = pool.submit(parts[1].search, v, 10, params=params)
            return merged([parts[0].search(v, 10, params=params), other.result()])

        def in_turn(v: np.ndarray) -> np.ndarray:
            return merged([parts[0].search(v, 10, params=params), parts[1].search(v, 10, params=params)])

        one = lambda v: full.search(v, 10, params=params)[1][0]  # noqa: E731
        for name, fn in (("HNSW, all rows", one), ("2 halves, 2 threads", both), ("2 halves, in turn", in_turn)):
            print(f"| {name} | efSearch {ef} | {recall([fn(q[i:i + 1]) for i in range(len(q))]):.3f} | {p50(fn):.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
