"""What a SPLADE (learned sparse) index pays to take in a 10-row commit and answer the next query, at N rows.

    PYTHONPATH=src python benchmarks/sparse_commit.py --rows 100000                # this tree
    PYTHONPATH=/path/to/older/src python benchmarks/sparse_commit.py ...           # an older tree, same script

The rows' sparse vectors come from a stand-in encoder (random term ids and weights, `--nnz` per row over
SPLADE's 30,522-term vocabulary; the model's encoding time, the same in every tree, is left out): this measures
the index, not the model. A real store (SQLite) holds N rows; the retriever catches up with them, answers a
query, then `--commits` times: 10 rows are committed, `sync` takes them in, and one query is answered. Before
session 19 `sync` stacked the whole matrix to append and the next query transposed it whole.

The peer (`--peer qdrant`, on by default): Qdrant's local mode (qdrant-client, `QdrantClient(path=...)`, a
sparse vector per point) holding the same rows, in the same run: the same 10-row commits as `upsert`, the same
queries as `query_points`. Local mode is Qdrant's embedded, pure-Python engine (a server would index sparse
vectors in Rust); it is what a user who wants a store with no server process runs.

    PYTHONPATH=src python benchmarks/sparse_commit.py --rows 100000 --peer qdrant
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from slimvec.documents import Chunk, Document
from slimvec.retrievers.base import Query
from slimvec.retrievers.sparse import SparseRetriever
from slimvec.store import Store

VOCAB = 30522


class StandIn:
    """Random sparse rows of `nnz` terms (seeded by the text), for timing the index without the model."""

    kind, dim = "sparse", VOCAB

    def __init__(self, nnz: int) -> None:
        self.nnz = nnz

    def _rows(self, texts: list[str]) -> sp.csr_matrix:
        out = []
        for t in texts:
            rng = np.random.default_rng(abs(hash(t)) % 2**32)
            cols = np.sort(rng.choice(VOCAB, self.nnz, replace=False))
            out.append(sp.csr_matrix((rng.random(self.nnz).astype(np.float32), (np.zeros(self.nnz, int), cols)),
                                     shape=(1, VOCAB)))
        return sp.vstack(out, format="csr") if out else sp.csr_matrix((0, VOCAB), dtype=np.float32)

    def encode_documents(self, texts: list[str]) -> sp.csr_matrix:
        return self._rows(texts)

    def encode_queries(self, texts: list[str]) -> sp.csr_matrix:
        return self._rows(texts)


def commit(store: Store, start: int, n: int) -> None:
    docs = [Document(f"d{i}", f"text {i}") for i in range(start, start + n)]
    store.commit(docs, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs],
                 np.zeros((n, 1), np.float32), replace=False)


def qdrant_peer(enc: StandIn, rows: int, commits: int, path: Path) -> tuple[float, list[float], list[float], list[float]]:
    """(load s, commit s, first query s, next query s) of Qdrant local mode over the same rows and commits."""
    from qdrant_client import QdrantClient, models

    def points(start: int, n: int) -> list:
        m = enc.encode_documents([f"text {i}" for i in range(start, start + n)])
        return [models.PointStruct(id=start + j, vector={"s": models.SparseVector(
            indices=m.indices[m.indptr[j]:m.indptr[j + 1]].tolist(), values=m.data[m.indptr[j]:m.indptr[j + 1]].tolist())})
            for j in range(n)]

    def query(text: str) -> None:
        q = enc.encode_queries([text])
        client.query_points("c", query=models.SparseVector(indices=q.indices.tolist(), values=q.data.tolist()),
                            using="s", limit=10)

    client = QdrantClient(path=str(path))
    client.create_collection("c", vectors_config={}, sparse_vectors_config={"s": models.SparseVectorParams()})
    t = time.perf_counter()
    for s in range(0, rows, 5_000):
        client.upsert("c", points(s, min(5_000, rows - s)))
    query("query 0")
    load = time.perf_counter() - t
    ups, firsts, nexts = [], [], []
    for c in range(commits):
        batch = points(rows + 10 * c, 10)
        t = time.perf_counter()
        client.upsert("c", batch)
        ups.append(time.perf_counter() - t)
        t = time.perf_counter()
        query(f"query {c + 1}")
        firsts.append(time.perf_counter() - t)
        t = time.perf_counter()
        query(f"query {c + 100}")
        nexts.append(time.perf_counter() - t)
    client.close()
    return load, ups, firsts, nexts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--nnz", type=int, default=120)
    ap.add_argument("--commits", type=int, default=5)
    ap.add_argument("--peer", choices=("qdrant", "none"), default="qdrant")
    a = ap.parse_args()
    enc = StandIn(a.nnz)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "c", {"model": "none", "dim": 1})
        for s in range(0, a.rows, 20_000):
            commit(store, s, min(20_000, a.rows - s))
        r = SparseRetriever(lambda: enc, "stand-in")
        t = time.perf_counter()
        r.sync(store)
        allowed = np.ones(a.rows + 10 * a.commits, bool)
        r.search(Query("query 0"), 10, allowed)
        first = time.perf_counter() - t
        syncs, searches, warm = [], [], []
        for c in range(a.commits):
            commit(store, a.rows + 10 * c, 10)
            t = time.perf_counter()
            r.sync(store)
            syncs.append(time.perf_counter() - t)
            t = time.perf_counter()
            r.search(Query(f"query {c + 1}"), 10, allowed)
            searches.append(time.perf_counter() - t)
            t = time.perf_counter()
            r.search(Query(f"query {c + 100}"), 10, allowed)
            warm.append(time.perf_counter() - t)
        store.close()
        peer = qdrant_peer(enc, a.rows, a.commits, Path(tmp) / "qdrant") if a.peer == "qdrant" else None
    ms = [statistics.median(x) * 1e3 for x in (syncs, searches, warm)]
    print(f"{a.rows:,} rows x {a.nnz} nonzeros (stand-in encoder), {a.commits} commits of 10 rows; slimvec first "
          f"sync + query {first:.1f} s" + (f", Qdrant local load + first query {peer[0]:.1f} s" if peer else "") + "\n")
    if peer is None:
        print("| step (median of commits) | slimvec ms |\n| --- | ---: |")
        for label, v in zip(("sync of a 10-row commit", "first query after it", "next query"), ms):
            print(f"| {label} | {v:.1f} |")
        return
    qd = [statistics.median(x) * 1e3 for x in peer[1:]]
    print("| step (median of commits) | slimvec ms | Qdrant local ms | slimvec / Qdrant |\n| --- | ---: | ---: | ---: |")
    for label, v, w in zip(("10-row commit taken in (slimvec: sync; Qdrant: upsert)", "first query after it",
                            "next query"), ms, qd):
        print(f"| {label} | {v:.1f} | {w:.1f} | {v / w:.2f}x (1/{w / v:,.0f}) |")


if __name__ == "__main__":
    main()
