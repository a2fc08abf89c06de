"""BM25 posting lists that grow with each commit, and term scores computed when a query first needs them.

bm25s scores from a matrix of precomputed (document, term) scores, and every one of them depends on N, the
average length and the term's document frequency, which change at every commit: bm25s cannot add documents
to a built index. A collection therefore rebuilt the whole matrix at the first BM25 search after each
commit (100k rows: 1.3 s, 1M rows: ~15 s, under the collection's state lock). Lucene keeps raw term
frequencies in its posting lists and scores at query time; so does this module, with bm25s's own scoring
functions:

- `Postings` holds each (row, term)'s count, term-major, in segments (`retrievers/postings.py`): a commit
  adds one segment built from its own rows, O(new rows), merged so that there are O(log rows) of them.
- `TermScorer` scores a term's postings under one set of statistics, the first time a query asks for that
  term, and keeps the result until the statistics change. Each value is bitwise the one in the matrix bm25s
  builds over the same rows (`BM25.build_index_from_ids`, numpy backend): bm25s's idf and term-frequency
  functions (`bm25s.scoring`) are called on the same values in the same dtypes (the latter on the term's
  postings at once, where bm25s calls it per document: it is elementwise), and the products are taken and
  cast in bm25s's order.
  `TermScorer.scores` sums them per row in query-token order, as bm25s's `get_scores_from_ids` does, so a
  query's scores are bitwise bm25s's (tests/test_bm25_postings.py).

A search right after a commit scores its own terms' postings (SciFact-length rows, 100k rows: about what bm25s
takes from a built matrix, benchmarks/bm25_build.py), the next queries reuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from slimvec.retrievers.postings import Segment, add_segment


class Postings:
    """Term-major (row, term) counts of a token cache, appended commit by commit (see the module doc)."""

    def __init__(self, segments: list[Segment] | None = None, rows: int = 0) -> None:
        self.segments: list[Segment] = list(segments or [])
        self.rows = rows  # token-cache positions covered

    @classmethod
    def of_cache(cls, tokens: np.ndarray, offsets: np.ndarray, n_terms: int) -> "Postings":
        """The postings of a whole token cache (as `append` takes it)."""
        out = cls()
        out.append(tokens, offsets, n_terms)
        return out

    def append(self, tokens: np.ndarray, offsets: np.ndarray, n_terms: int) -> None:
        """Add the rows `tokens[offsets[i]:offsets[i+1]]` (offsets from 0) at the next positions, then merge
        segments while the one before the last holds at most MERGE_RATIO times the last's entries."""
        if len(offsets) <= 1:
            return
        seg = Segment.of_rows(tokens, offsets, self.rows, n_terms)
        add_segment(self.segments, seg)
        self.rows += len(offsets) - 1

    def kept(self, keep: np.ndarray) -> "Postings":
        """These postings over the positions where `keep` ((rows,) bool) is True, renumbered 0.. in order."""
        position = np.cumsum(keep) - 1
        return Postings([s.kept(keep, position) for s in self.segments], int(keep.sum()))

    def copy(self) -> "Postings":
        """Postings sharing these segments' arrays (never written in place), appended to on their own."""
        out = Postings(rows=self.rows)
        out.segments = [Segment(s.ptr, s.rows, s.tf) for s in self.segments]
        return out

    def check(self, n_terms: int, lengths: np.ndarray | None = None) -> None:
        """Raise ValueError unless the segments are well formed for `rows` positions and n_terms terms
        (postings read from files another process wrote, or cut short), and with `lengths` ((rows,) int, each
        position's row length in tokens) unless each position's counts add up to its length: a segment missing
        from the list, or counts that are not the token cache's, would score some rows without some of their terms."""
        last = -1
        for s in self.segments:
            ok = (s.ptr.ndim == 1 and 1 <= len(s.ptr) <= n_terms + 1 and s.ptr[0] == 0
                  and (np.diff(s.ptr) >= 0).all() and s.ptr[-1] == len(s.rows) == len(s.tf))
            if not ok or (s.entries and (int(s.rows.min()) <= last or int(s.rows.max()) >= self.rows
                                          or int(s.tf.min()) < 1)):
                raise ValueError("BM25 postings out of step with the token cache")
            last = int(s.rows.max()) if s.entries else last
        if lengths is not None:
            total = np.zeros(self.rows, np.float64)  # float64 sums of int32 counts: exact below 2**53
            for s in self.segments:
                total += np.bincount(s.rows, weights=s.tf, minlength=self.rows)
            if len(lengths) != self.rows or not np.array_equal(total, np.asarray(lengths, np.float64)):
                raise ValueError("BM25 postings out of step with the token cache")

    def df(self, n_terms: int) -> np.ndarray:
        """(n_terms,) int64 document frequencies: rows holding each term."""
        out = np.zeros(n_terms, np.int64)
        for s in self.segments:
            out += s.counts(n_terms)
        return out

    def term(self, term: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, counts) of `term` in each segment that holds it."""
        for s in self.segments:
            a, b = s.span(term)
            if b > a:
                yield s.rows[a:b], s.tf[a:b]

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.segments)


class TermScorer:
    """BM25 scores of posting lists under one set of statistics, with the variant, k1, b, delta and dtype of the
    bm25s.BM25 `bm`: `lengths` ((positions,) int64 row lengths in tokens), `n_docs` (N), `avgdl` (np.float64,
    as bm25s computes it) and `df(term) -> int`; `own_df`: (terms,) int64 document frequencies among the rows
    that count here (a term at 0 is held by no live row). A term's scores are computed at its first use and kept."""

    def __init__(self, bm: Any, postings: Postings, lengths: np.ndarray, n_docs: int, avgdl: np.float64,
                 df: Callable[[int], int], own_df: np.ndarray) -> None:
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

        self.bm, self.postings, self.n_docs, self.avgdl, self._df = bm, postings, n_docs, avgdl, df
        self.own_df = own_df
        self._idf_fn, self._tfc_fn = _select_idf_scorer(bm.idf_method), _select_tfc_scorer(bm.method)
        self._nonoccurrence = bm.method in bm.methods_requiring_nonoccurrence
        self._lengths = np.asarray(lengths, np.int64)
        self._terms: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._extra: dict[int, np.ndarray] = {}

    def scores(self, ids: list[int], n_rows: int) -> np.ndarray:
        """(n_rows,) scores of the query token ids `ids` (repeats count, as in bm25s) over every position:
        bm25s's `get_scores_from_ids`."""
        out = np.zeros(n_rows, dtype=self.bm.dtype)
        for t in ids:
            for rows, values in self.term(t):
                np.add.at(out, rows, values)  # bm25s's numpy backend's sum (3x faster than out[rows] += values)
        if self._nonoccurrence and ids:
            out += np.concatenate([self._idf_and_nonoccurrence(t)[1] for t in ids]).sum()
        return out

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for parts in self._terms.values() for _, v in parts)

    def term(self, term: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rows, scores in bm's dtype) of `term` in each segment holding it, computed now or kept from before."""
        found = self._terms.get(term)
        if found is None:
            idf, nonoccurrence = self._idf_and_nonoccurrence(term)
            found = []
            bm = self.bm
            for rows, tf in self.postings.term(term):
                # bm25s's term-frequency component per posting: counts in bm's dtype, as bm25s's counts array (a
                # float16 count overflows where a float32 one does not); the row lengths as an int64 array where
                # bm25s passes one Python int per document: its function is elementwise, so these are the same
                # float64 operations on the same values (tests/test_bm25_postings.py checks every variant bitwise)
                tfc = np.asarray(self._tfc_fn(tf_array=tf.astype(bm.dtype), l_d=self._lengths[rows], l_avg=self.avgdl,
                                              k1=bm.k1, b=bm.b, delta=bm.delta))
                values = idf * tfc  # bm25s: idf[terms] * tfc, then minus, then cast
                if nonoccurrence is not None:
                    values = values - nonoccurrence
                found.append((rows, values.astype(self.bm.dtype)))
            self._terms[term] = found
        return found

    def _idf_and_nonoccurrence(self, term: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(1,)-arrays in bm's dtype: the term's idf and (BM25L, BM25+) its non-occurrence score, as bm25s's
        array builders compute one term's entry."""
        from bm25s.scoring import _build_idf_array, _build_nonoccurrence_array

        found = self._extra.get(term)
        if found is None:
            bm, freq = self.bm, {0: self._df(term)}
            idf = _build_idf_array(doc_frequencies=freq, n_docs=self.n_docs, compute_idf_fn=self._idf_fn, dtype=bm.dtype)
            non = _build_nonoccurrence_array(
                doc_frequencies=freq, n_docs=self.n_docs, compute_idf_fn=self._idf_fn, calculate_tfc_fn=self._tfc_fn,
                l_d=self.avgdl, l_avg=self.avgdl, k1=bm.k1, b=bm.b, delta=bm.delta, dtype=bm.dtype,
            ) if self._nonoccurrence else None
            found = self._extra[term] = np.concatenate([idf, non]) if non is not None else idf
        return found[:1], (found[1:] if self._nonoccurrence else None)
