"""What a SPLADE (learned sparse) index pays to take in a 10-row commit and answer the next query, at N rows.

    PYTHONPATH=src python benchmarks/sparse_commit.py --rows 100000                # this tree
    PYTHONPATH=/path/to/older/src python benchmarks/sparse_commit.py ...           # an older tree, same script

The rows' sparse vectors come from a stand-in encoder (random term ids and weights, `--nnz` per row over
SPLADE's 30,522-term vocabulary; the model's encoding time, the same in every tree, is left out): this measures
the index, not the model. A real store (SQLite) holds N rows; the retriever catches up with them, answers a
query, then `--commits` times: 10 rows are committed, `sync` takes them in, and one query is answered. Before
session 19 `sync` stacked the whole matrix to append and the next query transposed it whole.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--nnz", type=int, default=120)
    ap.add_argument("--commits", type=int, default=5)
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
    print(f"{a.rows:,} rows x {a.nnz} nonzeros (stand-in encoder), {a.commits} commits of 10 rows; first sync + "
          f"query {first:.1f} s\n")
    print("| step (median of commits) | ms |\n| --- | ---: |")
    print(f"| sync of a 10-row commit | {statistics.median(syncs) * 1e3:.1f} |")
    print(f"| first query after it | {statistics.median(searches) * 1e3:.1f} |")
    print(f"| next query | {statistics.median(warm) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
