"""Scatter-gather cost (issue 15): one collection against the same documents in N shards, searched in-process
and through one Ray actor per shard, single queries timed in turn (paired: each query runs on every setup
before the next, so load from other jobs hits all setups alike; the order of the setups rotates per query).

    PYTHONPATH=src python benchmarks/distributed.py --docs 5183 --queries 300 --shards 4 [--cache vectors.pkl]

Every setup stores the same vectors (encoded once, replayed through MemoEncoder) in profile exact-f32, so
their answers are compared too ("same top 10": ids and scores equal the single collection's). Two latencies per
setup: "search" is given the query vector (the scatter-gather alone), "end to end" encodes the query text as a
user's call does (MiniLM on one core). "payload from every shard" is the Ray setup searched as before the
two-round search (each shard returns its top k with payload), a baseline timed in the same loop.

Ingest section (`--ingest`): single-process ingest (`Collection.add` over the reader's stream, what `slimvec
index` does) against distributed ingest (`slimvec.distributed.ingest.index`, `--workers` encoder actors on a
local Ray instance, `--shards` shards) of the same SciFact documents with MiniLM, both timed end to end (model
load, and for Ray the instance and actors started, included), then nDCG@10 of both on the SciFact test queries:

    PYTHONPATH=src python benchmarks/distributed.py --ingest --docs 5183 --workers 2 --shards 2
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, read_jsonl  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.distributed import create_sharded, open_sharded  # noqa: E402
from slimvec.encoders.memo import MemoEncoder  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=5183)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--no-ray", action="store_true", help="in-process shards only")
    ap.add_argument("--ingest", action="store_true", help="the ingest section instead of scatter-gather")
    ap.add_argument("--workers", type=int, default=2, help="--ingest: encoder actors")
    ap.add_argument("--cache", type=Path, help="a pickle of document vectors by text, read if present and written "
                    "after (re-runs skip encoding the corpus; the vectors are the model's either way)")
    a = ap.parse_args()
    if a.ingest:
        ingest(a.docs, a.workers, a.shards)
        return
    docs = [Document(d["_id"], d["text"], d["title"]) for d in read_jsonl(DATA / "scifact" / "corpus.jsonl", a.docs)]
    queries = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl", a.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        single = Collection.create(Path(tmp) / "one", profile="exact-f32", model=MODEL)
        single._encoder = enc = MemoEncoder(single.encoder)
        if a.cache is not None and a.cache.is_file():
            with open(a.cache, "rb") as f:
                enc._seen.update(pickle.load(f))
        cached = len(enc._seen)
        t0 = time.perf_counter()
        single.add(docs)
        encode_s = time.perf_counter() - t0
        if a.cache is not None:
            with open(a.cache, "wb") as f:
                pickle.dump(enc._seen, f)
        qv = enc.encode_queries(queries)  # memoised: "end to end" below re-encodes through the real model
        sharded = create_sharded(Path(tmp) / "sharded", shards=a.shards, profile="exact-f32", model=MODEL, encoder=enc)
        sharded.add(docs)
        sharded.close()
        setups = {"one collection": single,
                  f"{a.shards} shards, in-process": open_sharded(Path(tmp) / "sharded", encoder=enc)}
        if not a.no_ray:
            ray_col = open_sharded(Path(tmp) / "sharded", encoder=enc, ray=True)
            setups[f"{a.shards} shards, Ray actors"] = ray_col
            setups[f"{a.shards} shards, Ray actors, payload from every shard"] = PayloadFromEveryShard(ray_col)
        reference = [[(h.id, h.score) for h in hits] for hits in single.search_many(queries, k=10, vectors=qv)]
        fresh = enc._enc  # the unmemoised model, for the end-to-end column
        times: dict[str, dict[str, list[float]]] = {name: {"search": [], "e2e": []} for name in setups}
        same = dict.fromkeys(setups, 0)
        for _ in range(2):  # warm-up: actors, imports, caches
            for col in setups.values():
                col.search_many(queries[:1], k=10, vectors=qv[:1])
        load_before = os.getloadavg()[0]
        names = list(setups)
        for i, q in enumerate(queries):
            # each query starts at the next setup: none always runs right after another that warmed the same
            # shards' caches (the Ray baseline shares its actors with the Ray setup)
            for name in names[i % len(names):] + names[: i % len(names)]:
                col = setups[name]
                t = time.perf_counter()
                hits = col.search_many([q], k=10, vectors=qv[i : i + 1])[0]
                times[name]["search"].append(time.perf_counter() - t)
                same[name] += [(h.id, h.score) for h in hits] == reference[i]
                t = time.perf_counter()
                col.search_many([q], k=10, vectors=fresh.encode_queries([q]))
                times[name]["e2e"].append(time.perf_counter() - t)
        base = {k: statistics.median(v) for k, v in times["one collection"].items()}
        print(f"SciFact: {len(docs)} docs ({encode_s:.0f} s to encode{f', {cached} chunk vectors read from the cache' if cached else ''}), "
              f"{len(queries)} queries, k=10, exact-f32; load average {load_before:.1f} when the timed loop started, "
              f"{os.getloadavg()[0]:.1f} when it ended")
        print()
        print("| setup | search p50 ms | ratio | end to end p50 ms | ratio | same top 10 |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name in setups:
            s, e = statistics.median(times[name]["search"]), statistics.median(times[name]["e2e"])
            print(f"| {name} | {s * 1e3:.2f} | {s / base['search']:.2f}x | {e * 1e3:.2f} | {e / base['e2e']:.2f}x | "
                  f"{same[name]}/{len(queries)} |")
        for col in setups.values():
            col.close()


class PayloadFromEveryShard:
    """The same sharded collection searched the way it was before the two-round search (every shard returns its
    top k with payload), for a side-by-side baseline in the same run."""

    def __init__(self, col: Any) -> None:
        self.col = col

    def search_many(self, *args: Any, **kwargs: Any) -> Any:
        self.col._run_rows = lambda *a, **k: None  # no two-round answer: the payload search runs
        try:
            return self.col.search_many(*args, **kwargs)
        finally:
            del self.col._run_rows

    def close(self) -> None:
        """The wrapped collection is closed as its own setup."""


def ingest(n_docs: int, workers: int, shards: int) -> None:
    """Docs/s of single-process and distributed ingest of the first `n_docs` SciFact documents, and nDCG@10."""
    from slimvec.distributed.ingest import index
    from slimvec.evaluation import evaluate
    from slimvec.ingest import load_qrels, load_queries, read_sources

    scifact = DATA / "scifact"
    qrels = load_qrels(scifact, "test")
    queries = load_queries(scifact)
    qids = [q for q in qrels if q in queries]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "corpus.jsonl"
        with open(scifact / "corpus.jsonl", encoding="utf-8") as f:
            source.write_text("".join(line for _, line in zip(range(n_docs), f)), encoding="utf-8")
        print(f"SciFact: {n_docs} docs, MiniLM, exact-f32, {len(qids)} test queries; {machine()}", flush=True)
        print()
        print("| ingest | documents | chunks | wall s | docs/s | ratio | nDCG@10 | load average after |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
        scores, rates = [], []
        for name in ("single process", f"Ray Data, {workers} actors, {shards} shards"):
            path = Path(tmp) / name.split(",")[0].replace(" ", "-")
            t = time.perf_counter()
            if name == "single process":
                with Collection.create(path, model=MODEL, profile="exact-f32") as one:
                    n = one.add(read_sources([source]))
            else:
                n = index([source], path, shards=shards, workers=workers, model=MODEL, profile="exact-f32")
            s = time.perf_counter() - t
            with Collection.open(path) as col:
                info = col.info()
                hits = col.search_many([queries[q] for q in qids], k=10)
            run = {q: {h.id: h.score for h in hs} for q, hs in zip(qids, hits)}
            scores.append(evaluate(qrels, run, ["ndcg@10"])["ndcg@10"])
            rates.append(n / s)
            print(f"| {name} | {n} | {info['chunks']} | {s:.1f} | {n / s:.1f} | {rates[-1] / rates[0]:.2f}x | "
                  f"{scores[-1]:.4f} | {os.getloadavg()[0]:.1f} |", flush=True)
    print()
    print(f"nDCG@10 equal to four decimals: {round(scores[0], 4) == round(scores[1], 4)}")


if __name__ == "__main__":
    main()
