"""BM25 score matrix build: bm25s's `build_index_from_ids` (the peer) against slimvec's `bm25_matrix.score_matrix`,
on the same token ids, in one run; checks the two matrices are bitwise equal.

    PYTHONPATH=src python benchmarks/bm25_build.py --rows 100000

Rows: SciFact's documents (title and abstract, slimvec's BM25 tokenizer) in turn until `--rows` (the matrix
a collection rebuilds at its first BM25 search after a commit). Each build runs `--repeat` times; the table
gives the fastest (CPU-bound, one thread).
"""

from __future__ import annotations

import argparse
import time

import bm25s
import numpy as np
from _common import DATA, read_jsonl

from slimvec.chunking import chunk_text
from slimvec.retrievers.bm25 import Bm25Config, Tokenizer
from slimvec.retrievers.bm25_matrix import score_matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--method", default="lucene")
    a = ap.parse_args()
    docs = read_jsonl(DATA / "scifact" / "corpus.jsonl")
    tokens = Tokenizer(Bm25Config())([chunk_text(d["title"], d["text"]) for d in docs])
    vocab: dict[str, int] = {}
    base = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tokens]
    ids = [base[i % len(base)] for i in range(a.rows)]
    flat = np.concatenate([np.asarray(r, np.int32) for r in ids])
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in ids])]).astype(np.int64)
    times: dict[str, float] = {}
    out = {}
    for name in ("bm25s build_index_from_ids (peer)", "slimvec score_matrix"):
        best = float("inf")
        for _ in range(a.repeat):
            bm = bm25s.BM25(method=a.method)
            t = time.process_time()
            if name.startswith("bm25s"):
                out[name] = bm.build_index_from_ids(list(range(len(vocab))), ids, show_progress=False)
            else:
                out[name] = score_matrix(bm, flat, offsets, len(vocab))
            best = min(best, time.process_time() - t)
        times[name] = best
    peer, mine = out.values()
    same = all(np.array_equal(peer[k], mine[k]) and peer[k].dtype == mine[k].dtype for k in ("data", "indices", "indptr"))
    print(f"{a.rows:,} rows, {len(flat):,} tokens, {len(peer['data']):,} (row, term) entries, method {a.method}\n")
    print("| build | CPU s (best of {}) | ratio to bm25s |\n| --- | ---: | ---: |".format(a.repeat))
    first = next(iter(times.values()))
    for name, s in times.items():
        print(f"| {name} | {s:.2f} | {s / first:.2f}x |")
    print(f"\nbitwise equal matrices: {same}")


if __name__ == "__main__":
    main()
