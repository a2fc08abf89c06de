"""Filtered search latency: what a metadata filter adds to a lone query, in slimvec and in LanceDB, same vectors.

slimvec evaluates a filter in SQLite over every document's metadata JSON (O(documents)), or through field indexes
(`Collection.create_field_index`) on the fields it names, and keeps the mask for the committed state it was read in
(`Collection._allowed`): the same filter again costs nothing until the next commit. LanceDB pre-filters with or
without scalar indexes (bitmap on the topic, B-tree on the year). The vectors are random unit vectors (latency only: no quality is claimed); each query asks for ids only.

    PYTHONPATH=src python benchmarks/filtered_search.py --docs 100000 --queries 60

Rows: p50 ms per query, and the ratio to slimvec's unfiltered query in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

DIM, TOPICS, K = 384, 20, 10


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    topics = [f"t{int(t)}" for t in rng.integers(0, TOPICS, n)]
    years = [int(y) for y in rng.integers(1990, 2025, n)]
    return v, [f"doc-{i}" for i in range(n)], topics, years


def _slimvec(d: Path, v: np.ndarray, ids: list[str], topics: list[str], years: list[int], profile: str):
    from slimvec.collection import Collection
    from slimvec.documents import Chunk, Document
    from slimvec.encoders.registry import load_encoder

    with Collection.create(d, profile=profile, model="all-MiniLM-L6-v2", chunk_mode="whole",
                           encoder=load_encoder("all-MiniLM-L6-v2")) as col:
        for s in range(0, len(ids), 50_000):
            part = [Document(i, "x", metadata={"topic": t, "year": y})
                    for i, t, y in zip(ids[s:s + 50_000], topics[s:s + 50_000], years[s:s + 50_000])]
            col.add_encoded(part, [Chunk(x.id, 0, 0, 1, "x") for x in part], v[s:s + 50_000])
    return Collection.open(d)


def _lancedb(d: Path, v: np.ndarray, ids: list[str], topics: list[str], years: list[int], index: bool):
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(d))
    table = db.create_table("docs", pa.table({"id": ids, "topic": topics, "year": years,
                                              "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM)}))
    if index:
        from lancedb.index import Bitmap, BTree

        table.create_index("topic", config=Bitmap())
        table.create_index("year", config=BTree())
    return table


def _p50(fn, queries: np.ndarray, filters: list) -> float:
    times = []
    for q, f in zip(queries, filters):
        t = time.perf_counter()
        fn(q, f)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--profile", default="exact-f32")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="filtered-"))
    v, ids, topics, years = _data(a.docs)
    queries = _data(a.queries, seed=1)[0]
    cold = [{"topic": f"t{i % TOPICS}", "year": {"$gte": 1990 + i // TOPICS}} for i in range(a.queries)]  # each new
    same = [{"topic": "t3"}] * a.queries
    col = _slimvec(work / "slimvec", v, ids, topics, years, a.profile)

    def sv(q, f):
        return col.search_many(["q"], vectors=q[None], k=K, mode="dense", rerank="none", with_payload=False,
                               filter=f)[0]

    rows = [("slimvec, no filter", _p50(sv, queries, [None] * a.queries))]
    rows.append(("slimvec, a new filter each query (SQLite scan)", _p50(sv, queries, cold)))
    sv(queries[0], same[0])
    rows.append(("slimvec, the same filter again (mask kept)", _p50(sv, queries, same)))
    col.create_field_index(["topic", "year"])  # a commit: the kept masks are stale, each filter is read anew
    rows.append(("slimvec, field indexes, a new filter each query", _p50(sv, queries, cold)))
    for index in (False, True):
        table = _lancedb(work / f"lancedb-{index}", v, ids, topics, years, index)

        def lance(q, f, table=table):
            s = table.search(q).limit(K).select(["id"])
            if f is not None:
                where = " AND ".join(f"topic = '{c}'" if k == "topic" else f"year >= {c['$gte']}"
                                     for k, c in f.items())
                s = s.where(where, prefilter=True)
            return s.to_list()

        name = "LanceDB flat" + (", scalar indexes" if index else "")
        if index:
            rows.append((f"{name}, no filter", _p50(lance, queries, [None] * a.queries)))
        rows.append((f"{name}, a new filter each query", _p50(lance, queries, cold)))
        rows.append((f"{name}, the same filter again", _p50(lance, queries, same)))
    base = rows[0][1]
    print(f"{a.docs:,} documents, {a.queries} queries, k {K}, slimvec profile {a.profile}; {machine()}")
    print("| engine, filter | p50 ms | vs slimvec unfiltered |\n| --- | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {ms / base:.2f}x |")
    col.close()
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
