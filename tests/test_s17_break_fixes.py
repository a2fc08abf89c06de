"""Session 17 breaker: tuning outside the state lock (threads of one handle, other handles, kills), and the
derived-file saves that fail after a commit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from test_retrievers_compressed import _clustered, _vector_collection

from slimvec import Collection, Document

ROWS = _clustered(1500, 64, seed=1)
_CHILD = Path(__file__).resolve().parent / "_tune_kill.py"


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
        done = subprocess.run([sys.executable, str(_CHILD), str(path)], capture_output=True, text=True)
        assert done.returncode == -9, done.stderr  # SIGKILL at the calibration, as `kill -9` would
        server.search_many(["q"], vectors=ROWS[:1], k=3)
        with Collection.open(path) as fresh:
            assert _probes_of(fresh) == _probes_of(server)
        assert _probes_of(server) == "rows" and server.check() == []
    finally:
        server.close()


def test_a_tune_interrupted_while_calibrating_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    import pytest

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
