"""The candidate-index interface: rows in, top-k rows out."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    """Row-aligned search structure over the collection's vectors (row i = vector file row i)."""

    name: str

    @property
    def rows(self) -> int:
        """Number of rows indexed."""
        ...

    def add(self, vectors: np.ndarray) -> None:
        """Append rows, in order."""
        ...

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query, best first; rows outside the boolean mask `allowed` are never returned; -1 pads."""
        ...

    def ram_bytes(self) -> int:
        """Bytes this index keeps resident in RAM for search."""
        ...

    def save(self, directory: Path) -> None:
        """Persist atomically (write then rename) under `directory`."""
        ...


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-first top-k of each row of a (m, n) score matrix; -inf entries are returned as row -1."""
    m, n = scores.shape
    kk = min(k, n)
    if kk == 0:
        return np.full((m, k), -np.inf, np.float32), np.full((m, k), -1, np.int64)
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (m, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    rows = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    rows[~np.isfinite(vals)] = -1
    if kk < k:
        rows = np.pad(rows, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return vals, rows
