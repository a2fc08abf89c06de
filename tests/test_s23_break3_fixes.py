"""Faults found by the session 23 breaker s23-break3 in scroll, count, delete by filter and field indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fakes import FakeEncoder, registered_encoders

from slimvec import Collection, Document
from slimvec.errors import BusyError, ConfigError, FilterError

DOCS = [Document(f"d{i:02d}", f"text {i}", metadata={"f": i % 3}) for i in range(30)]


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "col", encoder=FakeEncoder(dim=8))
    c.add(DOCS)
    yield c
    c.close()


@pytest.mark.parametrize("limit", [2**63 - 1, 2**63, 10**30])
def test_scroll_with_a_page_size_past_sqlites_integers_lists_every_document(col, limit):
    # Qdrant takes any page size; SQLite's LIMIT took none past 2**63 - 2 (OverflowError traceback).
    docs, nxt = col.scroll(limit=limit)
    assert [d.id for d in docs] == [d.id for d in DOCS] and nxt is None
    docs, _ = col.scroll({"f": 1}, limit=limit, offset="d05")
    assert [d.id for d in docs] == [d.id for d in DOCS[5:] if d.metadata["f"] == 1]


def test_scroll_from_an_offset_holding_a_lone_surrogate_is_one_line(col):
    with pytest.raises(ConfigError, match="offset .* invalid Unicode"):
        col.scroll(offset="d0\ud800")


@pytest.mark.parametrize("flt", [{1: "a"}, {"f": {1: 2}}, {"$and": [{None: 1}]}, {"$not": {("f",): 1}},
                                 {"$or": [{"f": 1}, {"f": {2.0: 1}}]}])
@pytest.mark.parametrize("indexed", [False, True])
def test_a_filter_key_that_is_not_text_is_a_filter_error_everywhere(col, flt, indexed):
    # A Python dict may hold any hashable key; each one was read as text (AttributeError: no startswith).
    if indexed:
        col.create_field_index("f")
    for call in (col.count, lambda f: col.scroll(f), lambda f: col.delete(filter=f)):
        with pytest.raises(FilterError, match="filter keys are text"):
            call(flt)
    with pytest.raises((FilterError, ConfigError)):  # search's options check a top-level key first
        col.search("text", filter=flt)
    assert len(col) == len(DOCS)


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as a `sqlite3` shell inside a transaction would
    return other


@pytest.mark.parametrize("by", ["filter", "ids"])
def test_a_sharded_delete_with_one_shard_failing_says_what_the_others_deleted(tmp_path, by):
    """One shard's write lock held elsewhere: its error said "nothing was written" while the shards before it had
    deleted, the shards after it were never asked, and the deleted ids kept their ordinals."""
    from slimvec.distributed.sharded import create_sharded

    enc = FakeEncoder(dim=8)
    with registered_encoders(enc):
        create_sharded(tmp_path / "sh", 3, model=enc.name).close()
        with Collection.open(tmp_path / "sh") as sh:
            sh.add(DOCS)
            doomed = [d.id for d in DOCS if d.metadata["f"] == 0]
            stuck = sh.shards[1].core.col.store
            stuck.db.execute("PRAGMA busy_timeout = 100")
            held_there = [i for i in doomed if sh.shard_for(i) == 1]
            assert held_there and len(held_there) < len(doomed)
            other = _hold_write_lock(stuck.path / "slimvec.db")
            try:
                with pytest.raises(BusyError) as e:
                    sh.delete(filter={"f": 0}) if by == "filter" else sh.delete(doomed)
            finally:
                other.execute("ROLLBACK")
                other.close()
            deleted = len(doomed) - len(held_there)
            assert f"shard 1 ({sh.router['shards'][1]}) could not delete" in str(e.value)
            assert f"the other shards deleted {deleted} documents" in str(e.value)
            # every other shard deleted its part, and forgot the ordinals of exactly those
            assert sorted(d.id for d in sh.scroll({"f": 0}, limit=100)[0]) == sorted(held_there)
            assert sorted(sh.ordinals.get(doomed)) == sorted(held_there)
            assert (sh.delete(filter={"f": 0}) if by == "filter" else sh.delete(doomed)) == len(held_there)
            assert sh.count({"f": {"$in": [1, 2]}}) == len(DOCS) - len(doomed) and not sh.ordinals.get(doomed)
            assert sh.check() == []


@pytest.mark.parametrize("indexed", [False, True])
def test_an_in_list_of_thousands_of_values_and_a_wide_or_are_evaluated(col, indexed):
    """$in takes up to 10,000 values (delete by filter points to {"_id": {"$in": [...]}} for ids), but each was one
    more level of a flat OR chain: from 999 values on, SQLite refused the filter ("Expression tree is too large")."""
    if indexed:
        col.create_field_index("f")
    many = list(range(10_000))
    assert col.count({"f": {"$in": many}}) == len(DOCS) and col.count({"f": {"$nin": many}}) == 0
    assert col.count({"$or": [{"f": v} for v in range(2_000)]}) == len(DOCS)
    assert col.count({"$and": [{"f": {"$ne": v}} for v in range(3, 2_000)]}) == len(DOCS)
    assert len(col.search("text", k=3, filter={"f": {"$in": many}})) == 3
    ids = [f"d{i:02d}" for i in range(0, 30, 2)] + [f"x{i}" for i in range(5_000)]
    assert col.delete(filter={"_id": {"$in": ids}}) == 15
    assert [d.id for d in col.scroll(limit=100)[0]] == [f"d{i:02d}" for i in range(1, 30, 2)]


@pytest.mark.parametrize("fields", [[1], b"f", ["f", 2], None, [None]])
def test_a_sharded_collection_refuses_field_names_that_are_not_text_as_one_collection_does(tmp_path, fields):
    # The router iterated bytes into numbers and matched an int against its name pattern: "expected string or
    # bytes-like object, got 'int'" for b"f", where one collection names the argument.
    from slimvec.distributed.sharded import create_sharded

    enc = FakeEncoder(dim=8)
    with registered_encoders(enc):
        create_sharded(tmp_path / "sh", 2, model=enc.name).close()
        with Collection.open(tmp_path / "sh") as sh, Collection.create(tmp_path / "one", encoder=enc) as one:
            for call in ("create_field_index", "drop_field_index"):
                with pytest.raises(TypeError) as mine:
                    getattr(one, call)(fields)
                with pytest.raises(TypeError, match="^fields must be") as theirs:
                    getattr(sh, call)(fields)
                assert str(theirs.value) == str(mine.value)
            assert sh.field_indexes() == []


def test_scroll_takes_a_numpy_integer_page_size_as_search_takes_k(col, tmp_path):
    # np.int64(2) was refused as not "a whole number >= 1, got np.int64(2)"; search's k=np.int64(3) works.
    import numpy as np

    docs, nxt = col.scroll({"f": {"$in": [0, 1]}}, limit=np.int64(2))
    assert [d.id for d in docs] == ["d00", "d01"] and nxt == "d03"
    for bad in (np.int64(0), np.bool_(True), True, 2.0, "2"):
        with pytest.raises(ConfigError, match="limit must be a whole number >= 1"):
            col.scroll(limit=bad)
    from slimvec.distributed.sharded import create_sharded

    enc = FakeEncoder(dim=8)
    with registered_encoders(enc):
        create_sharded(tmp_path / "sh", 2, model=enc.name).close()
        with Collection.open(tmp_path / "sh") as sh:
            sh.add(DOCS)
            assert sh.scroll({"f": {"$in": [0, 1]}}, limit=np.int32(2)) == (docs, nxt)
