"""bm25s's score matrix, built with array operations instead of bm25s's Python loop over documents.

bm25s (`BM25.build_index_from_ids`) counts each document's terms with a `Counter`, intersects a set per document
for the document frequencies, and scores document by document: 8.4 s of a 10 s rebuild at 100k SciFact-length
rows. A collection rebuilds the matrix at the first BM25 search after every commit (bm25s cannot add documents
to a built matrix), so a served hybrid collection stopped for that long after each small write
(benchmarks/catch_up.py). `score_matrix` gives bitwise the same matrix from the token cache: the (row, term)
counts by scipy's per-row sort, the document frequencies by `np.bincount`, and the term-frequency component by
bm25s's own function (`bm25s.scoring`), called once per distinct row length on the distinct counts, with the
same argument types bm25s passes it, so every float operation is the one bm25s makes. The idf (and BM25L/BM25+'s
non-occurrence array) come from bm25s's own builders, one Python step per vocabulary term.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def score_matrix(bm: Any, tokens: np.ndarray, offsets: np.ndarray, n_vocab: int,
                 df: Callable[[np.ndarray], Mapping[int, int]] | None = None, n_docs: int | None = None,
                 avgdl: np.float64 | None = None) -> dict[str, Any]:
    """The {"data", "indices", "indptr", "num_docs"} that `bm.build_index_from_ids` (numpy CSC backend) returns
    for rows `tokens[offsets[i]:offsets[i+1]]` (int32 token ids below `n_vocab`; offsets: (rows + 1,) int64),
    with bm's variant, k1, b, delta and dtypes; sets `bm.nonoccurrence_array` as bm25s does.

    df, n_docs, avgdl: statistics to score with instead of the rows' own (corpus-wide ones for a shard,
    `bm25_global`): df takes the rows' own document frequencies ((n_vocab,) int64) and maps every token id below
    n_vocab to the one to score with.
    """
    import scipy.sparse as sp
    from bm25s.scoring import (
        _build_idf_array,
        _build_nonoccurrence_array,
        _select_idf_scorer,
        _select_tfc_scorer,
    )

    offsets = np.asarray(offsets, np.int64)
    rows = len(offsets) - 1
    lengths = np.diff(offsets)
    # copy=True: sum_duplicates sorts and shortens the arrays in place, and these are the caller's token cache.
    # Counted in int64, as bm25s's Counter counts: float32 ones stop adding up at 2**24 repeats of a term.
    counts = sp.csr_matrix((np.ones(len(tokens), np.int64), np.asarray(tokens, np.int32), offsets),
                           shape=(rows, n_vocab), copy=True)
    counts.sum_duplicates()  # each (row, term) once with its count: bm25s's Counter of one document
    terms, tf = counts.indices, counts.data
    own = np.bincount(terms, minlength=n_vocab)
    freqs = dict(enumerate(own.tolist())) if df is None else df(own)
    n = rows if n_docs is None else n_docs
    avg = lengths.mean() if avgdl is None else avgdl  # np.float64, as bm25s's mean of the lengths
    idf_fn, tfc_fn = _select_idf_scorer(bm.idf_method), _select_tfc_scorer(bm.method)
    idf = _build_idf_array(doc_frequencies=freqs, n_docs=n, compute_idf_fn=idf_fn, dtype=bm.dtype)
    nonoccurrence = None
    if bm.method in bm.methods_requiring_nonoccurrence:
        nonoccurrence = _build_nonoccurrence_array(
            doc_frequencies=freqs, n_docs=n, compute_idf_fn=idf_fn, calculate_tfc_fn=tfc_fn, l_d=avg, l_avg=avg,
            k1=bm.k1, b=bm.b, delta=bm.delta, dtype=bm.dtype)
    bm.nonoccurrence_array = nonoccurrence

    per_row = np.diff(counts.indptr)
    lens = np.unique(lengths[per_row > 0])  # distinct lengths of rows holding a term
    # Counts are whole numbers: each entry's place among the distinct counts by a look-up, not a sort of them all.
    seen = np.bincount(tf) > 0
    # in bm's dtype, as bm25s's counts array: a float16 tf overflows where a float32 one would not
    tfs, place = np.flatnonzero(seen).astype(bm.dtype), np.cumsum(seen) - 1
    # tfc(tf, l_d) for every distinct pair: l_d a Python int and tf an array of bm's dtype, as bm25s calls it
    table = np.stack([np.asarray(tfc_fn(tf_array=tfs, l_d=int(length), l_avg=avg, k1=bm.k1, b=bm.b, delta=bm.delta))
                      for length in lens.tolist()]) if len(lens) else np.zeros((0, 0))
    at_len = np.repeat(np.searchsorted(lens, lengths), per_row)  # each entry's row length, as a row of the table
    tfc = table[at_len, place[tf]] if len(tf) else np.zeros(0)
    scores = idf[terms] * tfc
    if nonoccurrence is not None:
        scores = scores - nonoccurrence[terms]
    by_row = sp.csr_matrix((scores.astype(bm.dtype), terms, counts.indptr), shape=(rows, n_vocab))
    by_term = by_row.tocsc()  # a counting sort by term keeping row order: bm25s's (term, row) order
    return {"data": by_term.data.astype(bm.dtype), "indices": by_term.indices.astype(bm.int_dtype),
            "indptr": by_term.indptr.astype(np.int64), "num_docs": rows}
