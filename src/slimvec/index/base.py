"""The candidate-index interface: rows in, top-k rows out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from slimvec.scoring import order

# A collection search asks each retriever for this many rows per document it must return, widening by the same
# factor while chunks of one document fill them (`search.ranking.doc_ranking`): a k=10 query reads the top 40
# rows. Calibrations (`index.nprobe`) measure an index at that depth, since its recall there is what a user gets.
ROWS_PER_RESULT = 4

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
    if kk == 0:
        return vals, rows
    if kk < n:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        # argpartition picks arbitrarily among values tied with the k-th best; only the rows where such a tie
        # crosses the cut are redone by the tie rule (one vectorised pass finds them).
        thr = np.take_along_axis(scores, part, axis=1).min(axis=1)
        for i in np.flatnonzero((scores >= thr[:, None]).sum(axis=1) > kk):
            cand = np.flatnonzero(scores[i] >= thr[i])
            part[i] = cand[order(scores[i, cand], cand)[:kk]]
    else:
        part = np.broadcast_to(np.arange(n), (m, n))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # Each row by the tie rule: non-finite last, then higher score, then lower column.
    pad = ~np.isfinite(part_scores)
    best = np.lexsort((part, np.where(pad, np.inf, -part_scores.astype(np.float64))), axis=-1)
    vals[:, :kk] = np.take_along_axis(part_scores, best, axis=1)
    rows[:, :kk] = np.take_along_axis(part, best, axis=1)
    rows[~np.isfinite(vals)] = -1
    return vals, rows


def tie_ordered(vals: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A library's (m, k) top-k (scores, rows), each query's equal scores put in the tie rule's row order.

    faiss returns the rows of equal scores in its heap's order (highest row first), not `scoring.order`'s; only
    queries whose list holds equal neighbours are re-sorted. Which tied rows a library kept at the cut of k is
    its choice: callers ask for more than they return (`search.ranking` asks 4 k). Arrays are changed in place.
    """
    ties = vals[:, 1:] == vals[:, :-1]
    if not ties.any():  # the usual case, ~1 us: a lone query's latency is ~0.1 ms
        return vals, rows
    for i in np.flatnonzero((ties & (rows[:, 1:] >= 0)).any(axis=1)):
        o = order(vals[i], rows[i])
        vals[i], rows[i] = vals[i][o], rows[i][o]
    return vals, rows


_blas: Any = None  # (process-wide, per-thread) threadpoolctl controllers, made at first use (after BLAS loads)
_blas_lock = threading.Lock()
_blas_users = 0  # lone queries inside `blas_threads` now, in every thread
_blas_limiter: Any = None  # what the first of them set on the process-wide pools; restored by the last to leave


@contextmanager
def blas_threads(n_queries: int) -> Iterator[None]:
    """One BLAS thread for the enclosed numpy products when they serve a lone query (threadpoolctl), as
    `codecs.base.faiss_threads` does for faiss: OpenBLAS splits a (1 x d) @ (d x n) product across its
    threads, and on a busy 2-core machine each call waited for the second one (5,000 rows: 1.5 ms with 2
    threads, 0.4 ms with 1; benchmarks/peers.py measured exact-f32 p50 12-28 ms against 0.85 ms).

    A pthreads OpenBLAS (numpy's wheels) has one process-wide pool, so lone queries in several threads at once (a
    server) share one setting, counted: the first to enter sets one thread, the last to leave restores what it
    found, and a batch running in another thread meanwhile is single-threaded too. Each entering with
    threadpoolctl's `limit` saved the setting it found: a query entering while another held 1 saved 1 and put it
    back after the other had restored 2, and BLAS stayed single-threaded for the rest of the process (tune's
    exact truth, batch searches, codec fits). threadpoolctl lets one "controlling" thread change such a pool, so
    control is let go after each change. BLAS libraries whose setting is per thread (OpenMP builds, such as
    faiss's bundled OpenBLAS) are limited in the calling thread only, as before."""
    global _blas, _blas_users, _blas_limiter
    if n_queries != 1:
        yield
        return
    with _blas_lock:
        if _blas is None:
            _blas = _blas_controllers()
        shared, local = _blas
        if shared is not None:
            if _blas_users == 0:
                _blas_limiter = shared.limit(limits=1)
                _release_blas_control()
            _blas_users += 1
    try:
        with local.limit(limits=1) if local is not None else nullcontext():
            yield
    finally:
        if shared is not None:
            with _blas_lock:
                _blas_users -= 1
                if _blas_users == 0:
                    _blas_limiter.restore_original_limits()
                    _release_blas_control()
                    _blas_limiter = None


def _blas_controllers() -> tuple[Any, Any]:
    """(process-wide, per-thread) BLAS libraries loaded now, as threadpoolctl controllers (None: none of that
    kind). Only a non-OpenMP OpenBLAS has one pool for the whole process (threadpoolctl's controlling-thread rule)."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    shared = [c.filepath for c in blas.lib_controllers
              if c.internal_api == "openblas" and getattr(c, "threading_layer", None) != "openmp"]
    local = [c.filepath for c in blas.lib_controllers if c.filepath not in shared]
    return (blas.select(filepath=shared) if shared else None), (blas.select(filepath=local) if local else None)


def _release_blas_control() -> None:
    import threadpoolctl

    controller = getattr(threadpoolctl, "OpenBLASController", None)  # threadpoolctl >= 3.6 only
    if controller is not None:
        controller.clear_controlling_thread()
