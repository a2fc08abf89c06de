"""The vectors of a handle's most recent queries, kept in RAM when asked for: real queries to tune on.

An index's search knob (IVF nprobe, HNSW efSearch) is calibrated on probe queries; without the user's own, those
are midpoints of stored rows, which do not track real queries at scale (the 1M-row scale set: R@10 0.938 against
a 0.95 target; BENCHMARKS.md, "tuning on your own queries"). A server already sees the real queries, so it can
keep their vectors and tune on them (`Collection.keep_queries`, `slimvec serve --keep-queries N`, then
`POST .../tune {"recent": true}`), with no query file to collect. Only vectors are kept, no text, in RAM only
(nothing is written unless `tune` stores them as any tuning does), and nothing is kept unless asked for.
"""

from __future__ import annotations

import threading

import numpy as np

from slimvec.errors import ConfigError

MAX_KEPT = 100_000  # 38 MB of 384-d float32; tuning itself uses a seeded 1,000 of them (store.probes.MAX_QUERIES)


class RecentQueries:
    """A ring buffer of the last `capacity` query vectors, (capacity, dim) float32, oldest overwritten first.

    `add` costs a copy of the vectors (about a microsecond for one 384-d query); capacity 0 keeps nothing.
    Thread-safe: searches of several threads add while another reads."""

    def __init__(self, capacity: int = 0) -> None:
        self._lock = threading.Lock()
        self._buf: np.ndarray | None = None
        self._next = self._count = 0
        self.capacity = 0
        self.resize(capacity)

    def resize(self, capacity: int) -> None:
        """Keep the last `capacity` vectors from now on (0: keep none, and forget those kept). Raises ValueError
        for a capacity that is not a whole number from 0 to MAX_KEPT."""
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or not 0 <= capacity <= MAX_KEPT:
            raise ValueError(f"queries to keep must be a whole number from 0 to {MAX_KEPT:,}, got {capacity!r}")
        with self._lock:
            kept = self._ordered()[-capacity:] if capacity else None
            self.capacity, self._buf = int(capacity), None
            self._next = self._count = 0
            if kept is not None and len(kept):
                self._append(kept)

    def add(self, vectors: np.ndarray) -> None:
        """Keep these (m, dim) query vectors (the oldest kept make room)."""
        if not self.capacity:  # the common case, without the lock
            return
        v = np.asarray(vectors, np.float32)
        with self._lock:
            # Again under the lock: after a keep_queries(0) in another thread since the look above, the search
            # adding its query failed ("integer modulo by zero").
            if not self.capacity:
                return
            if self._buf is not None and v.shape[1] != self._buf.shape[1]:  # another model's space (a switch)
                self._buf, self._next, self._count = None, 0, 0
            self._append(v[-self.capacity:])

    def vectors(self) -> np.ndarray:
        """(n, dim) float32 copy of the kept vectors, oldest first (n <= capacity; (0, 0) when none)."""
        with self._lock:
            return self._ordered().copy()

    def __len__(self) -> int:
        return self._count

    def _append(self, v: np.ndarray) -> None:
        if self._buf is None:
            self._buf = np.zeros((self.capacity, v.shape[1]), np.float32)
        end = self._next + len(v)
        if end <= self.capacity:
            self._buf[self._next : end] = v
        else:  # wraps around
            split = self.capacity - self._next
            self._buf[self._next :] = v[:split]
            self._buf[: end - self.capacity] = v[split:]
        self._next = end % self.capacity
        self._count = min(self.capacity, self._count + len(v))

    def _ordered(self) -> np.ndarray:
        if self._buf is None:
            return np.zeros((0, 0), np.float32)
        if self._count < self.capacity:
            return self._buf[: self._count]
        return np.concatenate([self._buf[self._next :], self._buf[: self._next]])


class KeepsQueries:
    """`keep_queries` and `recent_queries` of a collection (one, or sharded) whose searches add their query
    vectors to its `_recent` RecentQueries."""

    _recent: RecentQueries

    def keep_queries(self, n: int) -> None:
        """Keep the vectors of the last `n` queries searched through this handle (those that run a dense stage),
        in RAM, to tune on real traffic with no query file: `col.tune(vectors=col.recent_queries())` (as `slimvec
        serve --keep-queries N` and `POST .../tune {"recent": true}` do). 0, the default, keeps none and forgets
        those kept. Vectors only, no text; nothing is written unless `tune` stores them. Raises ConfigError for n
        outside 0..100,000 (`MAX_KEPT`)."""
        try:
            self._recent.resize(n)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def recent_queries(self) -> np.ndarray:
        """(n, dim) float32 vectors of the queries kept by `keep_queries`, oldest first ((0, 0) when none)."""
        return self._recent.vectors()

    def _recent_info(self) -> dict[str, dict[str, int]]:
        """`info`'s "recent_queries" ({"kept", "capacity"}) while queries are kept; empty otherwise."""
        return {"recent_queries": {"kept": len(self._recent), "capacity": self._recent.capacity}} \
            if self._recent.capacity else {}
