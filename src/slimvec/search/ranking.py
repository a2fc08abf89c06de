"""From chunk rows to documents: a retriever's rows become a document ranking, each document scored by its best chunk."""

from __future__ import annotations

import numpy as np

from slimvec.index.base import ROWS_PER_RESULT
from slimvec.retrievers.base import Query, Retriever

# (document number, score of its best chunk, that chunk's row), best first.
Ranking = list[tuple[int, float, int]]


def doc_ranking(
    retriever: Retriever, query: Query, k: int, allowed: np.ndarray, n_allowed: int, row_doc: np.ndarray
) -> list[tuple[int, float, int]]:
    """Top-k documents as (doc number, score of best chunk, best chunk row), widening until k distinct documents."""
    if n_allowed == 0:
        return []
    want = min(n_allowed, k * ROWS_PER_RESULT)
    while True:
        scores, rows = retriever.search(query, max(want, 1), allowed)
        ranked = _ranked_lists(scores.tolist(), rows.tolist(), row_doc[rows].tolist()) \
            if len(rows) <= _SMALL else None
        found, top = (len(ranked), ranked[:k]) if ranked is not None else _ranked_arrays(scores, rows, row_doc, k)
        if found >= k or want >= n_allowed:
            return top
        want = min(n_allowed, want * ROWS_PER_RESULT)


# Up to this many rows, plain Python lists beat numpy's unique/argsort (a lone query's top 40: ~3 us against ~25).
_SMALL = 256


def _ranked_arrays(scores: np.ndarray, rows: np.ndarray, row_doc: np.ndarray, k: int) -> tuple[int, Ranking]:
    """How many documents `rows` (-1: padding) hold, and the best k of them at their best rows, best first;
    equal scores in row order."""
    valid = rows >= 0
    rows, scores = rows[valid], scores[valid]
    docs = row_doc[rows]
    # Rows come best first, so a document's first occurrence is its best chunk.
    _, first = np.unique(docs, return_index=True)
    first.sort()
    top = first[np.argsort(-scores[first], kind="stable")][:k]
    return len(first), list(zip(docs[top].tolist(), scores[top].tolist(), rows[top].tolist()))


def _ranked_lists(scores: list[float], rows: list[int], docs: list[int]) -> Ranking | None:
    """`_ranked_arrays` on lists, for rows given best first (`docs`: each row's document): each document at its
    first row, in the order of those rows. None when the scores are not in non-increasing order (a retriever
    that returns them otherwise takes `_ranked_arrays`, which sorts)."""
    out: Ranking = []
    seen: set[int] = set()
    prev = float("inf")
    for s, r, d in zip(scores, rows, docs):
        if r < 0:
            continue
        if s > prev:
            return None
        prev = s
        if d not in seen:
            seen.add(d)
            out.append((d, s, r))
    return out
