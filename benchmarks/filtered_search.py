"""Filtered search latency: what a metadata filter adds to a lone query, in slimvec and in LanceDB, same vectors.

slimvec evaluates a filter in SQLite over every document's metadata JSON (O(documents)), or through field indexes
(`Collection.create_field_index`) on the fields it names, and keeps the mask for the committed state it was read in
(`Collection._allowed`): the same filter again costs nothing until the next commit. LanceDB pre-filters with or
without scalar indexes (bitmap on the topic, B-tree on the year). The vectors are random unit vectors (latency only: no quality is claimed); each query asks for ids only.

Further rows (session 24) read which indexed list drives: an $or of two indexed equalities (the union of their
lists), and an AND of a range matching ~90% of the documents (`n`, uniform in 0-9999) beside an equality matching
1% (`src`, one of 100), written in both orders; and an equality matching 95% (`kind`) beside a range matching ~1%,
where the compiler before counted nothing and let the equality drive. "compile" rows time `Store._compiled` alone:
the counts (`count(*)` through the index under a LIMIT) that choose the driver.

    PYTHONPATH=src python benchmarks/filtered_search.py --docs 100000 --queries 60

Rows: p50 ms per query, and the ratio to slimvec's unfiltered query in the same run.

`--filter-only` times the filter alone, with no vector search: `Collection.count(filter)` (one SQLite statement,
the compiled filter inside it) for filters whose indexed list used to be chosen by operator rather than by
selectivity, without and with field indexes on `topic` and `year`, beside LanceDB's `count_rows(filter)` with and
without scalar indexes on the same rows. Median of `--repeat` calls of each filter.

    PYTHONPATH=src python benchmarks/filtered_search.py --filter-only --docs 20000
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


def _more(n: int, seed: int = 2) -> dict[str, list]:
    """The session 24 fields: `n` uniform in 0-9999 (ranges of any width), `src` one of 100 (1% each), `kind`
    "main" for 95% of the documents."""
    rng = np.random.default_rng(seed)
    return {"n": [int(x) for x in rng.integers(0, 10_000, n)], "src": [f"s{int(x)}" for x in rng.integers(0, 100, n)],
            "kind": ["main" if x < 0.95 else "rare" for x in rng.random(n)]}


def _slimvec(d: Path, v: np.ndarray, ids: list[str], topics: list[str], years: list[int], profile: str,
            more: dict[str, list] | None = None):
    from slimvec.collection import Collection
    from slimvec.documents import Chunk, Document
    from slimvec.encoders.registry import load_encoder

    with Collection.create(d, profile=profile, model="all-MiniLM-L6-v2", chunk_mode="whole",
                           encoder=load_encoder("all-MiniLM-L6-v2")) as col:
        for s in range(0, len(ids), 50_000):
            # a None in `more` leaves the key out (`$exists: false`), as LanceDB's null does for IS NOT NULL
            part = [Document(i, "x", metadata={"topic": t, "year": y, **{k: c[s + j] for k, c in (more or {}).items()
                                                                         if c[s + j] is not None}})
                    for j, (i, t, y) in enumerate(zip(ids[s:s + 50_000], topics[s:s + 50_000], years[s:s + 50_000]))]
            col.add_encoded(part, [Chunk(x.id, 0, 0, 1, "x") for x in part], v[s:s + 50_000])
    return Collection.open(d)


def _lancedb(d: Path, v: np.ndarray, ids: list[str], topics: list[str], years: list[int], index: bool,
            more: dict[str, list] | None = None):
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(d))
    table = db.create_table("docs", pa.table({"id": ids, "topic": topics, "year": years, **(more or {}),
                                              "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM)}))
    if index:
        from lancedb.index import Bitmap, BTree

        table.create_index("topic", config=Bitmap())
        table.create_index("year", config=BTree())
        for name in more or {}:
            table.create_index(name, config=BTree() if name == "n" else Bitmap())
    return table


def _where(f: dict) -> str:
    """The filter as LanceDB's SQL where clause (the few forms these rows use)."""
    ops = {"$gte": ">=", "$lt": "<"}
    parts = []
    for k, c in f.items():
        if k == "$or":
            parts.append("(" + " OR ".join(_where(b) for b in c) + ")")
        elif isinstance(c, dict):
            parts += [f"{k} {ops[op]} {x}" for op, x in c.items()]
        else:
            parts.append(f"{k} = '{c}'" if isinstance(c, str) else f"{k} = {c}")
    return " AND ".join(parts)


def _p50(fn, queries: np.ndarray, filters: list) -> float:
    times = []
    for q, f in zip(queries, filters):
        t = time.perf_counter()
        fn(q, f)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


# Filters where the driving list matters: a wide range or a 19-of-20 $in beside a narrow equality, written in both
# orders, and an $or/$and beside one (session 24's "filter alone" rows).
_ALONE = {
    "topic t1 and ($or: year >= 1991, year 1990)": {"topic": "t1", "$or": [{"year": {"$gte": 1991}}, {"year": 1990}]},
    "$and: year >= 1991, topic t1": {"$and": [{"year": {"$gte": 1991}}, {"topic": "t1"}]},
    "year >= 1991 and topic t1": {"year": {"$gte": 1991}, "topic": "t1"},
    "$or: topic t1, topic t2": {"$or": [{"topic": "t1"}, {"topic": "t2"}]},
    "topic $in 19 of 20 and year 2024": {"topic": {"$in": [f"t{i}" for i in range(1, TOPICS)]}, "year": 2024},
    "year 2024 and topic $in 19 of 20": {"year": 2024, "topic": {"$in": [f"t{i}" for i in range(1, TOPICS)]}},
    "flag $exists (1% hold the key)": {"flag": {"$exists": True}},
    "flag $exists and topic t1": {"flag": {"$exists": True}, "topic": "t1"},
}


def _lance_where(f: dict) -> str:
    """`_where` plus `$and` and `$in`, for the `_ALONE` filters."""
    parts = []
    for k, c in f.items():
        if k == "$and":
            parts.append("(" + " AND ".join(_lance_where(b) for b in c) + ")")
        elif k == "$or":
            parts.append("(" + " OR ".join(_lance_where(b) for b in c) + ")")
        elif isinstance(c, dict) and c.get("$exists") is True:
            parts.append(f"{k} IS NOT NULL")
        elif isinstance(c, dict) and "$in" in c:
            parts.append(f"{k} IN (" + ", ".join(f"'{x}'" for x in c["$in"]) + ")")
        else:
            parts.append(_where({k: c}))
    return " AND ".join(parts)


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def filter_only(a: argparse.Namespace, work: Path) -> None:
    """The `_ALONE` filters timed alone (counts, no search) in slimvec and LanceDB, without and with indexes."""
    v, ids, topics, years = _data(a.docs)
    flag = {"flag": [i if i % 100 == 7 else None for i in range(a.docs)]}  # a key 1% of the documents hold
    col = _slimvec(work / "slimvec", v, ids, topics, years, a.profile, flag)
    tables = {index: _lancedb(work / f"lancedb-{index}", v, ids, topics, years, index, flag) for index in (False, True)}
    matches = {name: col.count(f) for name, f in _ALONE.items()}
    times: dict[str, list[float]] = {name: [] for name in _ALONE}
    for name, f in _ALONE.items():
        times[name].append(_median_ms(lambda f=f: col.count(f), a.repeat))
    col.create_field_index(["topic", "year", "flag"])
    for name, f in _ALONE.items():
        assert col.count(f) == matches[name] == tables[True].count_rows(_lance_where(f)), name
        times[name].append(_median_ms(lambda f=f: col.count(f), a.repeat))
        for index in (False, True):
            times[name].append(_median_ms(lambda f=f, t=tables[index]: t.count_rows(_lance_where(f)), a.repeat))
    print(f"{a.docs:,} documents, median of {a.repeat} counts; {machine()}")
    print("| filter | matches | slimvec scan ms | slimvec field indexes ms | LanceDB ms | LanceDB scalar indexes ms "
          "| slimvec indexed / LanceDB indexed |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (scan, indexed, lance, lance_indexed) in times.items():
        print(f"| {name} | {matches[name]:,} | {scan:.2f} | {indexed:.2f} | {lance:.2f} | {lance_indexed:.2f} "
              f"| {indexed / lance_indexed:.2f}x |")
    col.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--profile", default="exact-f32")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--filter-only", action="store_true", help="time filters alone (counts), no search")
    ap.add_argument("--repeat", type=int, default=9, help="--filter-only: calls of each filter")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="filtered-"))
    if a.filter_only:
        filter_only(a, work)
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    v, ids, topics, years = _data(a.docs)
    queries = _data(a.queries, seed=1)[0]
    cold = [{"topic": f"t{i % TOPICS}", "year": {"$gte": 1990 + i // TOPICS}} for i in range(a.queries)]  # each new
    same = [{"topic": "t3"}] * a.queries
    more = _more(a.docs)
    q = range(a.queries)
    picked = {  # session 24: each filter new, as `cold`
        "an $or of two indexed equalities (2%)": [{"$or": [{"src": f"s{i % 100}"}, {"src": f"s{(i + 50) % 100}"}]}
                                                  for i in q],
        "a 90% range and a 1% equality, range first": [{"n": {"$gte": 1000 + i}, "src": f"s{i % 100}"} for i in q],
        "a 1% equality and a 90% range, equality first": [{"src": f"s{i % 100}", "n": {"$gte": 1000 + i}} for i in q],
        "a 95% equality and a 1% range": [{"kind": "main", "n": {"$lt": 100 + i}} for i in q],
    }
    col = _slimvec(work / "slimvec", v, ids, topics, years, a.profile, more)

    def sv(q, f):
        return col.search_many(["q"], vectors=q[None], k=K, mode="dense", rerank="none", with_payload=False,
                               filter=f)[0]

    rows = [("slimvec, no filter", _p50(sv, queries, [None] * a.queries))]
    rows.append(("slimvec, a new filter each query (SQLite scan)", _p50(sv, queries, cold)))
    sv(queries[0], same[0])
    rows.append(("slimvec, the same filter again (mask kept)", _p50(sv, queries, same)))
    for name, fs in picked.items():
        rows.append((f"slimvec, {name}, no field index (SQLite scan)", _p50(sv, queries, fs)))
    col.create_field_index(["topic", "year", *more])  # a commit: the kept masks are stale, each filter is read anew
    rows.append(("slimvec, field indexes, a new filter each query", _p50(sv, queries, cold)))
    for name, fs in picked.items():
        rows.append((f"slimvec, field indexes, {name}", _p50(sv, queries, fs)))
        rows.append((f"slimvec, field indexes, {name}: compile alone (the counts)",
                     _p50(lambda q, f: col.store._compiled(f), queries, fs)))
    for index in (False, True):
        table = _lancedb(work / f"lancedb-{index}", v, ids, topics, years, index, more)

        def lance(q, f, table=table):
            s = table.search(q).limit(K).select(["id"])
            if f is not None:
                s = s.where(_where(f), prefilter=True)
            return s.to_list()

        name = "LanceDB flat" + (", scalar indexes" if index else "")
        if index:
            rows.append((f"{name}, no filter", _p50(lance, queries, [None] * a.queries)))
        rows.append((f"{name}, a new filter each query", _p50(lance, queries, cold)))
        rows.append((f"{name}, the same filter again", _p50(lance, queries, same)))
        for what, fs in picked.items():
            rows.append((f"{name}, {what}", _p50(lance, queries, fs)))
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
