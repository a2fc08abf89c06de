"""Session 24 (s24-race): faults found using one collection from several threads, handles or processes at once.

FakeEncoder collections throughout: these are plumbing tests (locks, handles, what is stored), not quality ones.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes import FakeEncoder, registered_encoders

from slimvec import Collection, Document
from slimvec.errors import CollectionError, ConfigError
from slimvec.migrate import runner
from slimvec.store import switch

NEW = "fake-new-s24"


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"document {i} about cells, proteins and bone density {i % 7}", "", {"g": i % 3})
            for i in range(n)]


@pytest.fixture()
def models():
    """The old and new plumbing models registered by name, so every stage of a migration opens without one."""
    with registered_encoders(FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=64, name=NEW)):
        yield


# A server (or any handle) that opened the collection before `slimvec migrate` started holds a plain Collection,
# not the MigratingCollection that refuses writes. Its writes landed in the old generation after the migration had
# read it: an upsert of a document already re-embedded was dropped by the switch without a word (the target kept
# the old version and the count still matched), and a delete left the migration unable to ever switch ("60 of 59
# documents are re-embedded").
def test_a_handle_opened_before_the_migration_cannot_write_what_the_switch_would_drop(tmp_path, models):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add(_docs(60))
    server = Collection.open(path)
    before = server.get("d5")
    with pytest.raises(CollectionError, match="open elsewhere"):  # re-embedded, the switch waits for the server
        runner.migrate(path, NEW, sample=20)
    for write in (lambda: server.upsert([Document("d5", "a revised text of document five")]),
                  lambda: server.delete(["d7"]), lambda: server.add([Document("new", "a new document")]),
                  lambda: server.create_field_index("g"), lambda: server.compact()):
        with pytest.raises(CollectionError, match=f"a migration to '{NEW}' is under way"):
            write()
    assert server.get("d5") == before and len(server) == 60 and server.search("cells", k=3)  # searches go on
    server.close()
    assert runner.migrate(path, NEW)["switched"]
    with Collection.open(path) as col:
        assert type(col) is Collection and col.manifest["model"] == NEW and len(col) == 60
        assert col.get("d5") == before and col.get("d7") is not None and col.check() == []
        col.upsert([Document("d5", "written once the migration is done")])  # writes are open again
        assert col.get("d5").text == "written once the migration is done"


# The migration reads the documents it fits on (and stores in the target) before its record exists; a write
# between that read and the record would be missed the same way, so the start holds the old generation's writer
# lock from before the read until the record is written.
def test_starting_a_migration_holds_the_writer_lock_while_it_reads_the_collection(tmp_path, models, monkeypatch):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add(_docs(40))
    held_while_sampling = []
    real = runner._sample_into

    def sampling(old, target, sample, seed):
        with switch.writer_lock(path, wait=False) as free:  # another open file: it conflicts within one process
            held_while_sampling.append(not free)
        return real(old, target, sample, seed)

    monkeypatch.setattr(runner, "_sample_into", sampling)
    runner.start(path, NEW, sample=20)
    assert held_while_sampling == [True]
    with switch.writer_lock(path, wait=False) as free:  # and let go once the record is written
        assert free


def test_a_directory_without_a_collection_is_refused_by_the_start_without_a_lock_file(tmp_path, models):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(CollectionError):
        runner.start(empty, NEW)
    assert list(Path(empty).iterdir()) == []


class _OnlyUnder:
    """A store's connection that fails on any use by a thread not holding `lock` (a collection's state lock):
    a sqlite3 connection is for one thread at a time, and every thread that uses a collection's takes that lock.
    Timing made such faults rare in CI (a 500 from sqlite3's "returned NULL without setting an exception"); this
    makes every unguarded use fail at once."""

    def __init__(self, db, lock, what: str) -> None:
        self._db, self._lock, self._what = db, lock, what

    def __getattr__(self, name):
        if not self._lock._is_owned():
            raise AssertionError(f"{self._what}.{name} used without the lock its other users hold")
        return getattr(self._db, name)


# A collection under migration searched from several threads (a server): each dense search ranks the target's
# part (the target's search, under the target's lock) and then, under the migrating collection's own lock, read
# the target's new rows through the target's connection without the target's lock, while another thread's target
# search could be using it. Found by the guard below; not seen failing in ~120,000 threaded searches.
def test_a_search_under_migration_reads_the_target_only_under_its_lock(tmp_path, models):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add(_docs(60))
    runner.start(path, NEW, sample=20)
    searches = [("cells", {"g": 1}), ("bone density", {"g": {"$in": [0, 2]}})]
    with Collection.open(path) as col:
        target = col.target.store
        real, target.db = target.db, _OnlyUnder(target.db, col.target._lock, "target.store.db")
        try:
            got = [[(h.id, h.score) for h in col.search(q, k=5, filter=f)] for q, f in searches]
        finally:
            target.db = real
    with Collection.open(path) as col:
        assert got == [[(h.id, h.score) for h in col.search(q, k=5, filter=f)] for q, f in searches] and got[0]


# Opening a collection while another handle's compaction (or a migration's switch) was moving files saw the switch's
# intent, waited for the writer lock the switch held, and then, holding that lock, waited for the readers' lock to
# be free of every handle, to roll forward what was in fact finished already: the compacting handle (and any other
# open one) holds that lock shared for as long as it is open, so the open hung for good, and the compacting
# process's next write hung behind it. Seen in a loop of compactions in one thread and opens in another (hung
# within 30 s); here the switch that finishes while the open waits for the writer lock is simulated, and a wait
# for the readers' lock that would block fails instead of hanging.
def test_an_open_that_meets_a_finished_switch_does_not_wait_for_the_open_handles(tmp_path, monkeypatch):
    import fcntl

    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add(_docs(20))
        (path / switch.INTENT).write_text("{}")  # the intent of a switch under way, as the open's first look sees it
        real_writer_lock = switch.writer_lock

        @contextmanager
        def switch_done_meanwhile(p, wait=True):
            (Path(p) / switch.INTENT).unlink()  # the switching process finished and let go of its writer lock
            with real_writer_lock(p, wait) as held:
                yield held

        class NoBlockingWait:
            LOCK_EX, LOCK_SH, LOCK_NB, LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_SH, fcntl.LOCK_NB, fcntl.LOCK_UN

            @staticmethod
            def flock(fd, op):
                if op == fcntl.LOCK_EX and Path(os.readlink(f"/proc/self/fd/{fd}")).name == switch.READERS_LOCK:
                    try:
                        fcntl.flock(fd, op | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise AssertionError("waited for every open handle to roll forward a finished switch") from None
                    return None
                return fcntl.flock(fd, op)

        monkeypatch.setattr(switch, "writer_lock", switch_done_meanwhile)
        monkeypatch.setattr(switch, "fcntl", NoBlockingWait)
        with Collection.open(path, encoder=FakeEncoder(32)) as other:
            assert len(other) == 20
        monkeypatch.undo()
        col.add([Document("after", "written once the open is done")])  # the writer lock is free again
        assert len(col) == 21 and col.check() == []


# A server answers lone queries from several threads. Each `blas_threads` saved the BLAS setting it found: a query
# entering while another held one thread saved 1 and restored it after the other had put 2 back, so numpy stayed
# on one thread for the rest of the process (batch searches, tune's exact truth, codec fits).
def test_lone_queries_in_two_threads_leave_blas_as_they_found_it():
    import threading

    import threadpoolctl
    from threadpoolctl import threadpool_info

    from slimvec.index.base import blas_threads

    def blas():  # the process-wide pools (numpy's wheels); an OpenMP build's setting is per thread
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
                and i["internal_api"] == "openblas" and i.get("threading_layer") != "openmp"]

    import numpy  # noqa: F401  (its BLAS loaded before the first query)

    setting = threadpoolctl.threadpool_limits(limits=2, user_api="blas")  # 2 even on a 1-core machine
    threadpoolctl.OpenBLASController.clear_controlling_thread()
    try:
        assert blas() and all(n == 2 for n in blas())
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        inside = {}

        def a():
            with blas_threads(1):
                a_in.set()
                b_in.wait()
                inside["a"] = blas()
            a_out.set()

        def b():
            a_in.wait()
            with blas_threads(1):
                b_in.set()
                a_out.wait()
                inside["b"] = blas()  # a left first: b's query still runs on one thread

        threads = [threading.Thread(target=f) for f in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(n == 1 for n in inside["a"] + inside["b"])
        assert all(n == 2 for n in blas())
    finally:
        setting.restore_original_limits()
        threadpoolctl.OpenBLASController.clear_controlling_thread()


# Store.open read manifest.json before taking the readers' lock: a switch (a migration's, to another model)
# landing in between paired the old manifest (model, dim) with the new database and vector file.
def test_an_open_reads_the_manifest_of_the_files_it_opens(tmp_path, monkeypatch):
    import shutil

    from slimvec.store import store as store_module
    from slimvec.store.store import Store

    old = Collection.create(tmp_path / "col", encoder=FakeEncoder(dim=8))
    old.add([Document("a", "alpha words")])
    old.close()
    new = Collection.create(tmp_path / "new", encoder=FakeEncoder(dim=16))
    new.add([Document("a", "alpha words"), Document("b", "beta words")])
    new.close()
    hold, opens = store_module._hold_shared, []

    def a_switch_first(path):
        if not opens:  # a switch landing just before the lock: the new generation's files moved in
            for f in (tmp_path / "new").iterdir():
                if f.is_dir():
                    shutil.copytree(f, path / f.name, dirs_exist_ok=True)
                elif not f.name.startswith("."):  # not the lock files
                    shutil.copy2(f, path / f.name)
        opens.append(path)
        return hold(path)

    monkeypatch.setattr(store_module, "_hold_shared", a_switch_first)
    st = Store.open(tmp_path / "col")
    try:
        assert st.dim == 16 and st.vectors().shape == (2, 16) and st.counts()["documents"] == 2
    finally:
        st.close()


# A collection under migration whose adapter (or target) could not be opened raised with the old store still
# open: its share of the readers' lock stayed held as long as the error was (a server's log, a traceback kept), and
# every compaction or switch was refused as "open elsewhere".
def test_a_migrating_collection_that_fails_to_open_holds_no_lock(tmp_path, models):
    from slimvec.migrate.state import migration_dir, read_record
    from slimvec.store.store import Store

    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(32)) as col:
        col.add(_docs(30))
    server = Collection.open(path)
    with pytest.raises(CollectionError, match="open elsewhere"):  # stopped before its switch: still migrating
        runner.migrate(path, NEW, sample=20)
    server.close()
    (migration_dir(path) / read_record(path)["adapter_file"]).write_bytes(b"not an adapter")
    with pytest.raises(ConfigError, match="not a readable adapter file") as failed:
        Collection.open(path)
    assert failed.value is not None  # kept, as a server's error log keeps it
    st = Store.open(path)
    try:
        assert st.sole_handle()
    finally:
        st.close()


def test_opening_with_another_model_holds_no_lock(tmp_path):
    from slimvec.store.store import Store

    with Collection.create(tmp_path / "col", encoder=FakeEncoder(32)) as col:
        col.add(_docs(3))
    with pytest.raises(CollectionError, match="not 'other'") as failed:
        Collection.open(tmp_path / "col", FakeEncoder(32, name="other"))
    assert failed.value is not None  # kept, as a server's error log keeps it
    st = Store.open(tmp_path / "col")
    try:
        assert st.sole_handle()
    finally:
        st.close()
