"""Faults found by session 22's second breaker in long-lived collections, each with the behaviour it now has."""

from __future__ import annotations

import fcntl
import random
import threading
from pathlib import Path

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import CollectionError
from slimvec.migrate import runner
from slimvec.migrate.state import has_migration, migration_dir

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def _docs(n: int = 120, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    return [Document(f"d{i}", " ".join(rng.choice(WORDS) for _ in range(12)), "", {"g": i % 3}) for i in range(n)]


def _error(call) -> str:
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the test reads its message
        return f"{type(e).__name__}: {e}"
    return "no error"


def _migrating(path: Path) -> FakeEncoder:
    """A collection of 120 documents with a migration to "fake-new" fitted and none re-embedded; its new model."""
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder(32)) as col:
        col.add(_docs())
    new = FakeEncoder(24, name="fake-new")
    runner.migrate(path, "fake-new", encoder=new, fit_only=True, sample=40)
    return new


# ---- a migrating collection took `enable` (and `set_calibrator`), then dropped them at the switch ----------------
# Writes to a collection under migration are refused until the switch, but `enable("bm25")` (what `slimvec index
# --bm25` calls first) and `set_calibrator` were not: they wrote the OLD generation's manifest or calibration.json,
# which the switch replaces by the target's, so the BM25 index a user enabled (and searched with meanwhile) was gone
# after the migration, silently. And `slimvec index --bm25` into it enabled BM25, then failed on the upsert: half
# applied.
def test_a_migrating_collection_refuses_enable_and_set_calibrator(tmp_path):
    from slimvec.search.calibration import Calibrator

    path = tmp_path / "col"
    new = _migrating(path)
    with Collection.open(path, encoder=new) as col:
        with pytest.raises(CollectionError, match="migration to 'fake-new' is under way"):
            col.enable("bm25")
        with pytest.raises(CollectionError, match="migration to 'fake-new' is under way"):
            col.set_calibrator("dense", Calibrator.__new__(Calibrator))
        assert col.manifest["retrievers"] == ["dense"]
    assert not (path / "calibration.json").exists()
    runner.reembed(path, encoder=new)
    with Collection.open(path, encoder=new) as col:  # enabled after the switch, it stays
        col.enable("bm25")
        assert [h.id for h in col.search("alpha beta", mode="bm25")]


# ---- two `slimvec migrate` runs on one collection at once -------------------------------------------------------
# Nothing kept a second run out: a second start removed the first one's staging folder under it (both failed, one
# with a bare FileNotFoundError traceback), and a second re-embedding of a fitted migration failed with "id 'd0' is
# already stored (use upsert to replace it)", advice about an add the user never made. A run now holds
# DIR/.migrate.lock, kept through switches, and a second run is refused at once in one line, nothing touched.
def test_a_second_migrate_while_one_runs_is_refused_in_one_line(tmp_path):
    path = tmp_path / "col"
    new = _migrating(path)
    lock = open(path / ".migrate.lock", "a+")  # what a running `slimvec migrate` holds (another process)
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(CollectionError, match="another `slimvec migrate` is running on this collection"):
            runner.migrate(path, "fake-new", encoder=new, batch=4)
        with pytest.raises(CollectionError, match="another `slimvec migrate` is running"):
            runner.reembed(path, encoder=new)
        assert has_migration(path) and Collection.open(path, encoder=new).target.store.counts()["documents"] < 120
    finally:
        lock.close()
    assert runner.migrate(path, "fake-new", encoder=new, batch=4)["switched"]
    assert (path / ".migrate.lock").exists()  # kept through the switch, as the other lock files
    (tmp_path / "empty").mkdir()  # no collection: refused in the usual words, no lock file left behind
    for where in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(CollectionError, match="no slimvec collection here"):
            runner.migrate(where, "fake-new", encoder=new)
    assert not (tmp_path / "empty" / ".migrate.lock").exists() and not (tmp_path / "absent").exists()


def test_a_second_migrate_start_leaves_the_first_ones_staging_folder(tmp_path):
    path = tmp_path / "col"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder(32)) as col:
        col.add(_docs())
    new = FakeEncoder(24, name="fake-new")
    seen = []

    class Second(FakeEncoder):
        """The first run's new model: while it encodes the sample, a second run starts."""

        def encode_documents(self, texts, progress=False):
            if not seen:  # another thread stands for another process (flock is per open file)
                second = threading.Thread(target=lambda: seen.append(_error(
                    lambda: runner.migrate(path, "fake-new", encoder=new, batch=4))))
                second.start()
                second.join()
                assert seen and "another `slimvec migrate` is running" in seen[0]
                assert (migration_dir(path) / "target" / "manifest.json").is_file()
            return super().encode_documents(texts)

    out = runner.migrate(path, "fake-new", encoder=Second(24, name="fake-new"), batch=8, sample=40)
    assert seen and out["switched"]
    with Collection.open(path, encoder=new) as col:
        assert len(col) == 120 and col.check() == []


# ---- a sharded upsert of documents stored as given renumbered their ties ----------------------------------------
# One collection leaves such a document as it is (its rows, so its place in ties: the tie rule of slimvec.scoring);
# a sharded collection gave it a new commit ordinal anyway, so it fell behind every later document in ties, and its
# shard's own row order then disagreed with the ordinals: a hybrid search showed d3..d7 where one collection shows
# d0..d4, and a dense or BM25 search lost d6 from its top 5. The distributed ingest already kept the ordinal.
def test_a_sharded_upsert_of_unchanged_documents_keeps_their_place_in_ties(tmp_path):
    from slimvec.distributed import create_sharded

    tied = [Document(f"d{i}", "same words here", "", {}) for i in range(8)]
    docs = tied + [Document(f"x{i}", f"other text {i}") for i in range(8)]
    plain = Collection.create(tmp_path / "plain", profile="hybrid", encoder=FakeEncoder())
    sharded = create_sharded(tmp_path / "sh", shards=3, profile="hybrid", encoder=FakeEncoder())
    try:
        for col in (plain, sharded):
            col.add(docs)
        before = sharded.ordinals.get(d.id for d in tied)
        for calls in ([tied[:3]], [tied[:3], [Document("d1", "same words here", "", {"v": 1})], tied[4:6]]):
            for col in (plain, sharded):
                for call in calls:
                    col.upsert(call)
            for mode in (None, "bm25", "dense"):
                want = [h.id for h in plain.search("same words", k=5, mode=mode)]
                assert [h.id for h in sharded.search("same words", k=5, mode=mode)] == want, (calls, mode)
            if len(calls) == 1:  # only unchanged documents so far: not one ordinal given
                assert sharded.ordinals.get(d.id for d in tied) == before
        assert [h.id for h in plain.search("same words", k=8, mode="dense")] == \
            ["d0", "d2", "d3", "d4", "d5", "d6", "d7", "d1"]  # the changed one (metadata) goes last, as it should
    finally:
        plain.close()
        sharded.close()


# ---- get() dropped a document's given sections, so upserting it back re-cut the text -----------------------------
# `Collection.get` returned the document without its sections (sections=None: "let the chunker cut it"), so the
# usual way to change a field, `upsert([replace(col.get(id), metadata=...)])`, silently turned a sectioned document
# into token windows: section hits lost their section, text outside every section became searchable, and even an
# upsert of `get`'s document as it was re-encoded it and left its rows dead.
def test_get_keeps_given_sections_so_an_upsert_of_it_keeps_them(tmp_path):
    from dataclasses import replace

    from slimvec.documents import Section

    text = "alpha beta gamma delta. epsilon zeta eta theta. outside words kappa lambda"
    secs = (Section("a", 0, 23, ("Intro",)), Section("b", 24, 47, ("Intro", "More")))
    long_text = " ".join(WORDS * 6)  # one section longer than the model's 16 tokens: cut into several chunks
    long_secs = (Section("whole", 0, len(long_text), ("Long",)),)
    sharded_too = []
    from slimvec.distributed import create_sharded

    with Collection.create(tmp_path / "col", profile="exact-f32", encoder=FakeEncoder(max_tokens=16)) as col:
        sharded = create_sharded(tmp_path / "sh", shards=2, profile="exact-f32", encoder=FakeEncoder(max_tokens=16))
        try:
            for c in (col, sharded):
                c.add([Document("s", text, "T", {"v": 1}, sections=secs),
                       Document("l", long_text, "", {}, sections=long_secs), Document("p", "plain words")])
                assert c.get("s").sections == secs and c.get("p").sections is None
                assert c.get("l").sections == long_secs and c.get("l") == Document("l", long_text, "", {}, long_secs)
                rows = c.info()["rows"]
                c.upsert([c.get("s"), c.get("l"), c.get("p")])  # stored as given: nothing re-encoded, no dead row
                assert c.info()["rows"] == rows and c.info()["dead_rows"] == 0
                c.upsert([replace(c.get("s"), metadata={"v": 2})])
                hits = c.search("epsilon zeta", unit="section", k=5, filter={"v": 2})
                assert [(h.id, h.section) for h in hits] == [("s", "b"), ("s", "a")]
                # text outside every section is not indexed: no chunk of it reaches past section b
                assert [h.chunk_end for h in c.search("outside kappa", k=5, filter={"v": 2})] == [23]
                sharded_too.append(c.get("s"))
        finally:
            sharded.close()
    assert sharded_too[0] == sharded_too[1] == Document("s", text, "T", {"v": 2}, secs)


# ---- a document in a shard that does not own it: search finds it, get and delete never do, check said ok ------------
# A shard directory is an ordinary collection, so `slimvec index ... -c DIR/shards/001` (or a copy into it) stores a
# document its router routes elsewhere: searches find it, `get` and `delete` ask its owner and answer None / 0, the
# same id added through the router is a second document (search showed 'z0' twice), and `check` answered ok.
def test_check_reports_documents_stored_in_a_shard_that_does_not_own_them(tmp_path):
    from slimvec.distributed import create_sharded
    from slimvec.distributed.router import shard_of

    path = tmp_path / "sh"
    with create_sharded(path, shards=3, profile="exact-f32", encoder=FakeEncoder()) as sharded:
        sharded.add([Document(f"d{i}", f"text {i}") for i in range(12)])
        assert sharded.check() == []
    strays = [i for i in (f"z{n}" for n in range(200)) if shard_of(i, 3) != 1][:5]
    with Collection.open(path / "shards" / "001", encoder=FakeEncoder()) as shard:
        shard.routed_by = None  # as a slimvec before the refusal below wrote it (or a copy into the folder)
        shard.add([Document(i, "stray words") for i in strays])
    with Collection.open(path, encoder=FakeEncoder()) as sharded:
        assert sharded.get(strays[0]) is None and strays[0] in {h.id for h in sharded.search("stray words", k=3)}
        problems = sharded.check()
    owners = sorted({shard_of(i, 3) for i in strays})
    assert len(problems) == len(owners) and all(p.startswith("shard 1 (shards/001): ") for p in problems)
    assert f"owned by shard {owners[0]}" in problems[0] and repr(strays[0]) in problems[0]
    assert sum(int(p.split(": ")[1].split(" ")[0]) for p in problems) == len(strays)


# ---- a sharded collection's info lacked what tells whether to compact -----------------------------------------------
# One collection's info shows dead_rows, dead_share and reclaimable_disk_bytes (docs/architecture.md); a sharded
# one summed dead_rows only, so `slimvec info` gave no share or bytes to decide on `slimvec compact` by.
def test_sharded_info_shows_dead_share_and_reclaimable_bytes(tmp_path):
    from slimvec.distributed import create_sharded

    with create_sharded(tmp_path / "sh", shards=3, profile="exact-f32", encoder=FakeEncoder()) as sharded:
        sharded.add(_docs(60))
        sharded.delete([f"d{i}" for i in range(0, 60, 3)])
        info = sharded.info()
        per = info["shards"]
        assert info["dead_rows"] == sum(s["dead_rows"] for s in per) > 0
        assert info["reclaimable_disk_bytes"] == sum(s["reclaimable_disk_bytes"] for s in per) > 0
        assert info["dead_share"] == round(info["dead_rows"] / info["rows"], 4)
        sharded.compact()
        info = sharded.info()
        assert (info["dead_rows"], info["dead_share"], info["reclaimable_disk_bytes"]) == (0, 0.0, 0)


def test_a_shard_opened_on_its_own_refuses_adds_and_keeps_its_other_work(tmp_path):
    from typer.testing import CliRunner

    from slimvec.cli import app
    from slimvec.distributed import create_sharded

    path = tmp_path / "sh"
    with create_sharded(path, shards=2, profile="exact-f32", encoder=FakeEncoder()) as sharded:
        sharded.add(_docs(40))
    shard_dir = path / "shards" / "001"
    with Collection.open(shard_dir, encoder=FakeEncoder()) as shard:
        held = len(shard)
        stored = shard.store.document_ids_from(0)[0][1]
        for write in (lambda: shard.add([Document("new", "stray words")]),
                      lambda: shard.upsert([Document(stored, "changed words")]),
                      lambda: shard.add_encoded([Document("new", "stray")], [], FakeEncoder().encode_documents([])),
                      lambda: shard.enable("bm25")):
            with pytest.raises(CollectionError, match=f"is a shard of the sharded collection {path}; add, upsert"):
                write()
        assert len(shard) == held and shard.manifest["retrievers"] == ["dense"]
        assert shard.delete([stored]) == 1 and shard.compact()["compacted"]  # its own upkeep stays allowed
        assert shard.search("river", k=3) and shard.check() == []
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"id": "cli", "text": "added from the command line"}\n')
    result = CliRunner().invoke(app, ["index", str(jsonl), "-c", str(shard_dir)])
    assert result.exit_code != 0 and "is a shard of the sharded collection" in result.output
    with Collection.open(path, encoder=FakeEncoder()) as sharded:  # through the router, writes are routed as ever
        assert sharded.add([Document("new", "routed words")]) == 1 and sharded.get("new") is not None
        assert sharded.check() == [] and len(sharded) == 40



def test_a_missing_vector_file_is_a_one_line_collection_error_naming_check(tmp_path):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder()) as col:
        col.add(_docs(20))
    (path / "vectors" / "float32.bin").unlink()
    with pytest.raises(CollectionError, match=r"float32\.bin: missing, while \d+ rows are committed; run `slimvec "
                                              r"check`"):
        with Collection.open(path, encoder=FakeEncoder()) as col:
            col.search("doc", k=3)
