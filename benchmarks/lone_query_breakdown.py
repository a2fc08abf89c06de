"""Where a lone dense query's time goes: each stage of `Collection.search_many` timed inside the call, beside
the same faiss search in a tight loop (the peer: what FAISS HNSW alone costs on the same graph).

    PYTHONPATH=src python benchmarks/lone_query_breakdown.py --work /tmp/peers-cache --dataset scifact

Reads the vectors `benchmarks/peers.py` caches under --work and the hnsw-f32 collection `profile_p50.py` builds
under --work/p50/<dataset>/hnsw-f32 (built here if missing). Every stage is wrapped by a timer (about 0.3 us
each, included); the table gives the median over `--rounds` passes of all test queries after one untimed pass,
and each stage's own share (its time minus the stages inside it).
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

# (label, stage inside it): the nesting of a lone dense query's calls, outermost last.
STAGES = [("faiss search", None), ("HnswIndex.search", "faiss search"), ("retriever.search", "HnswIndex.search"),
          ("document ranking", "retriever.search"), ("hits", None), ("Runner.run", None), ("sync", None),
          ("plan", None), ("keep caches", None), ("search_many", None)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"))
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    from peers import build_slimvec

    import slimvec.search.run as run_module
    from slimvec import Collection

    data = a.work / a.dataset
    queries = np.load(data / "queries.npy").astype(np.float32)
    d = a.work / "p50" / a.dataset / "hnsw-f32"
    if not d.exists():
        build_slimvec("hnsw-f32", d, np.load(data / "docs.npy"), json.loads((data / "ids.json").read_text()),
                      json.loads((data / "texts.json").read_text()))
    col = Collection.open(d)

    def search(v: np.ndarray) -> None:
        col.search_many(["q"], vectors=v[None], k=10, mode="dense", rerank="none", with_payload=False)

    search(queries[0])  # loads the retrievers
    retriever = col._retrievers["dense"]
    graph = retriever.index
    times: dict[str, list[float]] = {}

    def wrap(owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name)
        times[label] = []

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            out = inner(*args, **kwargs)
            times[label].append(time.perf_counter() - t)
            return out

        setattr(owner, name, timed)

    for owner, name, label in ((graph.index, "search", "faiss search"), (graph, "search", "HnswIndex.search"),
                               (retriever, "search", "retriever.search"),
                               (run_module, "doc_ranking", "document ranking"), (col._runner, "_hits", "hits"),
                               (col._runner, "run", "Runner.run"), (col, "_sync", "sync"), (col, "_plan", "plan"),
                               (col, "_keep_caches", "keep caches"), (col, "search_many", "search_many")):
        wrap(owner, name, label)
    for v in queries:
        search(v)
    for ts in times.values():
        ts.clear()
    for _ in range(a.rounds):
        for v in queries:
            search(v)
    med = {label: statistics.median(ts) * 1e6 for label, ts in times.items()}
    own = dict(med)
    for label, inside in STAGES:
        if inside is not None:
            own[label] -= med[inside]
    own["Runner.run"] -= med["document ranking"] + med["hits"]
    own["search_many"] -= med["Runner.run"] + med["sync"] + med["plan"] + med["keep caches"]

    loop: list[float] = []  # the peer: the same faiss call, one query after another, nothing in between
    params = graph._search_params(max(graph.ef_search, 40))
    for _ in range(a.rounds):
        for v in queries:
            t = time.perf_counter()
            graph.index.search(v[None], 40, params=params)
            loop.append(time.perf_counter() - t)
    print(f"{a.dataset}: {len(queries)} queries x {a.rounds}, hnsw-f32 efSearch {graph.ef_search}")
    print("| stage | median us (inclusive) | own us |\n| --- | ---: | ---: |")
    for label, _ in STAGES:
        print(f"| {label} | {med[label]:.1f} | {own[label]:.1f} |")
    total, faiss_in = med["search_many"], med["faiss search"]
    print(f"\nslimvec's own work: {total - faiss_in:.1f} us of {total:.1f} us; the same faiss call in a tight loop "
          f"(peer): {statistics.median(loop) * 1e6:.1f} us; search_many / tight-loop faiss = "
          f"{total / (statistics.median(loop) * 1e6):.2f}x")


if __name__ == "__main__":
    main()
