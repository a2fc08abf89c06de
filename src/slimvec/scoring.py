"""The one float32 scoring kernel and the one tie rule every search stage uses.

Exact search, rescoring of compressed candidates, the dense reranker and (later) shards all report the
inner product of a query with a stored float32 row. Computed with BLAS, that number depends on how the
library blocks the matrix (a row scored among 300 rows or among 40 rows can differ in the last bit), so two
stages could rank the same two documents differently. `inner_products` instead multiplies in float64 (the
product of two float32 values is exact there), sums each row with numpy's pairwise summation (a fixed order
that depends only on the dimension) and rounds once to float32: the score of a row is a pure function of the
row and the query, bitwise equal on any IEEE-754 machine, whatever the batch it is scored in.

Tie rule (documented in docs/architecture.md): higher score first; equal scores go to the lower row number,
i.e. the chunk committed first. A document inherits the row of its best chunk.
"""

from __future__ import annotations

import numpy as np

# Rows scored per block: bounds the float64 temporary to 16 MiB at 1,024 dimensions.
_BLOCK = 2048


def inner_products(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of each row of `vectors` with `query`, reproducible bit for bit.

    vectors: (n, d) float32 (or a memmap of it); query: (d,) float32. Returns (n,) float32.
    The exact products are summed in float64 in a fixed order and rounded once, so the result for a row does
    not depend on n, on the row's position, or on the BLAS library.
    """
    v = np.asarray(vectors)
    q = np.asarray(query, dtype=np.float32).astype(np.float64)
    if v.ndim != 2 or v.shape[1] != q.shape[0]:
        raise ValueError(f"vectors of shape {v.shape} cannot be scored against a query of dimension {q.shape[0]}")
    out = np.empty(len(v), dtype=np.float32)
    for s in range(0, len(v), _BLOCK):
        block = np.asarray(v[s : s + _BLOCK], dtype=np.float32).astype(np.float64)
        block *= q
        out[s : s + len(block)] = block.sum(axis=1)
    return out


def blas_error_bound(dim: int, query_norm: float, max_row_norm: float) -> float:
    """An upper bound on |BLAS float32 inner product - exact| (absolute, score units) for rows up to `max_row_norm`.

    Used to widen a BLAS candidate list so that re-scoring with `inner_products` cannot miss a row: by the
    standard error bound of a float32 dot product, dim * 2^-24 * sum|q_i x_i|, with sum|q_i x_i| <= |q||x|
    (Cauchy-Schwarz); doubled for the cast of the inputs.
    """
    return 2.0 * dim * 2.0**-24 * float(query_norm) * float(max_row_norm) + 1e-30


def order(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Indices that sort (scores, rows) by the tie rule: score descending, then row ascending.

    scores: (n,) float; rows: (n,) int. Rows of -1 (padding) or scores of -inf go last.
    """
    scores = np.asarray(scores)
    rows = np.asarray(rows, dtype=np.int64)
    pad = (rows < 0) | ~np.isfinite(scores)
    key_scores = np.where(pad, np.inf, -scores.astype(np.float64))
    key_rows = np.where(pad, np.iinfo(np.int64).max, rows)
    return np.lexsort((key_rows, key_scores))
