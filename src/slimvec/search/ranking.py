"""From chunk rows to documents: a retriever's rows become a document ranking, each document scored by its best chunk."""

from __future__ import annotations

import numpy as np

from slimvec.retrievers.base import Query, Retriever

# (document number, score of its best chunk, that chunk's row), best first.
Ranking = list[tuple[int, float, int]]


def doc_ranking(
    retriever: Retriever, query: Query, k: int, allowed: np.ndarray, n_allowed: int, row_doc: np.ndarray
) -> list[tuple[int, float, int]]:
    """Top-k documents as (doc number, score of best chunk, best chunk row), widening until k distinct documents."""
    if n_allowed == 0:
        return []
    want = min(n_allowed, k * 4)
    while True:
        scores, rows = retriever.search(query, max(want, 1), allowed)
        valid = rows >= 0
        rows, scores = rows[valid], scores[valid]
        docs = row_doc[rows]
        # Rows come best first, so a document's first occurrence is its best chunk.
        _, first = np.unique(docs, return_index=True)
        first.sort()
        if len(first) >= k or want >= n_allowed:
            break
        want = min(n_allowed, want * 4)
    top = first[np.argsort(-scores[first], kind="stable")][:k]
    return list(zip(docs[top].tolist(), scores[top].tolist(), rows[top].tolist()))
