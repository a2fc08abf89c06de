"""BM25 matches by membership (a document holding a query term) vs the old rule (score > 0), per bm25s method.

For each method, on one real store and one Bm25Retriever: how many (query, document) matches the old
`score > 0` rule dropped among all allowed documents holding a query term, and the queries/s of
`Bm25Retriever.search` (k = 10, membership) next to the same scoring with the old rule, one query at a time.

    PYTHONPATH=src .venv/bin/python benchmarks/bm25_membership.py [--dataset scifact] [--queries 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, machine, print_table, read_jsonl

from slimvec.chunking import chunk_text
from slimvec.documents import Chunk, Document
from slimvec.retrievers.base import Query
from slimvec.retrievers.bm25 import Bm25Config, Bm25Retriever
from slimvec.store import Store

METHODS = ["lucene", "robertson", "atire", "bm25l", "bm25+"]


def _old_rule(r: Bm25Retriever, text: str, k: int, allowed: np.ndarray) -> np.ndarray:
    """The pre-fix search: bm25s scores with the allowed mask as weights, hits where score > 0."""
    ids = r.query_ids(text)
    if not ids:
        return np.zeros(0, dtype=np.int64)
    mask = allowed[r._row_ids].astype(np.float32)
    scores = r._ensure_built().scores(ids, len(r._row_ids)) * mask  # bm25s's weight_mask
    hit = np.flatnonzero(scores > 0)
    if len(hit) > k:
        hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
    return r._row_ids[hit]


def _qps(fn, queries: list[str], repeat: int = 3) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for q in queries:
            fn(q)
        best = max(best, len(queries) / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    corpus = read_jsonl(DATA / args.dataset / "corpus.jsonl")
    queries = [q["text"] for q in read_jsonl(DATA / args.dataset / "queries.jsonl", args.queries)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "col", {"model": "none", "dim": 1})
        docs = [Document(str(r["_id"]), r["text"], r.get("title", "")) for r in corpus]
        chunks = [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs]
        store.commit(docs, chunks, np.zeros((len(docs), 1), dtype=np.float32), replace=False)
        allowed = np.ones(len(docs), dtype=bool)
        texts = [chunk_text(d.title, d.text) for d in docs]
        for method in METHODS:
            r = Bm25Retriever(Bm25Config(method=method))
            r.sync(store)
            r.search(Query("warm up"), 10, allowed)
            token_sets = [set(r.query_ids(t)) for t in texts]
            members = dropped = 0
            for q in queries:
                qids = set(r.query_ids(q))
                holding = {i for i, s in enumerate(token_sets) if s & qids}
                old = set(_old_rule(r, q, len(docs), allowed).tolist())
                new = {int(x) for x in r.search(Query(q), len(docs), allowed)[1] if x >= 0}
                assert new == holding, method  # membership is exactly "holds a query term"
                members += len(holding)
                dropped += len(holding - old)
            qps_new = _qps(lambda q, r=r: r.search(Query(q), 10, allowed), queries)
            qps_old = _qps(lambda q, r=r: _old_rule(r, q, 10, allowed), queries)
            rows.append([method, members, dropped, f"{100 * dropped / max(members, 1):.2f}%",
                         f"{qps_new:,.0f}", f"{qps_old:,.0f}", f"{qps_new / qps_old:.2f}"])
        store.close()
    print(f"{args.dataset}: {len(docs)} documents, {len(queries)} queries; {machine()}")
    print_table(["method", "matches (doc holds a query term)", "dropped by score > 0", "dropped %",
                 "membership q/s", "score > 0 q/s", "ratio"], rows)


if __name__ == "__main__":
    main()
