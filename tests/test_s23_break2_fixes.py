"""Faults found in session 23 by the breaker operating slimvec as a service: a write waiting on SQLite's write lock
held by another program ended in a traceback; exports to Qdrant and LanceDB left a part behind when a write
failed (a Qdrant part imported later as if whole), and reading a missing or busy Qdrant or LanceDB folder made
the folder or ended in a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fakes import FakeEncoder
from slimvec import Collection, Document
from slimvec.errors import CollectionError


def test_a_write_while_another_program_holds_the_database_write_lock_is_one_line_and_then_works(
        tmp_path: Path) -> None:
    from slimvec.store import store

    path = tmp_path / "c"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:
        col.add([Document("a", "alpha beta"), Document("b", "gamma delta")])
    other = sqlite3.connect(path / store.DB, isolation_level=None)  # e.g. a `sqlite3` shell inside BEGIN IMMEDIATE
    other.execute("BEGIN IMMEDIATE")
    try:
        with Collection.open(path, FakeEncoder()) as col:
            col.store.db.execute("PRAGMA busy_timeout = 200")  # the wait (60 s) is not what is tested, its end is
            for write in (lambda: col.add([Document("c", "epsilon")]), lambda: col.delete(["a"]),
                          lambda: col.upsert([Document("b", "changed text")])):
                with pytest.raises(CollectionError, match=r"slimvec\.db: another process has held the database's "
                                                          r"write lock for 0.2 s .*nothing was written"):
                    write()
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Collection.open(path, FakeEncoder()) as col:
        assert col.check() == []
        assert sorted(d["id"] for d in col.store.iter_documents()) == ["a", "b"]
        assert col.get("b").text == "gamma delta"
        col.add([Document("c", "epsilon")])  # the lock let go, the same write goes through
        assert len(col) == 3
