"""Sharded search beyond exact dense (issue 15): BM25 with corpus-wide statistics, and recall of approximate
profiles against exact search per shard count.

    PYTHONPATH=src python benchmarks/sharded_search.py --docs 1000 --queries 300 --shards 4 \
        --approx-docs 1000 --approx hnsw-f32,binary-rescore --shard-counts 1,2,4

BM25 table (profile "bm25", searched in mode bm25): one collection against the same documents in N in-process shards, single
queries timed in turn (paired). "search p50" is a query on unchanged data (the router's extra cost: one call per
shard for the statistics' keys); "after a write" is the first search after adding 10 documents (one collection
rebuilds its score matrix; the shards report their statistics, the router sums them, every shard rebuilds), the
median of 5 writes. "same top 10": ids and scores equal to the one collection's.

Recall table: for each approximate profile and shard count (1 = one collection), recall@10 against exact float32
search of one collection over the same stored vectors (encoded once with MiniLM, replayed through MemoEncoder;
every profile stores dense vectors, "bm25" too, so the BM25 setups share them the same way).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, read_jsonl  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.distributed import create_sharded  # noqa: E402
from slimvec.encoders.memo import MemoEncoder  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def _pairs(hits):
    return [(h.id, h.score) for h in hits]


def bm25_table(docs: list[Document], extra: list[Document], queries: list[str], shards: int, tmp: Path,
               enc: MemoEncoder) -> None:
    # Collections keep dense vectors in every profile: encoded once (MemoEncoder), replayed for the shards.
    one = Collection.create(tmp / "bm25-one", profile="bm25", model=MODEL, encoder=enc)
    sharded = create_sharded(tmp / "bm25-sharded", shards=shards, profile="bm25", model=MODEL, encoder=enc)
    setups = {"one collection": one, f"{shards} shards, in-process": sharded}
    for col in setups.values():
        col.add(docs)
        col.search_many(queries[:1], k=10, mode="bm25")  # first build, not timed
    times = {name: [] for name in setups}
    same = dict.fromkeys(setups, 0)
    for q in queries:
        ref = None
        for name, col in setups.items():
            t = time.perf_counter()
            hits = col.search_many([q], k=10, mode="bm25")[0]
            times[name].append(time.perf_counter() - t)
            ref = _pairs(hits) if ref is None else ref
            same[name] += _pairs(hits) == ref
    after = {name: [] for name in setups}
    for w in range(5):
        batch = extra[w * 10 : (w + 1) * 10]
        for name, col in setups.items():
            col.add(batch)
            t = time.perf_counter()
            col.search_many(queries[:1], k=10, mode="bm25")
            after[name].append(time.perf_counter() - t)
    base, base_after = statistics.median(times["one collection"]), statistics.median(after["one collection"])
    print(f"BM25: SciFact {len(docs)} docs, {len(queries)} queries, k=10, profile bm25; "
          f"load average {os.getloadavg()[0]:.1f}")
    print()
    print("| setup | search p50 ms | ratio | first search after a write, ms | ratio | same top 10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in setups:
        s, a = statistics.median(times[name]), statistics.median(after[name])
        print(f"| {name} | {s * 1e3:.2f} | {s / base:.2f}x | {a * 1e3:.0f} | {a / base_after:.2f}x | "
              f"{same[name]}/{len(queries)} |")
    print()
    for col in setups.values():
        col.close()


def recall_table(docs: list[Document], queries: list[str], profiles: list[str], counts: list[int], tmp: Path,
                 enc: MemoEncoder) -> None:
    exact = Collection.create(tmp / "exact", profile="exact-f32", model=MODEL, encoder=enc)
    t0 = time.perf_counter()
    exact.add(docs)
    encode_s = time.perf_counter() - t0
    qv = enc.encode_queries(queries)
    truth = [{h.id for h in hits} for hits in exact.search_many(queries, k=10, vectors=qv)]
    exact.close()
    print(f"Recall@10 against exact float32 search: SciFact {len(docs)} docs ({encode_s:.0f} s to store), "
          f"{len(queries)} queries")
    print()
    print("| profile | " + " | ".join(f"{n} shard{'s' if n > 1 else ''}" for n in counts) + " |")
    print("| --- | " + " | ".join("---:" for _ in counts) + " |")
    for profile in profiles:
        row = []
        for n in counts:
            path = tmp / f"{profile}-{n}"
            if n == 1:
                col = Collection.create(path, profile=profile, model=MODEL, encoder=enc)
            else:
                col = create_sharded(path, shards=n, profile=profile, model=MODEL, encoder=enc)
            col.add(docs)
            found = col.search_many(queries, k=10, vectors=qv)
            row.append(statistics.mean(len({h.id for h in hits} & t) / len(t) for hits, t in zip(found, truth)))
            col.close()
        print(f"| {profile} | " + " | ".join(f"{r:.3f}" for r in row) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=5183)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--approx", default="hnsw-f32,binary-rescore", help="approximate profiles ('' to skip)")
    ap.add_argument("--approx-docs", type=int, default=2000)
    ap.add_argument("--shard-counts", default="1,2,4")
    a = ap.parse_args()
    corpus = [Document(d["_id"], d["text"], d["title"]) for d in read_jsonl(DATA / "scifact" / "corpus.jsonl")]
    queries = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl", a.queries)]
    docs, extra = corpus[: min(a.docs, len(corpus) - 50)], corpus[-50:]
    with tempfile.TemporaryDirectory() as tmp:
        with Collection.create(Path(tmp) / "model", profile="exact-f32", model=MODEL) as c:
            enc = MemoEncoder(c.encoder)
        bm25_table(docs, extra, queries, a.shards, Path(tmp), enc)
        if a.approx:
            recall_table(corpus[: a.approx_docs], queries, a.approx.split(","),
                         [int(n) for n in a.shard_counts.split(",")], Path(tmp), enc)


if __name__ == "__main__":
    main()
