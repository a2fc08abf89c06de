"""A retriever kept outside slimvec, for the registry test: it ranks rows by commit order (first rows first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class FirstRows:
    name = "first-rows"

    def __init__(self) -> None:
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    def sync(self, store) -> None:
        self._rows = store.committed_rows

    def search(self, query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(allowed[: self._rows])[:k]
        scores = -rows.astype(np.float32)
        pad = k - len(rows)
        return np.pad(scores, (0, pad), constant_values=-np.inf), np.pad(rows, (0, pad), constant_values=-1)

    def ram_bytes(self) -> int:
        return 0

    def save(self, directory: Path) -> None:
        pass


def build(store, encoder) -> FirstRows:
    return FirstRows()
