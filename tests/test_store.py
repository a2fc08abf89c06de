"""The on-disk store: manifest checks, model mixing, commit atomicity and integrity checks (plumbing, fake encoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import CollectionError, IngestError
from slimvec.store import MANIFEST, VECTORS

DOCS = [Document(f"d{i}", f"document {i} " + "alpha beta gamma delta " * (i % 5 + 1), f"t{i}", {"i": i}) for i in range(30)]


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    c.add(DOCS)
    yield c
    c.close()


def test_refuses_newer_format(col):
    m = json.loads((col.path / MANIFEST).read_text())
    m["format_version"] = 99
    (col.path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CollectionError, match="format version 99 is not supported"):
        Collection.open(col.path)


def test_refuses_damaged_manifest(col):
    (col.path / MANIFEST).write_text("{not json")
    with pytest.raises(CollectionError, match="not valid JSON"):
        Collection.open(col.path)


@pytest.mark.parametrize("damage", ["garbage", "directory", "truncated"])
def test_a_damaged_database_is_one_collection_error(col, damage):
    db = col.path / "slimvec.db"
    col.close()
    for side in ("slimvec.db-wal", "slimvec.db-shm"):
        (col.path / side).unlink(missing_ok=True)
    if damage == "garbage":
        db.write_text("not a database\n")
    elif damage == "directory":
        db.unlink()
        db.mkdir()
    else:
        db.write_bytes(db.read_bytes()[:4096])  # the header page survives, the schema's pages do not
    with pytest.raises(CollectionError, match=r"slimvec\.db: cannot open the collection's database"):
        Collection.open(col.path)


def test_refuses_other_model(col):
    with pytest.raises(CollectionError, match="cannot be mixed"):
        Collection.open(col.path, encoder=FakeEncoder(name="other-model"))
    with pytest.raises(CollectionError, match="32-d"):
        Collection.open(col.path, encoder=FakeEncoder(dim=16, name="fake-bow"))


def test_create_refuses_existing(col):
    with pytest.raises(CollectionError, match="already exists"):
        Collection.create(col.path, encoder=FakeEncoder())


def test_orphan_rows_from_a_crashed_writer_are_ignored_and_cut(col):
    rows = col.store.committed_rows
    # Simulate a writer killed after appending vectors but before its SQLite commit.
    with open(col.path / VECTORS, "ab") as f:
        f.write(np.ones((7, 32), np.float32).tobytes())
    again = Collection.open(col.path, encoder=FakeEncoder())
    assert again.check() == []
    assert again.info()["rows"] == rows
    assert [h.id for h in again.search("alpha beta", k=30)] == [h.id for h in col.search("alpha beta", k=30)]
    again.add([Document("new", "fresh words here")])
    assert (col.path / VECTORS).stat().st_size == (rows + 1) * 32 * 4
    assert again.check() == []


def test_check_detects_corrupted_vectors(col):
    with open(col.path / VECTORS, "r+b") as f:
        f.seek(40)
        f.write(b"\xff\xff\xff\xff")
    problems = Collection.open(col.path, encoder=FakeEncoder()).check()
    assert any("checksum" in p for p in problems)


def test_check_detects_truncated_vectors(col):
    with open(col.path / VECTORS, "r+b") as f:
        f.truncate(100)
    problems = Collection.open(col.path, encoder=FakeEncoder()).check()
    assert any("vector file holds" in p for p in problems)


def test_failed_batch_stores_nothing(col):
    before = col.info()
    bad = [Document("ok-1", "fine"), Document("ok-2", "fine", metadata={"x": float("nan")})]
    with pytest.raises(IngestError, match="ok-2"):
        col.add(bad)
    with pytest.raises(IngestError, match="twice"):
        col.add([Document("z", "a"), Document("z", "b")])
    after = col.info()
    assert (after["documents"], after["rows"]) == (before["documents"], before["rows"])
    assert col.get("ok-1") is None


def test_concurrent_instances_see_each_others_commits(col):
    other = Collection.open(col.path, encoder=FakeEncoder())
    assert len(other.search("alpha", k=100)) == len(DOCS)
    col.add([Document("late", "omega omega omega")])
    assert other.search("omega omega omega", k=1)[0].id == "late"
    col.delete(["late"])
    assert "late" not in {h.id for h in other.search("omega omega omega", k=100)}


def test_upsert_in_batch_last_wins(col):
    col.upsert([Document("d1", "first"), Document("d1", "second version")])
    assert col.get("d1").text == "second version"
    assert col.check() == []


def test_info_counts_and_bytes(col):
    info = col.info()
    assert info["documents"] == 30 and info["chunks"] == info["rows"] >= 30
    assert info["ram_bytes"] >= info["rows"] * 32 * 4
    assert info["disk_bytes"] > (col.path / VECTORS).stat().st_size
    assert info["ram_bytes_per_doc"] == pytest.approx(info["ram_bytes"] / 30)


def test_documents_and_their_chunks_read_back_through_the_store(tmp_path):
    long = Document("long", " ".join(f"word{i}." for i in range(120)), "Long")
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=16), chunk_tokens=16, chunk_overlap=0) as c:
        c.add([DOCS[2], long, DOCS[1]])
        assert [d["id"] for d in c.store.iter_documents()] == ["d1", "d2", "long"]  # id order
        assert next(iter(c.store.iter_documents())) == {"id": "d1", "title": "t1", "text": DOCS[1].text,
                                                        "metadata": {"i": 1}}
        chunks = c.store.chunks_of("long")
        assert len(chunks) > 3
        # rows follow the commit order (d2's chunk first), spans tile the text left to right
        assert [r for r, _, _ in chunks] == list(range(1, 1 + len(chunks)))
        assert chunks[0][1] == 0 and all(a[2] <= b[1] for a, b in zip(chunks, chunks[1:]))
        assert all(long.text[s:e].strip() for _, s, e in chunks)
        assert c.store.chunks_of("nope") == []
        c.delete(["long"])
        assert c.store.chunks_of("long") == [] and [d["id"] for d in c.store.iter_documents()] == ["d1", "d2"]


def test_dead_rows_count_deletes_and_replacements_and_other_processes_see_them(tmp_path):
    enc = FakeEncoder()
    with Collection.create(tmp_path / "c", encoder=enc, chunk_tokens=8, chunk_overlap=0) as a, \
            Collection.open(tmp_path / "c", encoder=enc) as b:
        a.add([Document("one", "alpha beta " * 6), Document("two", "gamma delta"), Document("three", "eps zeta")])
        assert a.store.dead_rows == 0
        assert [h.id for h in b.search("gamma delta", k=3)][0] == "two"  # b knows every row now
        chunks_of_one = len(a.store.chunks_of("one"))
        assert chunks_of_one > 1
        a.delete(["one"])
        a.upsert([Document("two", "iota kappa")])  # the old version's chunk row dies
        assert a.store.dead_rows == chunks_of_one + 1
        # b saw none of it happen: its row map must drop exactly those rows on its next search
        assert {h.id for h in b.search("alpha beta gamma delta iota kappa eps", k=5)} == {"two", "three"}
        assert int(np.count_nonzero(b._rows.alive)) == 2


def test_a_collection_made_before_the_dead_counter_gets_it_on_open(tmp_path):
    import sqlite3

    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"word{i} other") for i in range(5)])
        col.delete(["d1", "d3"])
    db = sqlite3.connect(tmp_path / "c" / "slimvec.db")
    db.execute("DELETE FROM state WHERE key = 'dead'")  # as a collection written by an older slimvec
    db.commit()
    db.close()
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert col.store.dead_rows == 2
        col.delete(["d0"])
        assert col.store.dead_rows == 3 and len(col) == 2
