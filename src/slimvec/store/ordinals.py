"""Commit ordinals of a sharded collection's documents: the cross-shard form of slimvec's tie rule.

In one collection equal scores go to the lower row, i.e. the document committed first. Rows are per shard, so
the router keeps one global counter and gives every document it writes the next ordinal (an upsert gives a new
one, as it gives new rows in one collection). Comparing ordinals across shards then orders documents exactly as
their rows would be ordered had the same calls gone to one collection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ordinals (doc_id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counter (one INTEGER PRIMARY KEY CHECK (one = 1), next INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES (1, 0);
"""


class OrdinalTable:
    """doc id -> commit ordinal, in SQLite (WAL) at `path`; safe for several writing processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def assign(self, doc_ids: list[str]) -> None:
        """Give `doc_ids` the next ordinals, in list order, in one transaction (replacing earlier ones)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (start,) = self._db.execute("SELECT next FROM counter").fetchone()
            self._db.executemany("INSERT OR REPLACE INTO ordinals VALUES (?, ?)",
                                 [(d, start + i) for i, d in enumerate(doc_ids)])
            self._db.execute("UPDATE counter SET next = ?", (start + len(doc_ids),))

    def get(self, doc_ids: Iterable[str]) -> dict[str, int]:
        """Ordinals of the given ids that have one."""
        ids = list(dict.fromkeys(doc_ids))
        out: dict[str, int] = {}
        for s in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            part = ids[s : s + 500]
            q = f"SELECT doc_id, ordinal FROM ordinals WHERE doc_id IN ({','.join('?' * len(part))})"
            out.update(self._db.execute(q, part).fetchall())
        return out

    def issued(self) -> int:
        """The next ordinal to give: it changes with every adding write, by any process."""
        (n,) = self._db.execute("SELECT next FROM counter").fetchone()
        return int(n)

    def forget(self, doc_ids: list[str]) -> None:
        """Drop the ordinals of deleted documents."""
        with self._db:
            self._db.executemany("DELETE FROM ordinals WHERE doc_id = ?", [(d,) for d in doc_ids])

    def close(self) -> None:
        """Release the connection."""
        self._db.close()
