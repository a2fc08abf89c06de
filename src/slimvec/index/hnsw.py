"""Approximate search with a faiss HNSW graph over float32 vectors (inner product)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np

from slimvec.index.base import top_k

FILE = "hnsw.faiss"


class HnswIndex:
    """faiss IndexHNSWFlat; filtered search uses faiss's ID selector, or exact scoring when the filter is selective."""

    name = "hnsw"

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 128, ef_search: int = 128) -> None:
        self.dim = dim
        self.ef_search = ef_search
        self.index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction

    @classmethod
    def load(cls, directory: Path, dim: int) -> "HnswIndex | None":
        """The saved index under `directory`, or None if absent or unreadable (it is rebuilt from vectors)."""
        path = directory / FILE
        if not path.exists():
            return None
        try:
            idx = faiss.read_index(str(path))
            params = json.loads((directory / "hnsw.json").read_text())
        except Exception:  # noqa: BLE001 - a damaged derived file is rebuilt, never trusted
            return None
        if idx.d != dim:
            return None
        self = cls.__new__(cls)
        self.dim, self.index, self.ef_search = dim, idx, int(params.get("ef_search", 128))
        return self

    @property
    def rows(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Insert rows into the graph."""
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k; with a selective filter, exact scoring of the allowed rows."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        n = self.rows
        if n == 0:
            return top_k(np.zeros((len(q), 0), np.float32), k)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, k)
        if allowed is not None and allowed[:n].all():
            allowed = None  # every row allowed: a selector listing all of them costs ~1 ms per 5k rows, for nothing
        if allowed is not None:
            idx = np.flatnonzero(allowed[:n]).astype(np.int64)
            if len(idx) == 0:
                return top_k(np.zeros((len(q), 0), np.float32), k)
            if len(idx) < max(2048, n // 50):
                vecs = self.index.reconstruct_batch(idx)
                vals, pos = top_k(q @ vecs.T, k)
                return vals, np.where(pos >= 0, idx[np.maximum(pos, 0)], -1)
            sel = faiss.IDSelectorBatch(idx)
            params.sel = sel
        dist, rows = self.index.search(q, k, params=params)
        dist = np.where(rows >= 0, dist, -np.inf).astype(np.float32)
        return dist, rows.astype(np.int64)

    def ram_bytes(self) -> int:
        # Vectors plus graph links (faiss stores int32 neighbour ids per level).
        links = faiss.vector_to_array(self.index.hnsw.neighbors).nbytes
        return self.rows * self.dim * 4 + links + faiss.vector_to_array(self.index.hnsw.offsets).nbytes

    def save(self, directory: Path) -> None:
        """Write the graph to a temporary file, then rename it into place."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (FILE + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, directory / FILE)
        (directory / "hnsw.json").write_text(json.dumps({"rows": self.rows, "ef_search": self.ef_search}))
