"""The candidate-index interface: rows in, top-k rows out."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from slimvec.scoring import order


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
    """Best-first top-k of each row of a (m, n) score matrix, ties to the lower column (`scoring.order`).

    Returns (m, k) float32 scores and (m, k) int64 columns; -inf entries and padding come back as column -1.
    """
    scores = np.asarray(scores)
    m, n = scores.shape
    kk = min(k, n)
    vals = np.full((m, k), -np.inf, np.float32)
    rows = np.full((m, k), -1, np.int64)
    for i in range(m):
        if kk == 0:
            break
        s = scores[i]
        if kk < n:
            # Everything tied with the k-th best is kept, so the tie rule (not argpartition) decides.
            thr = s[np.argpartition(-s, kk - 1)[kk - 1]]
            cand = np.flatnonzero(s >= thr)
        else:
            cand = np.arange(n)
        picked = cand[order(s[cand], cand)[:kk]]
        vals[i, : len(picked)] = s[picked]
        rows[i, : len(picked)] = picked
    rows[~np.isfinite(vals)] = -1
    return vals, rows
