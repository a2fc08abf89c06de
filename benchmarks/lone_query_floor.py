"""How close can a wrapper of faiss's HNSW come to the library itself at p50? (issue 16 item 6's p50 goal)

    PYTHONPATH=src python benchmarks/lone_query_floor.py --work /tmp/peers-cache --dataset scifact

One process, one graph (the hnsw-f32 collection `profile_p50.py` builds under --work/p50/<dataset>/hnsw-f32,
built here if missing), every test query alone, k=10. Each row adds one piece of work to the row above it, up to
the least a document store must do per query, then slimvec's `search_many` as it is:
- **peer**: `index.search(q, 10)` and the ids of its rows, as `peers.py`'s faiss-hnsw does;
- **+ k 40**: 40 rows asked, as slimvec's document ranking asks 4 k (a document's several chunks, equal scores
  seen across the cut of k);
- **+ sync**: the collection's generation read (one SQLite statement), so another process's commit is seen;
- **+ input check**: the query vector finite and not all zeros;
- **lean wrapper**: all of the above, then the tie rule, one hit per document and Hit objects: what any store
  of documents must add, written as one function (not slimvec's code path: a floor, checked to give the same
  ids as `search_many`);
- **search_many**: slimvec's call, as `peers.py` times it.
Rows run in turn, a pass over all queries each, the order reversed every round (`--rounds`); p50 is the median
over all passes; ratios are to the peer row of the same run, which is what to read on this drifting VM.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"))
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    import faiss
    from peers import build_slimvec

    from slimvec import Collection
    from slimvec.documents import make_hit
    from slimvec.index.base import tie_ordered

    faiss.omp_set_num_threads(1)
    data = a.work / a.dataset
    queries = np.load(data / "queries.npy").astype(np.float32)
    ids = json.loads((data / "ids.json").read_text())
    d = a.work / "p50" / a.dataset / "hnsw-f32"
    if not d.exists():
        build_slimvec("hnsw-f32", d, np.load(data / "docs.npy"), ids, json.loads((data / "texts.json").read_text()))
    col = Collection.open(d)

    def search_many(v: np.ndarray) -> list[str]:
        hits = col.search_many(["q"], vectors=v[None], k=10, mode="dense", rerank="none", with_payload=False)[0]
        return [h.id for h in hits]

    search_many(queries[0])  # loads the graph
    graph = col._retrievers["dense"].index
    index, params = graph.index, graph._search_params(graph.ef_search)
    row_doc, doc_ids = col._rows.row_doc, col._rows.doc_ids

    def peer(v: np.ndarray, k: int = 10) -> list[str]:
        _, rows = index.search(v[None], k, params=params)
        return [ids[r] for r in rows[0].tolist()[:10] if r >= 0]

    def synced(v: np.ndarray) -> list[str]:
        col._sync()
        return peer(v, 40)

    def checked(v: np.ndarray) -> list[str]:
        col._sync()
        if not np.isfinite(v).all() or not v.any():
            raise ValueError("bad query vector")
        return peer(v, 40)

    def lean(v: np.ndarray) -> list[str]:
        col._sync()
        if not np.isfinite(v).all() or not v.any():
            raise ValueError("bad query vector")
        scores, rows = index.search(v[None], 40, params=params)
        scores, rows = tie_ordered(scores, rows)
        hits, seen = [], set()
        for s, r, doc in zip(scores[0].tolist(), rows[0].tolist(), row_doc[rows[0]].tolist()):
            if r >= 0 and doc not in seen:
                seen.add(doc)
                hits.append(make_hit(doc_ids[doc], s, "", "", {}))
                if len(hits) == 10:
                    break
        return [h.id for h in hits]

    rows: dict[str, Callable[[np.ndarray], list[str]]] = {
        "peer: faiss HNSW search, k 10": peer, "+ k 40": lambda v: peer(v, 40), "+ sync": synced,
        "+ input check": checked, "lean wrapper (+ tie rule, one hit per document, Hit objects)": lean,
        "slimvec search_many": search_many}
    mismatch = sum(lean(v) != search_many(v) for v in queries)
    times: dict[str, list[float]] = {name: [] for name in rows}
    names = list(rows)
    for r in range(a.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            f, lat = rows[name], times[name]
            for v in queries:
                t = time.perf_counter()
                f(v)
                lat.append(time.perf_counter() - t)
    peer_us = statistics.median(times[names[0]]) * 1e6
    print(f"{a.dataset}: {len(queries)} queries x {a.rounds} rounds, efSearch {graph.ef_search}; lean wrapper and "
          f"search_many disagree on {mismatch} queries")
    print("| work per query | p50 us | vs peer |\n| --- | ---: | ---: |")
    for name in names:
        us = statistics.median(times[name]) * 1e6
        print(f"| {name} | {us:.1f} | {us / peer_us:.2f}x |")


if __name__ == "__main__":
    main()
