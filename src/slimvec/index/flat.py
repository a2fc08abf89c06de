"""Exact search: float32 inner products with BLAS over every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimvec.index.base import top_k


class ExactIndex:
    """Brute-force inner product over a float32 matrix kept in RAM."""

    name = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._data = np.empty((0, dim), dtype=np.float32)
        self._n = 0

    @classmethod
    def over(cls, vectors: np.ndarray) -> "ExactIndex":
        """An index that searches an existing (n, d) array without copying it."""
        self = cls(vectors.shape[1])
        self._data, self._n = vectors, len(vectors)
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
        """Exact top-k by inner product; rows not in `allowed` are excluded."""
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if allowed is not None and allowed.sum() < self._n // 8:
            # Selective filter: score only the allowed rows.
            idx = np.flatnonzero(allowed[: self._n])
            if len(idx) == 0:
                return top_k(np.zeros((len(q), 0), np.float32), k)
            vals, pos = top_k(q @ self.vectors[idx].T, k)
            return vals, np.where(pos >= 0, idx[np.maximum(pos, 0)], -1)
        scores = q @ self.vectors.T
        if allowed is not None:
            scores[:, ~allowed[: self._n]] = -np.inf
        return top_k(scores, k)

    def ram_bytes(self) -> int:
        return self._n * self.dim * 4

    def save(self, directory: Path) -> None:
        """Nothing to save: rows live in the collection's vector file."""
