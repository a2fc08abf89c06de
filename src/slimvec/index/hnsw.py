"""Approximate search with a faiss HNSW graph over float32 vectors (inner product).

efSearch is fixed by the profile (`ef_search`) or calibrated on the collection's own rows
(`index.nprobe.calibrate_ef`, by the dense retriever); the graph itself: M=32, efConstruction=128."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from slimvec.atomic import replaced_file, write_json_atomic
from slimvec.index.base import tie_ordered, top_k

FILE = "hnsw.faiss"
SAVE_GAP = 256  # rows the saved graph may lack before a save rewrites it ...
SAVE_SHARE = 0.01  # ... or this share of the rows it holds, whichever is more (see HnswIndex.save)


class HnswIndex:
    """faiss IndexHNSWFlat; filtered search uses faiss's ID selector, or exact scoring when the filter is selective."""

    name = "hnsw"

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 128, ef_search: int = 128) -> None:
        self.dim = dim
        self.ef_search = ef_search
        self.calibration: dict[str, Any] | None = None  # index.nprobe.EfChoice.to_dict() when ef_search was calibrated
        self.index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self._params: tuple[int, Any] | None = None  # (efSearch, faiss.SearchParametersHNSW) reused across queries
        self._full_mask: np.ndarray | None = None  # the last read-only `allowed` mask found all True ...
        self._full_rows = 0  # ... over this many rows
        self._saved: tuple[Path, int] | None = None  # (directory, rows) of the graph file last saved or loaded

    @classmethod
    def load(cls, directory: Path, dim: int) -> "HnswIndex | None":
        """The saved index under `directory`, or None if absent or unreadable (it is rebuilt from vectors)."""
        path = directory / FILE
        if not path.exists() or (params := _saved_params(directory)) is None:
            return None
        try:
            idx = faiss.read_index(str(path))
        except Exception:  # noqa: BLE001 - a damaged derived file is rebuilt, never trusted
            return None
        if idx.d != dim:
            return None
        self = cls.__new__(cls)
        self.dim, self.index, self.ef_search = dim, idx, int(params.get("ef_search", 128))
        self.calibration, self._params, self._full_mask, self._full_rows = params.get("calibration"), None, None, 0
        self._saved = (Path(directory), int(idx.ntotal))
        return self

    @staticmethod
    def saved_calibration(directory: Path) -> tuple[int, dict[str, Any]] | None:
        """(efSearch, calibration) saved with the graph under `directory` (hnsw.json), or None (none saved,
        unreadable: the caller calibrates itself)."""
        params = _saved_params(directory)
        cal = None if params is None else params.get("calibration")
        try:
            return (int(params["ef_search"]), dict(cal)) if isinstance(cal, dict) else None
        except (ValueError, KeyError, TypeError):
            return None

    def saved_ahead(self, directory: Path, rows: int) -> "HnswIndex | None":
        """The graph saved under `directory`, when it holds at least `SAVE_GAP` rows (or `SAVE_SHARE`) more of
        the first `rows` committed rows than this one; else None. A handle catching up with another process's
        commits reads the graph that process saved instead of inserting every row itself: a bulk load of 100k
        rows into a served collection cost the server's next search minutes of inserts under its lock
        (benchmarks/catch_up.py). Any other file (fewer rows, more rows than committed, unreadable) is not used."""
        gap = max(SAVE_GAP, SAVE_SHARE * self.rows)
        if rows - self.rows < gap:
            return None
        try:  # its row count first: the graph file is read only when it is worth reading
            saved = int((_saved_params(directory) or {})["rows"])
        except (ValueError, KeyError, TypeError):
            return None
        if not self.rows + gap <= saved <= rows:
            return None
        fresh = HnswIndex.load(Path(directory), self.dim)
        return fresh if fresh is not None and self.rows < fresh.rows <= rows else None

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
        params = self._search_params(max(self.ef_search, k))
        if allowed is not None and self._full_mask is allowed and self._full_rows == n:
            allowed = None  # a read-only mask found full before (the row map's alive mask: ~1 us, not 50 per 1M rows)
        elif allowed is not None and allowed[:n].all():
            # every row allowed: a selector listing all of them costs ~1 ms per 5k rows, for nothing
            if not allowed.flags.writeable:
                self._full_mask, self._full_rows = allowed, n
            allowed = None
        if allowed is not None:
            idx = np.flatnonzero(allowed[:n]).astype(np.int64)
            if len(idx) == 0:
                return top_k(np.zeros((len(q), 0), np.float32), k)
            if len(idx) < max(2048, n // 50):
                vecs = self.index.reconstruct_batch(idx)
                vals, pos = top_k(q @ vecs.T, k)
                return vals, np.where(pos >= 0, idx[np.maximum(pos, 0)], -1)
            params = faiss.SearchParametersHNSW()  # its own object: the selector belongs to this call only
            params.efSearch = max(self.ef_search, k)
            params.sel = sel = faiss.IDSelectorBatch(idx)  # noqa: F841 - kept alive for the call
        dist, rows = self.index.search(q, k, params=params)
        if (rows < 0).any():
            dist = np.where(rows >= 0, dist, np.float32(-np.inf))
        return tie_ordered(dist, rows.astype(np.int64, copy=False))

    def _search_params(self, ef: int) -> Any:
        """faiss search parameters for efSearch `ef`, made once and reused (only read by faiss's search)."""
        if self._params is None or self._params[0] != ef:
            params = faiss.SearchParametersHNSW()
            params.efSearch = ef
            self._params = (ef, params)
        return self._params[1]

    def ram_bytes(self) -> int:
        # Vectors plus graph links (faiss stores int32 neighbour ids per level).
        links = faiss.vector_to_array(self.index.hnsw.neighbors).nbytes
        return self.rows * self.dim * 4 + links + faiss.vector_to_array(self.index.hnsw.offsets).nbytes

    def save(self, directory: Path) -> None:
        """Save the graph (hnsw.faiss, written to a temporary file and renamed into place) and hnsw.json (its
        rows, efSearch and calibration, replaced atomically).

        faiss writes a graph whole, so a save after every small commit would cost O(collection): 1.9 GB at 1M
        rows for a 10-document commit. The graph is therefore rewritten only when the rows it lacks on disk
        reach `SAVE_GAP` rows or `SAVE_SHARE` of those it holds; in between, only hnsw.json is written (the
        calibration), and a later open inserts the missing rows from the vector file, as it does after a crash
        (at most 1% of the rows: about 10,000 inserts at 1M rows). Raises OSError on a failed write (the previous
        files stay)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        covered = self._saved[1] if self._saved and self._saved[0] == directory and (directory / FILE).exists() else 0
        if not covered or not 0 <= self.rows - covered < max(SAVE_GAP, SAVE_SHARE * covered):
            self._write_graph(directory)
            covered = self.rows
        write_json_atomic(directory / "hnsw.json", {"rows": covered, "ef_search": self.ef_search,
                                                    "calibration": self.calibration})
        self._saved = (directory, covered)

    def _write_graph(self, directory: Path) -> None:
        with replaced_file(directory / FILE, directory / (FILE + ".tmp")) as tmp:
            try:
                faiss.write_index(self.index, str(tmp))
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            except RuntimeError as e:  # faiss reports a failed write as RuntimeError: name it as the OS would
                raise _write_error(e, tmp) from None


def _saved_params(directory: Path) -> dict[str, Any] | None:
    """hnsw.json under `directory` (the graph file's "rows", "ef_search", "calibration"), or None when absent,
    unreadable or not a JSON object: derived data, never trusted."""
    try:
        params = json.loads((Path(directory) / "hnsw.json").read_text())
    except (OSError, ValueError):
        return None
    return params if isinstance(params, dict) else None


def _write_error(e: RuntimeError, path: Path) -> OSError:
    """faiss's failed write as the OSError the OS gave it, with its errno: faiss ends its message with the
    C library's text for it ("... write error in PATH: 12 != 4096 (No space left on device)"), and callers tell
    a full disk by the errno (`cli.user_errors` says so in one line; `Collection._save_after_commit` logs the
    text, not faiss's source location). A message naming no OS error keeps faiss's text."""
    text = str(e)
    code = next((c for c in sorted(errno.errorcode) if f"({os.strerror(c)})" in text), None)
    if code is None:
        return OSError(f"{path}: the HNSW graph could not be written ({text})")
    return OSError(code, f"the HNSW graph could not be written ({os.strerror(code)})", str(path))
