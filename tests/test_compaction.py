"""Compaction (issue 16 item 1): the same answers from fewer bytes, swapped in whole, safe against crashes.

Real SciFact slices, real SQLite and faiss; the hashed bag-of-words FakeEncoder stands in for the model
(plumbing: compaction never encodes, it copies rows and codes), except one test on the real MiniLM.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _switch_crash import crash_after_moves
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.errors import CollectionError, ConfigError
from slimvec.profiles import load_profile
from slimvec.store import switch as store_switch

HERE = Path(__file__).resolve().parent


def _profile(name: str, **updates):
    return load_profile(name).model_copy(update={"compact_threshold": None, **updates})


def _build(path: Path, docs: list[Document], profile, encoder=None) -> Collection:
    """300 documents, 40 of them replaced by an upsert and 100 deleted: a third of the rows dead."""
    col = Collection.create(path, profile=profile, encoder=encoder or FakeEncoder(64))
    col.add(docs[:240])
    col.upsert([Document(d.id, d.text + " (revised)", d.title, d.metadata) for d in docs[:40]])
    col.delete([d.id for d in docs[100:200]])
    col.add(docs[240:300])
    return col


def _answers(col: Collection, queries: list[str], modes: list[str | None]) -> list:
    out = []
    for q in queries:
        for mode in modes:
            out.append([(h.id, h.score) for h in col.search(q, k=10, mode=mode)])
        out.append([(h.id, h.score) for h in col.search(q, k=10, filter={"group": "b"})])
    return out


@pytest.fixture(scope="module")
def queries(scifact_judged) -> list[str]:
    return [text for text, _ in list(scifact_judged.values())[:12]]


@pytest.mark.parametrize("name, updates, modes", [
    ("exact-f32", {}, [None]),
    ("binary-rescore", {}, [None]),
    ("int8", {}, [None]),
    ("binary-ivf-rescore", {"nlist": 4}, [None]),  # 4 lists: inverted lists on a small slice
    ("pq16-ivf-rescore", {"nlist": 4}, [None]),  # PQ codes in 4 lists
    ("hybrid", {}, [None, "bm25"]),
    ("multivector-compressed", {}, [None]),  # residual token codes, binary candidates
    ("hybrid-multivector", {}, [None, "bm25"]),
])
def test_compaction_keeps_every_answer_and_frees_the_dead_rows(tmp_path, scifact_docs, queries, name, updates, modes):
    path = tmp_path / "col"
    col = _build(path, scifact_docs, _profile(name, **updates))
    before, info = _answers(col, queries, modes), col.info()
    stored = {d.id: col.get(d.id) for d in scifact_docs[:300]}
    dead, rows, vector_bytes = info["dead_rows"], info["rows"], (path / "vectors" / "float32.bin").stat().st_size
    assert dead == rows - info["chunks"] and dead > rows // 4 and info["reclaimable_disk_bytes"] > 0
    if name.endswith("-ivf-rescore"):
        assert info["indexes"]["dense"]["kind"] == "ivf"

    report = col.compact()

    assert report["compacted"] and report["dead_rows"] == dead and report["rows_after"] == rows - dead
    assert report["disk_bytes_after"] < report["disk_bytes_before"]
    assert report["ram_bytes_after"] <= report["ram_bytes_before"]
    assert (path / "vectors" / "float32.bin").stat().st_size == vector_bytes * (rows - dead) // rows
    assert _answers(col, queries, modes) == before  # ids, scores and order
    after = col.info()
    assert after["dead_rows"] == 0 and after["rows"] == after["chunks"] == rows - dead
    assert after["documents"] == info["documents"] and col.check() == []
    assert {i: col.get(i) for i in stored} == stored
    col.close()
    assert not (path / "compaction").exists() and not (path / store_switch.INTENT).exists()
    with Collection.open(path, encoder=FakeEncoder(64)) as again:  # the new generation, from disk
        assert _answers(again, queries, modes) == before and again.check() == []
        text = "a document added after compaction about zebrafish cells"
        again.add([Document("new-1", text, "", {"group": "new"})])  # rows and tokens append to the new files
        assert [h.id for h in again.search(text, k=3, filter={"group": "new"})] == ["new-1"]
        assert again.check() == [] and len(again) == info["documents"] + 1


def test_sparse_rows_are_copied_not_reencoded(tmp_path, scifact_docs, queries):
    # SPLADE-tiny, the real model (~0.5 s a document here): a small slice keeps this short; whether compaction
    # copies the sparse rows or encodes them again does not depend on how many there are
    docs = scifact_docs[:12]
    col = Collection.create(tmp_path / "col", profile=_profile("hybrid-sparse"), encoder=FakeEncoder(64))
    col.add(docs)
    col.delete([d.id for d in docs[3:7]])
    before = _answers(col, queries[:5], [None, "sparse"])
    calls = []
    sparse = col._retrievers["sparse"]
    real = sparse.encoder.encode_documents
    sparse.encoder.encode_documents = lambda texts, **kw: calls.append(len(texts)) or real(texts, **kw)
    assert col.compact()["compacted"]
    assert _answers(col, queries[:5], [None, "sparse"]) == before and calls == [] and col.check() == []
    col.close()


def test_hnsw_is_rebuilt_and_stays_near_exact(tmp_path, scifact_docs, queries):
    col = _build(tmp_path / "col", scifact_docs, _profile("hnsw-f32"))
    exact = _build(tmp_path / "exact", scifact_docs, _profile("exact-f32"))
    col.compact()
    truth = [{h.id for h in exact.search(q, k=10)} for q in queries]
    found = [{h.id for h in col.search(q, k=10)} for q in queries]
    recall = np.mean([len(t & f) / len(t) for t, f in zip(truth, found)])
    assert recall >= 0.95 and col.info()["indexes"]["dense"]["kind"] == "hnsw" and col.check() == []
    col.close()
    exact.close()


def test_a_real_model_collection_answers_the_same(scifact_collection, scifact_docs, queries):
    with Collection.open(scifact_collection) as col:  # all-MiniLM-L6-v2, built once per session
        col.delete([d.id for d in scifact_docs[50:150]])
        before = _answers(col, queries, [None])
        assert col.compact()["dead_rows"] > 0
        assert _answers(col, queries, [None]) == before and col.check() == []


def test_nothing_dead_nothing_done(tmp_path, scifact_docs):
    col = Collection.create(tmp_path / "col", profile=_profile("exact-f32"), encoder=FakeEncoder(64))
    col.add(scifact_docs[:30])
    digest = col.store.content_digest()
    assert col.compact()["compacted"] is False and col.store.content_digest() == digest
    col.close()


def test_refused_while_another_handle_is_open_and_nothing_changes(tmp_path, scifact_docs, queries):
    path = tmp_path / "col"
    col = _build(path, scifact_docs, _profile("binary-rescore"))
    server = Collection.open(path, encoder=FakeEncoder(64))  # a server's handle on the same files
    before, digest = _answers(server, queries, [None]), col.store.content_digest()
    listing = sorted(p.name for p in path.iterdir())
    with pytest.raises(CollectionError, match="cannot compact while the collection is open elsewhere"):
        col.compact()
    assert col.store.content_digest() == digest and sorted(p.name for p in path.iterdir()) == listing
    assert _answers(server, queries, [None]) == before == _answers(col, queries, [None])
    server.close()
    assert col.compact()["compacted"]
    col.close()


def test_searches_through_the_same_handle_go_on_while_the_generation_is_written(tmp_path, scifact_docs,
                                                                                  queries, monkeypatch):
    import threading

    from slimvec import compaction

    col = _build(tmp_path / "col", scifact_docs, _profile("exact-f32"))
    before = _answers(col, queries[:3], [None])
    during, real = [], compaction.write_generation

    def searching_meanwhile(*args, **kwargs):
        t = threading.Thread(target=lambda: during.append(_answers(col, queries[:3], [None])))
        t.start()
        t.join()  # would deadlock if the search waited for the compaction
        return real(*args, **kwargs)

    monkeypatch.setattr(compaction, "write_generation", searching_meanwhile)
    col.compact()
    assert during == [before] and _answers(col, queries[:3], [None]) == before
    col.close()


# CI once failed on a server search during a compaction: the staged generation read the field indexes through
# the handle's own SQLite connection while a search thread used it (a sqlite3 connection is for one thread at a
# time: "returned NULL without setting an exception"). Timing made that rare; here any use of it fails at once.
def test_writing_the_generation_never_uses_the_connection_searches_share(tmp_path, scifact_docs, queries,
                                                                          monkeypatch):
    from slimvec import compaction

    col = _build(tmp_path / "col", scifact_docs, _profile("binary-rescore"))
    col.create_field_index(["group"])
    group_b = sorted(d.id for d in scifact_docs[:100] + scifact_docs[200:300] if d.metadata["group"] == "b")
    before = _answers(col, queries[:3], [None])

    class NotFromThisThread:
        def __getattr__(self, name):
            raise AssertionError(f"store.db.{name} used while the new generation is written")

    real = compaction.write_generation

    def guarded(store, *args):
        db, store.db = store.db, NotFromThisThread()
        try:
            return real(store, *args)
        finally:
            store.db = db

    monkeypatch.setattr(compaction, "write_generation", guarded)
    report = col.compact()
    assert report["compacted"] and col.field_indexes() == ["group"]
    assert _answers(col, queries[:3], [None]) == before and col.check() == []
    assert [d.id for d in col.scroll({"group": "b"}, limit=1000)[0]] == group_b != []
    col.close()


def test_a_write_past_the_threshold_compacts(tmp_path, scifact_docs):
    prof = load_profile("binary-rescore").model_copy(update={"compact_threshold": 0.3, "compact_min_dead": 50})
    col = Collection.create(tmp_path / "col", profile=prof, encoder=FakeEncoder(64))
    col.add(scifact_docs[:100])
    rows = col.info()["rows"]
    col.delete([d.id for d in scifact_docs[:20]])  # ~20% dead: below the threshold
    assert 0 < col.info()["dead_rows"] < 0.3 * rows
    col.delete([d.id for d in scifact_docs[20:40]])  # ~40%: compacted by the delete itself
    info = col.info()
    assert info["dead_rows"] == 0 and info["rows"] == info["chunks"] < rows and len(col) == 60
    col.close()
    # compact_threshold None: never by itself, even past the default 1,000 dead rows and the 30% share (a
    # compact_min_dead beside it would be a setting nothing reads, refused at creation)
    never = load_profile("binary-rescore").model_copy(update={"compact_threshold": None})
    with pytest.raises(ConfigError, match="compact_min_dead 1 is never used by this profile"):
        Collection.create(tmp_path / "refused", profile=never.model_copy(update={"compact_min_dead": 1}),
                          encoder=FakeEncoder(64))
    col = Collection.create(tmp_path / "never", profile=never, encoder=FakeEncoder(64))
    col.add(scifact_docs[:1200])
    col.delete([d.id for d in scifact_docs[:1100]])
    assert col.info()["dead_rows"] > 1000
    col.close()


@pytest.mark.parametrize("crash_after", [1, 3, 6])
def test_a_crash_during_the_switch_rolls_forward_on_the_next_open(tmp_path, scifact_docs, queries, monkeypatch,
                                                                   crash_after):
    path = tmp_path / "col"
    col = _build(path, scifact_docs, _profile("hybrid"))
    before, ids = _answers(col, queries, [None, "bm25"]), sorted(d["id"] for d in col.store.iter_documents())
    with crash_after_moves(monkeypatch, crash_after), pytest.raises(KeyboardInterrupt):
        col.compact()
    col.close()
    assert (path / store_switch.INTENT).exists()
    with Collection.open(path, encoder=FakeEncoder(64)) as again:  # rolls forward
        assert again.check() == [] and again.info()["dead_rows"] == 0
        assert sorted(d["id"] for d in again.store.iter_documents()) == ids
        assert _answers(again, queries, [None, "bm25"]) == before
    assert not (path / store_switch.INTENT).exists() and not (path / "compaction").exists()


def test_a_crash_before_the_switch_changes_nothing(tmp_path, scifact_docs, queries, monkeypatch):
    from slimvec.multivector import tokenstore

    path = tmp_path / "col"
    col = _build(path, scifact_docs, _profile("multivector"))
    before, digest = _answers(col, queries, [None]), col.store.content_digest()

    def crash(*_a, **_k):
        raise KeyboardInterrupt("simulated crash while copying tokens")

    monkeypatch.setattr(tokenstore.TokenStore, "copy_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        col.compact()
    assert not (path / "compaction").exists() and col.store.content_digest() == digest
    assert _answers(col, queries, [None]) == before and col.check() == []
    monkeypatch.undo()
    assert col.compact()["compacted"] and _answers(col, queries, [None]) == before
    col.close()


def test_cli_compact_and_info(tmp_path, scifact_docs):
    from typer.testing import CliRunner

    path = tmp_path / "col"
    _build(path, scifact_docs, _profile("exact-f32"), FakeEncoder(64)).close()
    runner = CliRunner()
    with Collection.open(path, encoder=FakeEncoder(64)) as col:
        dead = col.info()["dead_rows"]
    # the CLI opens the collection by its manifest's model name (fake-bow): compaction never loads it
    result = runner.invoke(app, ["compact", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["compacted"] and report["dead_rows"] == dead
    result = runner.invoke(app, ["compact", str(path)])
    assert result.exit_code == 0 and "nothing to compact" in result.output


# ---- SIGKILL during compaction (benchmarks/compact_kills.py runs 100) ------------------------------------------

def test_sigkill_during_compaction_leaves_a_whole_collection(tmp_path, scifact_docs, queries):
    base = tmp_path / "base"
    col = _build(base, scifact_docs, _profile("binary-ivf-rescore", nlist=4))
    expected, ids = _answers(col, queries[:4], [None]), sorted(d["id"] for d in col.store.iter_documents())
    col.close()
    duration = _timed_compaction(tmp_path / "timed", base)
    rng = random.Random(7)
    outcomes = []
    for i in range(10):
        path = tmp_path / f"kill-{i}"
        shutil.copytree(base, path)
        outcomes.append(_run_and_kill(path, rng.uniform(0, 1.1 * duration)))
        with Collection.open(path, encoder=FakeEncoder(64)) as again:
            assert again.check() == [], (i, again.check())
            assert sorted(d["id"] for d in again.store.iter_documents()) == ids
            assert _answers(again, queries[:4], [None]) == expected
            assert again.info()["dead_rows"] in (0, again.info()["rows"] - again.info()["chunks"])
    assert "killed" in outcomes  # at least one kill landed before the compaction finished


def _timed_compaction(path: Path, base: Path) -> float:
    """Seconds one compaction of a copy of `base` takes in the worker, from "open" to its report."""
    shutil.copytree(base, path)
    proc = subprocess.run([sys.executable, str(HERE / "compact_worker.py"), str(path)], capture_output=True,
                          text=True, env=_env())
    assert proc.returncode == 0, proc.stderr
    return float(json.loads(proc.stdout.splitlines()[-1])["seconds"])


def _run_and_kill(path: Path, after: float) -> str:
    """Start a compaction of `path` and SIGKILL it `after` seconds after the collection is open."""
    proc = subprocess.Popen([sys.executable, str(HERE / "compact_worker.py"), str(path)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    try:
        proc.wait(timeout=after)
        return "finished"
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return "killed"


def _env() -> dict[str, str]:
    src = str(HERE.parent / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(HERE), os.environ.get("PYTHONPATH", "")])}


def test_a_running_server_compacts_its_collection_and_keeps_answering(tmp_path, scifact_docs, queries):
    import threading

    import httpx
    from _server_util import AUTH, KEY

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    col = _build(tmp_path / "col", scifact_docs, _profile("binary-rescore"))
    before = [[h.id for h in col.search(q, k=10)] for q in queries[:4]]
    app = create_app({"col": col}, api_key=KEY)
    with server_thread(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        assert http.post("/api/collections/col/compact").status_code == 401  # a write: the key is needed
        seen, stop = [], threading.Event()

        def search_meanwhile():
            while not stop.is_set():
                r = http.get("/api/collections/col/search", params={"q": queries[0], "k": 10})
                seen.append((r.status_code, [h["id"] for h in r.json()["hits"]]))

        t = threading.Thread(target=search_meanwhile)
        t.start()
        r = http.post("/api/collections/col/compact", headers=AUTH)
        stop.set()
        t.join()
        assert r.status_code == 200 and r.json()["compacted"] and r.json()["dead_rows"] > 0
        assert seen and all(s == (200, before[0]) for s in seen)
        after = [[h["id"] for h in http.get("/api/collections/col/search", params={"q": q, "k": 10}).json()["hits"]]
                 for q in queries[:4]]
        assert after == before
        assert http.get("/api/collections/col").json()["dead_rows"] == 0
    col.close()


def test_a_sharded_collection_compacts_every_shard_and_keeps_one_collections_answers(tmp_path, scifact_docs,
                                                                                      queries):
    from slimvec.distributed import create_sharded

    sharded = create_sharded(tmp_path / "sh", shards=2, profile="exact-f32", retrievers=["dense", "bm25"],
                             encoder=FakeEncoder(64))
    one = Collection.create(tmp_path / "one", profile="exact-f32", retrievers=["dense", "bm25"],
                            encoder=FakeEncoder(64))
    for col in (sharded, one):
        col.add(scifact_docs[:120])
        col.delete([d.id for d in scifact_docs[20:70]])
    expected = _answers(one, queries[:5], [None, "bm25", "hybrid"])
    assert _answers(sharded, queries[:5], [None, "bm25", "hybrid"]) == expected
    report = sharded.compact()
    assert report["compacted"] and len(report["shards"]) == 2 and report["dead_rows"] > 0
    assert _answers(sharded, queries[:5], [None, "bm25", "hybrid"]) == expected
    assert sharded.check() == [] and sharded.info()["documents"] == 70
    sharded.close()
    one.close()
