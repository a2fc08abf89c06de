"""Faults reported by session 16's breaker and newcomer, fixed in session 17: a write whose commit landed but
whose derived-file save then failed (a full disk) was reported as failed, a database write past the file size
limit ended in a traceback, and HTTP error texts named the directory where the server keeps a collection."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from slimvec import Collection, Document


def test_a_commit_whose_derived_save_hits_a_full_disk_is_reported_committed(tmp_path: Path) -> None:
    # The HNSW graph file is larger than the vector file (links), so a file size limit between the two lets
    # the commit land (vector rows, database) and stops only the graph's save: EFBIG as from a full disk.
    path = tmp_path / "c"
    with Collection.create(path, model="wordllama", profile="hnsw-f32") as col:
        col.add([Document(f"a{i}", f"word{i}") for i in range(5)])
        before = {d["id"] for d in col.store.iter_documents()}
    src = tmp_path / "more.jsonl"
    src.write_text("".join(json.dumps({"_id": f"b{i}", "text": f"w{i}"}) + "\n" for i in range(3000)))
    limit = 3_500_000  # 3,005 rows: vectors 3.08 MB (256-d float32), graph about 3.9 MB, database ~0.25 MB

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "slimvec.cli", "index", str(src), "-c", str(path)],
                          capture_output=True, text=True, preexec_fn=small_files)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "the write is committed, but the derived index files were not saved" in done.stderr
    assert "HNSW graph could not be written" in done.stderr
    assert not (path / "index" / "hnsw.faiss.tmp").exists()  # the part written would hold the space
    assert (path / "vectors" / "float32.bin").stat().st_size < limit < 3005 * 1024 + 3005 * 64 * 4
    with Collection.open(path) as again:  # the graph catches up from the committed rows
        assert again.check() == [] and len(again) == 3005
        assert {d["id"] for d in again.store.iter_documents()} == before | {f"b{i}" for i in range(3000)}
        assert again.search("w1234", k=1, mode="dense")[0].id == "b1234"
        assert again.info()["indexes"]["dense"]["rows"] == 3005


def test_http_errors_name_the_collection_not_the_servers_directory(tmp_path: Path) -> None:
    import httpx
    from _server_util import AUTH, KEY

    from slimvec.server import create_app
    from slimvec.server.errors import without_server_paths
    from slimvec.server.runner import server_thread

    path = tmp_path / "data" / "col"
    col = Collection.create(path, model="wordllama")
    col.add([Document(f"d{i}", f"text {i}") for i in range(4)])
    col.upsert([Document("d0", "replaced text")])  # a dead row: something to compact
    other = Collection.open(path)  # a second handle: compaction refuses, naming the collection's directory
    app = create_app({"col": col}, api_key=KEY)
    try:
        with server_thread(app) as base, httpx.Client(base_url=base, timeout=60, headers=AUTH) as http:
            r = http.post("/api/collections/col/compact")
            assert r.status_code == 400, r.text
            detail = r.json()["detail"]
            assert detail.startswith("col: cannot compact while the collection is open elsewhere"), detail
            assert str(tmp_path) not in detail
    finally:
        other.close()
        col.close()
    # a path inside another served one is written as the inner collection's name, whichever is listed first
    served = {"outer": type("C", (), {"path": tmp_path / "a"})(), "inner": type("C", (), {"path": tmp_path / "a" / "b"})()}
    assert without_server_paths(f"{tmp_path / 'a' / 'b'}/x.npz: bad; {tmp_path / 'a'}/y: bad", served) == \
        "inner/x.npz: bad; outer/y: bad"


def test_a_database_write_past_the_file_size_limit_is_one_line_and_rolled_back(tmp_path: Path) -> None:
    # SQLite reports a write past the file size limit (ulimit -f) as SQLITE_IOERR, not SQLITE_FULL: `slimvec
    # index` ended in "OperationalError: disk I/O error". Whole-document chunks keep the vector file small, so the
    # database's write-ahead log (the documents' text) is the file that reaches the limit.
    path = tmp_path / "c"
    with Collection.create(path, model="wordllama", chunk_mode="whole") as col:
        col.add([Document(f"a{i}", f"word{i}") for i in range(5)])
        before = col.store.content_digest()
    src = tmp_path / "big.jsonl"
    src.write_text("".join(json.dumps({"_id": f"b{i}", "text": f"z{i} " * 4000}) + "\n" for i in range(20)))
    limit = max(p.stat().st_size for p in path.rglob("*") if p.is_file()) + 65536

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "slimvec.cli", "index", str(src), "-c", str(path)],
                          capture_output=True, text=True, preexec_fn=small_files)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "OperationalError" not in done.stderr
    assert f"{path / 'slimvec.db'}: the database could not be written (disk I/O error" in done.stderr
    assert "this commit was rolled back" in done.stderr
    with Collection.open(path) as again:
        assert again.check() == [] and again.store.content_digest() == before and len(again) == 5
        assert again.add([Document("c0", "room again")]) == 1


def test_a_write_through_another_thread_while_export_runs_is_not_refused(tmp_path: Path, monkeypatch) -> None:
    # `export` read the store in a transaction on the handle's one connection outside the state lock (as `check`
    # did: the s17 breaker's report): an add through another thread meanwhile failed with sqlite3's "cannot start a
    # transaction within a transaction".
    from fakes import FakeEncoder
    from test_s17_break_fixes import start_adding

    from slimvec.interop import rows

    col = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    try:
        col.add([Document("a", "alpha"), Document("b", "beta")])
        real, seen = rows.collection_records, {}

        def records_while_adding(c):
            start_adding(col, Document("c", "gamma"), seen)  # the add reaches its commit while the export reads
            yield from real(c)

        monkeypatch.setattr(rows, "collection_records", records_while_adding)
        done = rows.export_collection(col, f"parquet:{tmp_path / 'x.parquet'}")
        seen["adder"].join(60)  # a deadlock guard only
        assert not seen["adder"].is_alive() and seen.get("error") is None and seen["added"] == 1
        assert done["documents"] == 2 and done["records"] == 2  # the state the export began in
        assert len(col) == 3 and col.check() == []
    finally:
        col.close()


def test_http_tune_on_a_full_disk_is_507_naming_the_file(tmp_path: Path) -> None:
    # Writing the probe query file on a full disk (here: a file size limit, EFBIG) ended in a 500 "internal server
    # error" (the s17 breaker's report): now 507 naming the file, and the collection is left as it was.
    import os
    import time

    import httpx

    from slimvec.server.runner import free_port

    path = tmp_path / "col"
    with Collection.create(path, model="wordllama", profile="hnsw-f32") as col:
        col.add([Document(f"d{i}", f"document {i} about topic {i % 7}") for i in range(60)])
    port, limit = free_port(), 65536  # room for SQLite's 32 kB shared-memory file; 100 query vectors take 100 kB

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    exe = os.path.join(os.path.dirname(sys.executable), "slimvec")
    proc = subprocess.Popen([exe, "serve", str(path), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=small_files)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            try:
                httpx.get(base + "/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        queries = [f"what is topic {i}" for i in range(100)]
        r = httpx.post(base + "/api/collections/col/tune", json={"queries": queries}, timeout=120)
        assert r.status_code == 507, r.text
        assert r.json()["detail"] == ("col/probe_queries.npz: File too large; run `slimvec check` on the collection "
                                      "once there is room")
        info = httpx.get(base + "/api/collections/col", timeout=60).json()
        assert info["indexes"]["dense"]["calibration"]["probes"] == "rows"  # as it was
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert sorted(p.name for p in path.iterdir() if "probe" in p.name) == []  # no file, no partial file
