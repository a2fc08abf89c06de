"""Faults found by session 23's breaker (documentation against the product, the Python API under threads), each
with the behaviour it now has."""

from __future__ import annotations

import json
import re

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import CollectionError, ConfigError
from slimvec.search.calibration import Calibrator


def _words_collection(path, profile="hybrid", n=60):
    col = Collection.create(path, encoder=FakeEncoder(), profile=profile)
    col.add([Document(f"d{i}", f"alpha beta word{i} gamma{i % 7} delta{i % 13}") for i in range(n)])
    return col


_GOOD = {"mode": "dense", "used": [0], "mean": [0.5], "scale": [0.2], "coef": [2.0], "intercept": 0.0,
         "threshold": 0.5}


# ---- calibrators: set_calibrator stored anything, and a hand-edited calibration.json was read as it stood ----------
# A calibrator of mismatched lengths, a feature number past the three features or a threshold outside 0-1 was
# stored, then failed every later min_relevance search (a numpy traceback, or "min_relevance must be between 0
# and 1, got 1.5" for an "auto" the user gave); one fitted on BM25 scores stored for dense cut every hit without a
# word; a mode the collection cannot run was stored and never used; and an object that was no Calibrator was kept
# in memory although saving it failed, so every later search of that handle failed.
@pytest.mark.parametrize("mode, calibrator, message", [
    ("dense", dict(_GOOD), "must be a slimvec.search.calibration.Calibrator, not dict"),
    ("dense", Calibrator(**{**_GOOD, "mode": "bm25"}), "fitted on search mode 'bm25', not 'dense'"),
    ("dnese", Calibrator(**{**_GOOD, "mode": "dnese"}), "cannot calibrate search mode 'dnese': this collection runs "
                                                        "dense, bm25, hybrid"),
    ("dense", Calibrator(**{**_GOOD, "threshold": 2.0}), "threshold must be a number between 0 and 1, got 2.0"),
    ("dense", Calibrator(**{**_GOOD, "threshold": float("nan")}), "threshold must be a number between 0 and 1"),
    ("dense", Calibrator(**{**_GOOD, "used": [0, 1]}), "mean must hold 2 finite numbers, one per used feature"),
    ("dense", Calibrator(**{**_GOOD, "used": [5]}), "used must list distinct feature numbers from 0 to 2"),
    ("dense", Calibrator(**{**_GOOD, "scale": [0.0]}), "scale must be > 0"),
    ("dense", Calibrator(**{**_GOOD, "coef": [-1.0]}), "coef must be >= 0"),
    ("dense", Calibrator(**{**_GOOD, "intercept": "x"}), "intercept must be a finite number"),
])
def test_set_calibrator_refuses_what_cannot_calibrate_the_mode_and_changes_nothing(tmp_path, mode, calibrator, message):
    col = _words_collection(tmp_path / "c")
    col.set_calibrator("dense", Calibrator(**_GOOD))
    before = (tmp_path / "c" / "calibration.json").read_text()
    with pytest.raises(ConfigError, match=re.escape(message)):
        col.set_calibrator(mode, calibrator)
    assert (tmp_path / "c" / "calibration.json").read_text() == before
    assert col.calibrators == {"dense": Calibrator(**_GOOD)}
    assert len(col.search("alpha", k=10, mode="dense", min_relevance="auto")) == 10  # still searches as before
    col.close()


@pytest.mark.parametrize("entry, problem", [
    ({**_GOOD, "used": [0, 1]}, "mean must hold 2 finite numbers"),
    ({**_GOOD, "threshold": 1.5}, "threshold must be a number between 0 and 1, got 1.5"),
    ({**_GOOD, "used": [7]}, "used must list distinct feature numbers"),
    ({**_GOOD, "intercept": "x"}, "intercept must be a finite number"),
    ({**_GOOD, "mode": "bm25"}, "holds mode 'bm25'"),
])
def test_a_damaged_calibration_file_is_one_line_naming_it_when_the_collection_opens(tmp_path, entry, problem):
    _words_collection(tmp_path / "c").close()
    f = tmp_path / "c" / "calibration.json"
    f.write_text(json.dumps({"format": 1, "modes": {"dense": entry}}))
    with pytest.raises(CollectionError) as e:
        Collection.open(tmp_path / "c", encoder=FakeEncoder())
    assert str(e.value).startswith(f"{f}: calibration file is damaged (mode 'dense': {problem}")
    f.write_text(json.dumps({"format": 1, "modes": {"dense": {"mode": "dense", "intercept": 0.3}}}))  # an old file
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert col.calibrators["dense"].threshold == 0.5
        # Refusing at open also released the failed handle: compaction needs this to be the only one.
        col.delete(["d1"])
        assert col.compact()["compacted"] is True


def test_a_sharded_collection_checks_its_calibrators_as_one_collection(tmp_path):
    from slimvec.distributed import create_sharded

    col = create_sharded(tmp_path / "s", shards=2, profile="exact-f32", encoder=FakeEncoder())
    col.add([Document(f"d{i}", f"alpha beta word{i}") for i in range(20)])
    with pytest.raises(ConfigError, match="fitted on search mode 'bm25', not 'dense'"):
        col.set_calibrator("dense", Calibrator(**{**_GOOD, "mode": "bm25"}))
    assert col.calibrators == {}
    assert not (tmp_path / "s" / "calibration.json").exists()
    col.set_calibrator("dense", Calibrator(**_GOOD))
    assert col.calibrators == {"dense": Calibrator(**_GOOD)}
    col.close()


# ---- a sharded collection's calibrators: a method where one collection has a property, and never re-read ----------
# `slimvec calibrate big DATASET --report-split test` fitted and stored the calibrator, then failed with a traceback
# ("'function' object has no attribute 'get'"): cutoff_report reads `collection.calibrators` as one collection
# gives it. And a server holding the sharded collection open never saw a calibration fitted after it opened
# ("no calibration for search mode 'dense'"), where one collection's other handles take it at their next search.
def _sharded_with_judged_queries(path):
    from slimvec.distributed import create_sharded

    col = create_sharded(path, shards=2, profile="exact-f32", encoder=FakeEncoder())
    col.add([Document(f"d{i}", f"alpha beta word{i} topic{i % 5}") for i in range(60)])
    queries = {f"q{j}": f"word{j} topic{j % 5}" for j in range(12)}
    qrels = {f"q{j}": {f"d{j}": 1} for j in range(12)}
    return col, queries, qrels


def test_calibrate_reports_its_cutoff_on_a_sharded_collection(tmp_path):
    from slimvec.evaluation.calibrate import cutoff_report, fit_calibrator

    col, queries, qrels = _sharded_with_judged_queries(tmp_path / "s")
    cal = fit_calibrator(col, queries, qrels, mode="dense")
    assert col.calibrators == {"dense": cal}
    report = cutoff_report(col, queries, qrels, mode="dense", threshold="auto")
    assert report["threshold"] == cal.threshold and report["queries"] == 12
    col.close()


def test_another_handle_of_a_sharded_collection_takes_a_calibration_fitted_after_it_opened(tmp_path):
    col, _, _ = _sharded_with_judged_queries(tmp_path / "s")
    server = Collection.open(tmp_path / "s", encoder=FakeEncoder())
    assert len(server.search("alpha", k=5)) == 5
    col.set_calibrator("dense", Calibrator(**_GOOD))
    expected = [(h.id, h.relevance) for h in col.search("alpha", k=5, min_relevance="auto")]
    assert [(h.id, h.relevance) for h in server.search("alpha", k=5, min_relevance="auto")] == expected
    assert server.calibrators == {"dense": Calibrator(**_GOOD)}
    col.set_calibrator("dense", Calibrator(**{**_GOOD, "threshold": 0.9}))  # a refit is taken too
    assert server.calibrators["dense"].threshold == 0.9
    server.close()
    col.close()


# ---- an upsert or add racing a compaction through another thread of the same handle -------------------------------
# The write's first look at what is stored (ids already stored for add, documents stored unchanged for upsert) read
# `self.store` without a lock, and a compaction in another thread closes that store and opens the new generation:
# the write failed with sqlite3.ProgrammingError "Cannot operate on a closed database". Seen with threads sharing a
# sharded collection (writes and `compact` through the router); a plain collection has the same window.
class _TellsWhenWaitedOn:
    """A stand-in for a collection's `_lock` that sets `waited` when a thread has to wait for it."""

    def __init__(self, inner, waited):
        self.inner, self.waited = inner, waited

    def acquire(self, blocking=True, timeout=-1):
        if self.inner.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.waited.set()
        return self.inner.acquire(timeout=timeout)

    def release(self):
        self.inner.release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@pytest.mark.parametrize("call", ["upsert", "add"])
def test_a_write_whose_first_look_at_the_store_meets_a_compaction_in_another_thread_still_commits(
        tmp_path, monkeypatch, call):
    import threading

    from slimvec.store.store import Store

    col = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    col.add([Document(f"d{i}", f"alpha beta {i}") for i in range(20)])
    col.upsert([Document(f"d{i}", f"alpha beta {i} again") for i in range(10)])  # dead rows: compact has work
    stage = threading.Event()  # set when the compaction has finished, or has to wait for the write
    col._lock = _TellsWhenWaitedOn(col._lock, stage)
    compacted = []
    compaction = threading.Thread(target=lambda: compacted.append(col.compact()["compacted"]))
    looked_at = Store.unchanged if call == "upsert" else Store.existing_ids

    def first_look(self, *args):
        if not compaction.is_alive() and not compacted:  # once: the write's look outside the writer lock
            compaction.start()
            threading.Thread(target=lambda: (compaction.join(), stage.set()), daemon=True).start()
            stage.wait()
        return looked_at(self, *args)

    monkeypatch.setattr(Store, "unchanged" if call == "upsert" else "existing_ids", first_look)
    getattr(col, call)([Document("d0", "alpha beta 0 third"), Document("n1", "a new one")] if call == "upsert"
                       else [Document("n1", "a new one")])
    compaction.join()
    assert compacted == [True]
    assert col.get("n1").text == "a new one" and len(col) == 21
    assert col.check() == []
    col.close()


# ---- a sharded BM25 search through one thread while another deletes through the same router ------------------------
# Writes and BM25 searches took the router's lock, deletes did not: a delete between the search handing the shards
# the corpus-wide statistics and a shard scoring with them changed that shard's own statistics, and the shard
# refused the search ("BM25 corpus-wide statistics are out of date for this shard ...; search through the router"),
# though it came through the router.
def test_a_sharded_hybrid_search_meeting_a_delete_in_another_thread_answers(tmp_path, monkeypatch):
    import threading

    from slimvec.distributed import create_sharded
    from slimvec.distributed.shards import ShardCore

    col = create_sharded(tmp_path / "s", shards=2, profile="hybrid", encoder=FakeEncoder())
    col.add([Document(f"d{i}", f"alpha beta word{i} topic{i % 5}") for i in range(40)])
    stage = threading.Event()  # set when the delete has finished, or has to wait for the search
    col._lock = _TellsWhenWaitedOn(col._lock, stage)
    deleted = []
    deleting = threading.Thread(target=lambda: deleted.append(col.delete(["d3", "d4", "d5"])))
    search_many = ShardCore.search_many

    def scored(self, *args, **kwargs):
        if not deleting.is_alive() and not deleted:  # once: after the router handed over the statistics
            deleting.start()
            threading.Thread(target=lambda: (deleting.join(), stage.set()), daemon=True).start()
            stage.wait()
        return search_many(self, *args, **kwargs)

    monkeypatch.setattr(ShardCore, "search_many", scored)
    hits = col.search("alpha topic3", k=10, mode="hybrid")
    deleting.join()
    assert deleted == [3] and len(hits) == 10
    monkeypatch.setattr(ShardCore, "search_many", search_many)
    assert not {"d3", "d4", "d5"} & {h.id for h in col.search("alpha topic3", k=10, mode="hybrid")}
    col.close()


# ---- `slimvec migrate --help` said "writes wait"; a write during a migration is refused at once ------------------
# (README: "Writes are refused while a migration runs", the message naming the command that finishes it), so a
# user told to expect a wait would retry or block on nothing.
def test_migrate_help_says_writes_are_refused_during_a_migration_as_they_are():
    from typer.testing import CliRunner

    from slimvec.cli import app
    from slimvec.migrate.merged import MigratingCollection

    res = CliRunner().invoke(app, ["migrate", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.stdout.split()).replace("│ ", "").replace(" │", "")
    assert res.exit_code == 0
    assert "writes wait" not in text and "writes are refused until it finishes" in text
    assert all(getattr(MigratingCollection, w) is MigratingCollection._refuse for w in ("add", "upsert", "delete"))


# ---- keep_queries(0) in one thread while a search in another adds its query vector ----------------------------------
# RecentQueries.add looked at the capacity before taking its lock: a resize to 0 in between left it appending to
# an empty buffer, and the search failed with ZeroDivisionError ("integer modulo by zero").
def test_forgetting_kept_queries_while_a_search_adds_one_does_not_fail_the_search():
    import threading

    import numpy as np

    from slimvec.search.recent import RecentQueries

    kept = RecentQueries(4)
    kept.add(np.ones((2, 3), np.float32))
    waited = threading.Event()
    kept._lock = _TellsWhenWaitedOn(threading.RLock(), waited)
    failed = []

    def search_adds():
        try:
            kept.add(np.ones((1, 3), np.float32))
        except Exception as e:  # noqa: BLE001 - the fault: anything raised reaches the search
            failed.append(e)

    with kept._lock:
        adder = threading.Thread(target=search_adds)
        adder.start()
        waited.wait()  # the adder has looked at the capacity and waits for the lock
        kept.resize(0)  # keep_queries(0): forget them all
    adder.join()
    assert failed == [] and len(kept) == 0 and kept.vectors().shape == (0, 0)


# ---- the framework stores read the collection's store without its lock -------------------------------------------
# LlamaIndex's delete(ref_doc_id), delete_nodes, get_nodes and clear, and LangChain's delete() of everything, read
# `collection.store` directly: a compaction through another thread (an upsert past the threshold, or `compact`)
# closed that store under them, and the process died of a segmentation fault in sqlite3 (seen with two threads
# deleting by ref_doc_id while a third upserted and compacted), or the read failed ("Cannot operate on a closed
# database"). They now read in one snapshot under the collection's lock, as `Collection.reading` gives.
def _lock_waited_on_by_a_compaction(monkeypatch, col, method):
    """Patch Store.`method` so that its first call starts a compaction of `col` in another thread and goes on only
    when that compaction has finished or has to wait for the reader; returns the list the compaction reports to."""
    import threading

    from slimvec.store.store import Store

    stage = threading.Event()
    col._lock = _TellsWhenWaitedOn(col._lock, stage)
    compacted = []
    compaction = threading.Thread(target=lambda: compacted.append(col.compact()["compacted"]))
    original = getattr(Store, method)

    def first_read(self, *args, **kwargs):
        if not compaction.is_alive() and not compacted:
            compaction.start()
            threading.Thread(target=lambda: (compaction.join(), stage.set()), daemon=True).start()
            stage.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, method, first_read)
    return compaction, compacted


def test_llama_index_deletes_by_ref_doc_id_while_another_thread_compacts(tmp_path, monkeypatch):
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    from slimvec.integrations.llama_index import SlimvecVectorStore

    col = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    store = SlimvecVectorStore(col)
    nodes = [TextNode(id_=f"n{i}", text=f"alpha beta {i}",
                      relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"src{i % 2}")})
             for i in range(10)]
    store.add(nodes)
    col.upsert([Document("n9", "alpha beta 9 again")])  # a dead row: the compaction has work
    compaction, compacted = _lock_waited_on_by_a_compaction(monkeypatch, col, "filtered_rows")
    store.delete("src0")
    compaction.join()
    assert compacted == [True]
    assert sorted(n.node_id for n in store.get_nodes()) == ["n1", "n3", "n5", "n7", "n9"]
    col.close()


def test_langchain_delete_of_everything_while_another_thread_compacts(tmp_path, monkeypatch):
    from slimvec.integrations.langchain import SlimvecVectorStore

    col = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    store = SlimvecVectorStore(col)
    store.add_texts([f"alpha beta {i}" for i in range(6)], ids=[f"d{i}" for i in range(6)])
    store.add_texts(["alpha beta 5 again"], ids=["d5"])  # a dead row: the compaction has work
    compaction, compacted = _lock_waited_on_by_a_compaction(monkeypatch, col, "iter_documents")
    store.delete()
    compaction.join()
    assert compacted == [True] and len(col) == 0
    col.close()


# ---- a sharded add's look for ids already stored, while the router compacts in another thread -----------------------
# ShardCore.stored (and owners, counts) read the shard's store without the shard collection's lock, which its
# compaction takes to close that store: the add failed ("Cannot operate on a closed database"), or crashed the
# process as the framework stores above did.
def test_a_sharded_add_while_another_thread_compacts_the_shards(tmp_path, monkeypatch):
    import threading

    from slimvec.distributed import create_sharded
    from slimvec.store.store import Store

    col = create_sharded(tmp_path / "s", shards=2, profile="exact-f32", encoder=FakeEncoder())
    col.add([Document(f"d{i}", f"alpha beta {i}") for i in range(20)])
    col.upsert([Document(f"d{i}", f"alpha beta {i} again") for i in range(20)])  # dead rows in both shards
    stage = threading.Event()
    for shard in col.shards:
        shard.core.col._lock = _TellsWhenWaitedOn(shard.core.col._lock, stage)
    compacted = []
    compaction = threading.Thread(target=lambda: compacted.append(col.compact()["compacted"]))
    existing_ids = Store.existing_ids

    def first_look(self, *args):
        if not compaction.is_alive() and not compacted:
            compaction.start()
            threading.Thread(target=lambda: (compaction.join(), stage.set()), daemon=True).start()
            stage.wait()
        return existing_ids(self, *args)

    monkeypatch.setattr(Store, "existing_ids", first_look)
    assert col.add([Document(f"n{i}", f"new doc {i}") for i in range(6)]) == 6
    compaction.join()
    assert compacted == [True] and len(col) == 26 and col.check() == []
    col.close()
