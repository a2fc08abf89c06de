"""Exact search: BLAS over every row picks candidates, the scoring kernel gives their scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimvec.index.base import blas_threads, top_k
from slimvec.scoring import blas_error_bound, inner_products, order


class ExactIndex:
    """Brute-force inner product over a float32 matrix kept in RAM."""

    name = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._data = np.empty((0, dim), dtype=np.float32)
        self._n = 0
        self._norm, self._norm_rows = 0.0, -1

    @classmethod
    def over(cls, vectors: np.ndarray) -> "ExactIndex":
        """An index that searches an existing (n, d) array without copying it."""
        self = cls(vectors.shape[1])
        self._data, self._n = vectors, len(vectors)
        self._norm, self._norm_rows = 0.0, -1
        return self

    @property
    def rows(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        return self._data[: self._n]

    def add(self, vectors: np.ndarray) -> None:
        """Append rows, growing capacity geometrically."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        need = self._n + len(vectors)
        if need > len(self._data):
            grown = np.empty((max(need, int(len(self._data) * 1.5) + 1024), self.dim), dtype=np.float32)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : need] = vectors
        self._n = need

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by inner product; rows not in `allowed` are excluded.

        BLAS picks candidates; their scores come from `scoring.inner_products`, so every stage reports the
        same float32 score for a row. The candidate list is wide enough that BLAS rounding cannot drop a row
        of the true top k (`scoring.blas_error_bound`), and ties go to the lower row (`scoring.order`).
        """
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if allowed is not None and allowed.sum() < self._n // 8:
            # Selective filter: score only the allowed rows.
            idx = np.flatnonzero(allowed[: self._n])
        else:
            idx = None
        data = self.vectors if idx is None else self.vectors[idx]
        n = len(data)
        if n == 0 or k <= 0:
            return top_k(np.zeros((len(q), 0), np.float32), k)
        with blas_threads(len(q)):
            blas = q @ data.T
        if allowed is not None and idx is None:
            blas[:, ~allowed[: self._n]] = -np.inf
        out_vals = np.full((len(q), k), -np.inf, np.float32)
        out_rows = np.full((len(q), k), -1, np.int64)
        max_norm = self._max_norm()
        for i, qi in enumerate(q):
            bound = 2 * blas_error_bound(self.dim, float(np.linalg.norm(qi)), max_norm)
            want = min(n, k + 16)
            while True:
                _, pos = top_k(blas[i : i + 1], want)
                pos = pos[0][pos[0] >= 0]
                exact = inner_products(data[pos], qi)
                o = order(exact, pos)[:k]
                # Stop once no row outside the candidates can beat the k-th exact score.
                if want >= n or len(o) < k or blas[i, pos[-1]] + bound < exact[o[-1]]:
                    break
                want = min(n, want * 4)
            rows = pos[o] if idx is None else idx[pos[o]]
            out_vals[i, : len(o)] = exact[o]
            out_rows[i, : len(o)] = rows
        return out_vals, out_rows

    def _max_norm(self) -> float:
        """Largest norm of the stored rows (it bounds any subset), measured once per row added."""
        if self._norm_rows != self._n:
            rows = self.vectors[max(self._norm_rows, 0) :]
            if len(rows):
                self._norm = max(self._norm, float(np.sqrt(np.einsum("ij,ij->i", rows, rows).max())))
            self._norm_rows = self._n
        return self._norm

    def ram_bytes(self) -> int:
        return self._n * self.dim * 4

    def save(self, directory: Path) -> None:
        """Nothing to save: rows live in the collection's vector file."""
