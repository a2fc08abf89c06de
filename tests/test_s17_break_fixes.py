"""Session 17 breaker: tuning outside the state lock (threads of one handle, other handles, kills), and the
derived-file saves that fail after a commit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_retrievers_compressed import _clustered, _vector_collection

import slimvec
from slimvec import Collection, Document

ROWS = _clustered(1500, 64, seed=1)
_CHILD = Path(__file__).resolve().parent / "_tune_kill.py"


def _child_env() -> dict[str, str]:
    """The environment of a child process importing this slimvec and these tests' helpers."""
    here = [str(Path(slimvec.__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(here + [os.environ.get("PYTHONPATH", "")])}


def _queries(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 64)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _probes_of(col: Collection) -> str:
    return col.info()["indexes"]["dense"]["calibration"]["probes"]


def test_a_sharded_add_while_a_shard_tunes_does_not_deadlock(tmp_path: Path, monkeypatch) -> None:
    # A tune holds a shard's write mutex and writer lock while it calibrates outside the state lock, then takes
    # that lock. An add in another thread whose part went to another shard then refreshes every shard's BM25
    # count, and took the tuning shard's state lock before its writer lock: each waited for the other for good.
    from fakes import FakeEncoder

    from slimvec.distributed import create_sharded, shard_of
    from slimvec.index import nprobe

    sharded = create_sharded(tmp_path / "sh", 2, profile="hnsw-f32", retrievers=["dense", "bm25"],
                             encoder=FakeEncoder(dim=32))
    try:
        sharded.add([Document(f"d{i}", f"word{i} alpha beta w{i % 7}") for i in range(300)])
        real, seen = nprobe.calibrate_ef, {}
        other = [f"x{i}" for i in range(100) if shard_of(f"x{i}", 2) == 1][:3]  # none in shard 0, tuned first

        def calibrate_while_adding(*args, **kwargs):
            if "adder" not in seen:
                seen["adder"] = threading.Thread(target=lambda: seen.update(
                    added=sharded.add([Document(i, "new words here") for i in other])), daemon=True)
                seen["adder"].start()
                time.sleep(1)  # the add commits into shard 1, then waits for shard 0's locks
            return real(*args, **kwargs)

        monkeypatch.setattr(nprobe, "calibrate_ef", calibrate_while_adding)
        tuner = threading.Thread(target=lambda: seen.update(tuned=sharded.tune([f"word{i} alpha" for i in range(20)])),
                                 daemon=True)
        tuner.start()
        tuner.join(120)  # deadlock guards only
        seen["adder"].join(120)
        assert not tuner.is_alive() and not seen["adder"].is_alive()
        assert seen["added"] == 3 and len(seen["tuned"]["shards"]) == 2
        assert len(sharded) == 303 and sharded.check() == []
    finally:
        sharded.close()


def test_a_tune_killed_while_calibrating_leaves_every_handle_as_it_was(tmp_path: Path) -> None:
    # The probe file used to be written before calibrating (seconds; 30 s at 1M rows) and the generation moved
    # only after: a tune killed in between left the new file, which a handle opened later calibrated on, while a
    # handle open all along (a server) kept the old calibration until some later write moved the generation.
    path = tmp_path / "c"
    _vector_collection(path, ROWS, base="hnsw-f32", target_recall=0.95).close()
    server = Collection.open(path)
    try:
        assert _probes_of(server) == "rows"
        done = subprocess.run([sys.executable, str(_CHILD), str(path)], capture_output=True, text=True,
                              env=_child_env())
        assert done.returncode == -9, done.stderr  # SIGKILL at the calibration, as `kill -9` would
        server.search_many(["q"], vectors=ROWS[:1], k=3)
        with Collection.open(path) as fresh:
            assert _probes_of(fresh) == _probes_of(server)
        assert _probes_of(server) == "rows" and server.check() == []
    finally:
        server.close()


def test_a_tune_interrupted_while_calibrating_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    from slimvec.index import nprobe
    from slimvec.store import probes

    path = tmp_path / "c"
    with _vector_collection(path, ROWS, base="hnsw-f32", target_recall=0.95) as col:
        other = Collection.open(path)
        try:
            q = _queries(20, 3)
            tuned = col.tune(vectors=q)["dense"]["calibration"]
            assert _probes_of(other) == probes.digest(q)
            real = nprobe.calibrate_ef

            def interrupted(*args, **kwargs):
                raise KeyboardInterrupt("Ctrl-C while calibrating")

            monkeypatch.setattr(nprobe, "calibrate_ef", interrupted)
            with pytest.raises(KeyboardInterrupt):
                col.tune(vectors=_queries(20, 4))
            with pytest.raises(KeyboardInterrupt):
                col.reset_tuning()
            monkeypatch.setattr(nprobe, "calibrate_ef", real)
            assert col.store.probe_queries().digest == probes.digest(q)  # the file the calibration ran on
            for handle in (col, other):
                assert handle.info()["indexes"]["dense"]["calibration"] == tuned
            with Collection.open(path) as fresh:
                assert fresh.info()["indexes"]["dense"]["calibration"] == tuned
        finally:
            other.close()


def _run_with_file_limit(code: str, limit: int, *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a child whose files may not grow past `limit` bytes (EFBIG, as a full disk stops a write;
    Python ignores SIGXFSZ)."""
    import resource

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          preexec_fn=small_files, env=_child_env())


def test_a_tune_stopped_by_a_full_disk_leaves_no_partial_probe_file(tmp_path: Path) -> None:
    # The temporary probe file is named by the process: a partial one left by a failed write was never replaced,
    # holding its space for good.
    path = tmp_path / "c"
    _vector_collection(path, ROWS, base="hnsw-f32", target_recall=0.95).close()
    code = """if True:
        import sys
        import numpy as np
        from slimvec import Collection
        q = np.random.default_rng(1).standard_normal((1000, 64)).astype(np.float32)
        with Collection.open(sys.argv[1]) as col:
            try:
                col.tune(vectors=q / np.linalg.norm(q, axis=1, keepdims=True))
            except OSError as e:
                print("refused:", e.strerror)
    """
    done = _run_with_file_limit(code, 100_000, str(path))  # the file: 1,000 x 64 float32 = 256 KB
    assert done.returncode == 0 and "refused: File too large" in done.stdout, done.stderr
    assert sorted(p.name for p in path.iterdir() if "probe" in p.name) == []
    with Collection.open(path) as col:
        assert _probes_of(col) == "rows" and col.check() == []


def test_a_bm25_score_matrix_stopped_by_a_full_disk_leaves_no_partial_file(tmp_path: Path) -> None:
    # The score matrix a search builds is larger than the database here; its failed save left scores.tmp.npz.
    import random

    from fakes import FakeEncoder

    path, rnd = tmp_path / "c", random.Random(0)
    words = [a + b for a in "bcdfghjklmnpqrstvwxz" for b in "aeiouy"]
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add([Document(f"d{i}", " ".join(rnd.choice(words) for _ in range(60))) for i in range(10)])
    code = """if True:
        import random, sys
        from fakes import FakeEncoder
        from slimvec import Collection, Document
        rnd = random.Random(1)
        words = [a + b for a in "bcdfghjklmnpqrstvwxz" for b in "aeiouy"]
        with Collection.open(sys.argv[1], encoder=FakeEncoder(dim=8)) as col:
            col.add([Document(f"e{i}", " ".join(rnd.choice(words) for _ in range(60))) for i in range(3000)])
            print(len(col), col.search("ba be", k=1)[0].id)
    """
    done = _run_with_file_limit(code, 1_000_000, str(path))  # database ~0.8 MB, score matrix ~1.1 MB
    assert done.returncode == 0 and done.stdout.startswith("3010 "), done.stderr
    assert sorted(p.name for p in (path / "index" / "bm25").iterdir() if "tmp" in p.name) == []
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as col:
        assert col.check() == [] and len(col) == 3010


def start_adding(col, doc, seen: dict) -> None:
    """Add `doc` through another thread of `col` now, and give it half a second to reach its commit (what a write
    does while a long read holds the handle's connection). Sets seen["adder"] (the thread), then seen["added"] or
    seen["error"]."""
    def add() -> None:
        try:
            seen["added"] = col.add([doc])
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertion
            seen["error"] = repr(e)

    seen["adder"] = threading.Thread(target=add, daemon=True)
    seen["adder"].start()
    time.sleep(0.5)


def test_a_write_through_another_thread_while_check_runs_is_not_refused(tmp_path: Path, monkeypatch) -> None:
    # `check` read the store in a transaction on the handle's one connection outside the state lock: an add
    # through another thread meanwhile failed with sqlite3's "cannot start a transaction within a transaction".
    from fakes import FakeEncoder

    from slimvec.store.store import Store

    col = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    try:
        col.add([Document("a", "alpha")])
        real, seen = Store._check, {}

        def check_while_adding(self):
            if "adder" not in seen:
                start_adding(col, Document("b", "beta"), seen)  # the add reaches its commit while the check reads
            return real(self)

        monkeypatch.setattr(Store, "_check", check_while_adding)
        assert col.check() == []
        seen["adder"].join(60)  # a deadlock guard only
        assert not seen["adder"].is_alive() and seen.get("error") is None and seen["added"] == 1
        assert len(col) == 2 and col.check() == []
    finally:
        col.close()


def test_info_while_another_writer_replaces_index_files_does_not_fail(tmp_path: Path) -> None:
    # `info` sums the bytes of every file in the directory; a file an index save renames or removes between the
    # walk listing it and its stat (a temporary file, a replaced folder's old copy: another process tuning or
    # committing) made it raise FileNotFoundError, a 500 from the server's collection route.
    from fakes import FakeEncoder

    from slimvec.atomic import replaced_dir

    col = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    stop, saves = threading.Event(), [0]

    def save_folders() -> None:  # as a full rewrite of index row files does (index.rowfiles)
        while not stop.is_set():
            with replaced_dir(tmp_path / "c" / "index" / "codes") as tmp:
                for i in range(20):
                    (tmp / f"f{i}.bin").write_bytes(b"x" * 100)
            saves[0] += 1

    saver = threading.Thread(target=save_folders, daemon=True)
    try:
        col.add([Document("a", "alpha")])
        saver.start()
        failures = []
        for _ in range(2000):
            try:
                assert col.info()["disk_bytes"] > 0
            except FileNotFoundError as e:
                failures.append(e)
        assert failures == [] and saves[0] > 0
    finally:
        stop.set()
        saver.join(60)
        col.close()


def test_compacting_an_hnsw_collection_on_a_full_disk_fails_in_one_line(tmp_path: Path) -> None:
    # HnswIndex.save turned faiss's failed write into an OSError without an errno, so the CLI, which tells a
    # full disk by its errno, printed a traceback for `slimvec compact` (the staged graph's save) instead of
    # its one-line "no room" error; the save-after-commit warning quoted faiss's source location.
    path = tmp_path / "c"
    rows = _clustered(3000, 64, seed=2)
    col = _vector_collection(path, rows, base="hnsw-f32", target_recall=0.95)
    other = Collection.open(path)  # compaction waits for the only handle: dead rows stay
    col.delete([f"d{i}" for i in range(0, 3000, 3)])
    other.close()
    col.close()
    code = "from slimvec.cli import app; app(prog_name='slimvec')"
    # 2,000 rows: vectors 512 KB, their graph about twice that
    done = _run_with_file_limit(code, 800_000, "compact", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    line = " ".join(done.stderr.split())
    assert line.startswith("error: ") and "the HNSW graph could not be written (File too large); run " \
        "`slimvec check` on the collection once there is room" in line, line
    with Collection.open(path) as again:
        assert again.check() == [] and len(again) == 2000 and again.info()["dead_rows"] == 1000


def test_an_upsert_whose_automatic_compaction_hits_a_full_disk_is_reported_committed(tmp_path: Path) -> None:
    # The upsert commits, leaves a third of the rows dead and compacts; the compacted generation's graph did not
    # fit, and the OSError (a full disk's sqlite3 or CollectionError alike) came out of the upsert whose commit
    # had landed: a caller told "failed" writes again what is stored.
    from fakes import FakeEncoder

    path = tmp_path / "c"
    with Collection.create(path, profile="hnsw-f32", encoder=FakeEncoder(dim=32)) as col:
        col.add([Document(f"d{i}", f"word{i} alpha beta gamma") for i in range(3000)])
    code = """if True:
        import sys
        from fakes import FakeEncoder
        from slimvec import Collection, Document
        with Collection.open(sys.argv[1], encoder=FakeEncoder(dim=32)) as col:
            print("upserted", col.upsert([Document(f"d{i}", f"changed{i} delta") for i in range(1500)]))
    """
    # vectors 4,500 x 32 float32 = 576 KB; the graph of the 3,000 live rows about twice that
    done = _run_with_file_limit(code, 800_000, str(path))
    assert done.returncode == 0 and "upserted 1500" in done.stdout, done.stderr
    assert "the write is committed, but the automatic compaction stopped (the HNSW graph could not be written " \
        "(File too large)); the next write that leaves rows dead tries again" in done.stderr
    assert "Traceback" not in done.stderr
    with Collection.open(path, encoder=FakeEncoder(dim=32)) as again:
        assert again.check() == [] and len(again) == 3000 and again.get("d7").text == "changed7 delta"
        assert not (path / "compaction").exists()
        assert again.info()["dead_rows"] == 1500  # left for the next write to compact
