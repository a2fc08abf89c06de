"""Posting lists in segments that grow with each commit: the inverted-index storage BM25 and SPLADE share.

A segment holds the (row, term) entries of a run of rows, term-major (`Segment`): for each term, the rows that
hold it, ascending, and a value per entry (a BM25 count, a SPLADE weight). A commit adds one segment built from
its own rows, O(new rows); `add_segment` then merges the last segment into the one before it while that one
holds at most `MERGE_RATIO` times its entries, so there are O(log rows) segments, each entry is merged O(log
rows) times, and a query visits every segment of each of its terms. This is how Lucene's segments work,
simplified (one merge rule, no deletes inside segments: the retrievers mask dead rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MERGE_RATIO = 4  # a segment is merged into the one before it while that one holds at most 4x its entries


class Segment:
    """The (row, term) counts of a run of rows, term-major: term t's rows are `rows[ptr[t]:ptr[t + 1]]`
    (int32 positions in the token cache, ascending) with their counts `tf[...]` (int32); `ptr` is
    (terms known when built + 1,) int32 (int64 past 2**31 entries), so a later term has no postings here. `name`: its file once saved."""

    __slots__ = ("ptr", "rows", "tf", "name")

    def __init__(self, ptr: np.ndarray, rows: np.ndarray, tf: np.ndarray) -> None:
        # int32 offsets while they fit: a segment holds one per vocabulary term, which for a small collection
        # is as much as its postings (SciFact, 30k terms: 240 KB per segment in int64)
        small = len(ptr) == 0 or int(ptr[-1]) < 2**31
        self.ptr, self.rows, self.tf = ptr.astype(np.int32 if small else np.int64, copy=False), rows, tf
        self.name: str | None = None

    @property
    def entries(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return self.ptr.nbytes + self.rows.nbytes + self.tf.nbytes

    def span(self, term: int) -> tuple[int, int]:
        """(start, end) of `term`'s postings; (0, 0) for a term after this segment's vocabulary."""
        if term + 1 >= len(self.ptr):
            return 0, 0
        return int(self.ptr[term]), int(self.ptr[term + 1])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a file holds: `rows` and `tf`, and the pointers as the terms with postings here (int32,
        ascending), their entry counts (int64) and the vocabulary size `n_terms`, so a small commit's file is
        O(its entries), not O(vocabulary) as `ptr` is."""
        per_term = np.diff(self.ptr)
        terms = np.flatnonzero(per_term).astype(np.int32)
        return {"terms": terms, "counts": per_term[terms], "n_terms": np.int64(len(self.ptr) - 1),
                "rows": self.rows, "tf": self.tf}

    @staticmethod
    def of_arrays(z: Any, max_terms: int) -> "Segment":
        """The segment `arrays` wrote (or one with `ptr` itself, as the first postings files held) over at most
        `max_terms` terms. Raises ValueError, KeyError or TypeError on arrays that do not make one."""
        rows, tf = np.asarray(z["rows"]).astype(np.int32), np.asarray(z["tf"]).astype(np.int32)
        if "ptr" in z:
            return Segment(np.asarray(z["ptr"]).astype(np.int64), rows, tf)
        terms, counts, n = np.asarray(z["terms"]).astype(np.int64), np.asarray(z["counts"]).astype(np.int64), int(z["n_terms"])
        if (terms.ndim != 1 or counts.shape != terms.shape or not 0 <= n <= max_terms or (len(terms) and (terms[0] < 0 or terms[-1] >= n))
                or (np.diff(terms) <= 0).any() or (counts < 1).any()):
            raise ValueError("postings file out of shape")
        ptr = np.zeros(n + 1, np.int64)
        ptr[terms + 1] = counts
        np.cumsum(ptr, out=ptr)
        return Segment(ptr, rows, tf)

    def counts(self, n_terms: int) -> np.ndarray:
        """(n_terms,) int64: rows holding each term here (its document frequency in this segment)."""
        out = np.zeros(n_terms, np.int64)
        out[: len(self.ptr) - 1] = np.diff(self.ptr)
        return out

    @staticmethod
    def of_rows(tokens: np.ndarray, offsets: np.ndarray, first: int, n_terms: int) -> "Segment":
        """The segment of rows `tokens[offsets[i]:offsets[i+1]]` (int32 token ids below n_terms; offsets (rows + 1,)
        int64 from 0), numbered from position `first` in the token cache."""
        import scipy.sparse as sp

        rows = len(offsets) - 1
        # int64 counts, as bm25s's Counter counts (float ones stop adding up at 2**24 repeats); copy=True because
        # sum_duplicates sorts in place and these are the caller's token cache.
        counts = sp.csr_matrix((np.ones(len(tokens), np.int64), np.asarray(tokens, np.int32),
                                np.asarray(offsets, np.int64)), shape=(rows, n_terms), copy=True)
        counts.sum_duplicates()
        by_term = counts.tocsc()  # a counting sort by term that keeps rows ascending within a term
        return Segment(by_term.indptr.astype(np.int64), (by_term.indices + first).astype(np.int32),
                       by_term.data.astype(np.int32))

    @staticmethod
    def of_csr(m: Any, first: int) -> "Segment":
        """The segment of the rows of `m` (a scipy CSR matrix, (rows, terms), float32 values such as SPLADE
        weights), numbered from position `first`."""
        by_term = m.tocsc()
        return Segment(by_term.indptr, (by_term.indices + first).astype(np.int32), by_term.data.astype(np.float32))

    @staticmethod
    def merged(a: "Segment", b: "Segment") -> "Segment":
        """One segment holding `a`'s entries then `b`'s for each term (b's rows all after a's)."""
        n = max(len(a.ptr), len(b.ptr)) - 1
        ca, cb = a.counts(n), b.counts(n)
        ptr = np.zeros(n + 1, np.int64)
        np.cumsum(ca + cb, out=ptr[1:])
        # Each term's entries from a go to the start of its range in the merged segment, b's right after them.
        at_a, at_b = spans(ptr[:-1], ca), spans(ptr[:-1] + ca, cb)
        rows, tf = np.empty(a.entries + b.entries, np.int32), np.empty(a.entries + b.entries, a.tf.dtype)
        rows[at_a], rows[at_b], tf[at_a], tf[at_b] = a.rows, b.rows, a.tf, b.tf
        return Segment(ptr, rows, tf)

    def kept(self, keep: np.ndarray, position: np.ndarray) -> "Segment":
        """This segment without the entries of rows not in `keep` ((positions,) bool), the others renumbered
        by `position` ((positions,) int, a kept row's new position)."""
        mask = keep[self.rows]
        before = np.zeros(self.entries + 1, np.int64)  # entries kept before each place
        np.cumsum(mask, out=before[1:])
        return Segment(before[self.ptr], position[self.rows[mask]].astype(np.int32), self.tf[mask])


def add_segment(segments: list[Segment], seg: Segment) -> None:
    """Append `seg` (rows after every row of `segments`) to `segments`, then merge the last two while the one
    before the last holds at most MERGE_RATIO times the last's entries: O(log rows) segments."""
    segments.append(seg)
    # <=, not <: a segment of rows without tokens (0 entries) goes into an empty one before it, or else each
    # such commit would leave one more segment (found by the session-19 breaker)
    while len(segments) > 1 and segments[-2].entries <= MERGE_RATIO * segments[-1].entries:
        last = segments.pop()
        segments[-1] = Segment.merged(segments[-1], last)


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(lengths.sum(),) int64 positions of the ranges [starts[i], starts[i] + lengths[i]) one after the other, in
    a few array operations (gathering many posting lists, or many rows' tokens, without a Python loop)."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.repeat(np.asarray(starts, np.int64) - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) \
        + np.arange(total)
