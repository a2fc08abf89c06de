"""BM25 after a small commit: what bm25s (the peer) and slimvec's posting lists pay to answer the next query,
and what a query costs once the index is current, on the same token ids in one run; checks the scores are
bitwise equal.

    PYTHONPATH=src python benchmarks/bm25_build.py --rows 100000 --add 10

Rows: SciFact's documents (title and abstract, slimvec's BM25 tokenizer) in turn until `--rows`; then `--add`
more rows are committed. Queries: SciFact's test queries, tokenised the same way.

- bm25s cannot add documents to a built index: after a commit it builds its score matrix again over every row
  (`build_index_from_ids`), then answers from it (`get_scores_from_ids`).
- slimvec appends the commit's (row, term) counts as a segment (`Postings.append`), and scores each query term's
  postings under the new statistics the first time a query asks for it (`TermScorer`), then reuses them.

Columns: the commit's cost before the first answer (CPU s, one thread); the first query after it; query p50
over the test queries right after the commit (each term scored at first use) and once every term is scored.
"""

from __future__ import annotations

import argparse
import time

import bm25s
import numpy as np
from _common import DATA, read_jsonl

from slimvec.chunking import chunk_text
from slimvec.retrievers.bm25 import Bm25Config, Tokenizer
from slimvec.retrievers.bm25_global import term_scorer
from slimvec.retrievers.bm25_postings import Postings


def _flat(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([np.asarray(r, np.int32) for r in ids]),
            np.concatenate([[0], np.cumsum([len(r) for r in ids])]).astype(np.int64))


def _p50_ms(score, queries: list[list[int]]) -> float:
    times = []
    for q in queries:
        t = time.perf_counter()
        score(q)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--add", type=int, default=10)
    ap.add_argument("--method", default="lucene")
    a = ap.parse_args()
    tok = Tokenizer(Bm25Config())
    docs = read_jsonl(DATA / "scifact" / "corpus.jsonl")
    vocab: dict[str, int] = {}
    base = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tok([chunk_text(d["title"], d["text"]) for d in docs])]
    ids = [base[i % len(base)] for i in range(a.rows + a.add)]
    queries = [[vocab[t] for t in tok.one(q["text"]) if t in vocab] for q in read_jsonl(DATA / "scifact" / "queries.jsonl")]
    queries = [q for q in queries if q]
    n = len(ids)

    # peer: bm25s builds its matrix over every row again
    bm = bm25s.BM25(method=a.method)
    t = time.process_time()
    bm.scores = bm.build_index_from_ids(list(range(len(vocab))), ids, show_progress=False)
    peer_commit = time.process_time() - t
    t = time.perf_counter()
    want = bm.get_scores_from_ids(queries[0])
    peer_first = time.perf_counter() - t
    peer_p50 = _p50_ms(bm.get_scores_from_ids, queries)

    # slimvec: postings of the first rows (as saved by earlier commits), then the commit appended
    postings = Postings.of_cache(*_flat(ids[: a.rows]), len(vocab))
    lengths = np.diff(_flat(ids)[1])
    t = time.process_time()
    postings.append(*_flat(ids[a.rows :]), len(vocab))
    scorer = term_scorer(bm25s.BM25(method=a.method), postings, lengths, list(vocab),
                         (n, int(lengths.sum()), postings.df(len(vocab))))
    mine_commit = time.process_time() - t
    t = time.perf_counter()
    got = scorer.scores(queries[0], n)
    mine_first = time.perf_counter() - t
    mine_cold = _p50_ms(lambda q: scorer.scores(q, n), queries[1:])
    mine_warm = _p50_ms(lambda q: scorer.scores(q, n), queries)
    same = np.array_equal(got, want) and all(np.array_equal(scorer.scores(q, n), bm.get_scores_from_ids(q))
                                             for q in queries[:50])

    print(f"{a.rows:,} rows + {a.add:,} committed, {int(lengths.sum()):,} tokens, {len(queries)} SciFact queries, "
          f"method {a.method}, postings in {len(postings.segments)} segments\n")
    print("| | commit, before the first answer (CPU s) | first query (ms) | query p50 after the commit (ms) "
          "| query p50, index current (ms) |\n| --- | ---: | ---: | ---: | ---: |")
    print(f"| bm25s: matrix built again (peer) | {peer_commit:.3f} | {peer_first * 1e3:.2f} | {peer_p50:.3f} "
          f"| {peer_p50:.3f} |")
    print(f"| slimvec: segment appended, terms scored at first use | {mine_commit:.3f} | {mine_first * 1e3:.2f} "
          f"| {mine_cold:.3f} | {mine_warm:.3f} |")
    print(f"| ratio slimvec / bm25s | {mine_commit / peer_commit:.4f}x | {mine_first / peer_first:.2f}x "
          f"| {mine_cold / peer_p50:.2f}x | {mine_warm / peer_p50:.2f}x |")
    print(f"\nbitwise equal scores (first query and 50 more): {same}")


if __name__ == "__main__":
    main()
