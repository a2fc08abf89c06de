"""Session 16 breaker: several processes (or handles) on one collection, and kills at unlucky moments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimvec import Collection, Document

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def _docs(prefix: str, n: int, start: int = 0) -> list[Document]:
    return [Document(f"{prefix}-{i}", f"{prefix} document {i} " + " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8)),
                     metadata={"i": i, "p": prefix}) for i in range(start, start + n)]


def _search_with_a_commit_at(reader: Collection, at: int, commit: Callable[[], None], query: str, **search: Any):
    """`reader.search(**search)` while another handle commits (`commit`) just as the reader's `at`-th SQL
    statement starts; returns (hits, whether the commit happened). The other handle has its own connection, as
    another process has: this puts its commit between any two reads of one search, deterministically."""
    count, fired = [0], [False]

    def trace(_sql: str) -> None:
        count[0] += 1
        if count[0] == at:
            fired[0] = True
            commit()

    reader.store.db.set_trace_callback(trace)
    try:
        return reader.search(query, **search), fired[0]
    finally:
        reader.store.db.set_trace_callback(None)


@pytest.mark.parametrize("profile", ["exact-f32", "hybrid"])
def test_a_commit_between_any_two_reads_of_a_search_is_seen_whole_or_not_at_all(tmp_path: Path, profile: str) -> None:
    # A long-lived reader (a server) catching up while another process adds: a commit landing between the reader's
    # reads of the row count and of the chunk rows (IndexError in RowMap.update), or between the catch-up and a
    # filter's read (IndexError in _allowed), used to end the search in a traceback.
    writer = Collection.create(tmp_path / "c", model="wordllama", profile=profile)
    writer.add(_docs("seed", 6))
    reader = Collection.open(tmp_path / "c", encoder=writer.encoder)
    added = 0
    # ids only, no filter: the search reads nothing from the database after catching up (no read transaction)
    for flt, payload in ((None, True), ({"i": {"$gte": 0}}, True), (None, False)):
        at = 1
        while True:
            writer.add(_docs("before", 1, start=added))  # the reader has catching up to do at its next search
            batch = _docs("during", 1, start=added)
            added += 1
            hits, fired = _search_with_a_commit_at(reader, at, lambda b=batch: writer.add(b), "alpha beta",
                                                   k=100, filter=flt, with_payload=payload)
            ids = [h.id for h in hits]
            assert len(ids) == len(set(ids))
            assert {f"seed-{i}" for i in range(6)} | {f"before-{i}" for i in range(added)} <= set(ids)
            assert set(ids) <= {f"seed-{i}" for i in range(6)} | {f"before-{i}" for i in range(added)} | {
                f"during-{i}" for i in range(added)}
            if not fired:
                break
            at += 1
        assert at > (1 if not payload else 3)  # a commit was put before each of the search's reads
    assert reader.check() == []
    reader.close()
    writer.close()


def test_a_document_upserted_by_another_handle_during_a_search_is_never_missing(tmp_path: Path) -> None:
    # An upsert replaces a document in one transaction: it is stored at every instant. A search that ranked its old
    # row and then read the hits' text after the upsert committed used to leave it out of the results.
    writer = Collection.create(tmp_path / "c", model="wordllama")
    writer.add(_docs("seed", 5) + [Document("shared", "shared version 0 alpha beta gamma")])
    reader = Collection.open(tmp_path / "c", encoder=writer.encoder)
    version, at = 0, 1
    while True:
        version += 1
        text = f"shared version {version} alpha beta gamma"
        hits, fired = _search_with_a_commit_at(reader, at, lambda t=text: writer.upsert([Document("shared", t)]),
                                               "alpha beta", k=100)
        shared = [h for h in hits if h.id == "shared"]
        assert len(shared) == 1, (at, [h.id for h in hits])
        assert shared[0].snippet in {f"shared version {version - 1} alpha beta gamma", text}
        if not fired:
            break
        at += 1
    assert at > 2
    reader.close()
    writer.close()


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b""])
def test_a_bm25_postings_file_cut_short_is_rebuilt_not_a_traceback(tmp_path: Path, damage) -> None:
    # index/bm25/postings-*.npz (scores.npz before them) is derived (written without fsync, so a power cut can leave
    # it short): `search` and `check` ended in zipfile.BadZipFile. It is now rebuilt from the token rows, with the
    # same answers.
    col = Collection.create(tmp_path / "c", model="wordllama", profile="hybrid")
    col.add(_docs("d", 30))
    want = [(h.id, h.score) for h in col.search("alpha delta document 7", k=10)]
    col.close()
    segments = list((tmp_path / "c" / "index" / "bm25").glob("postings-*.npz"))
    assert segments
    for segment in segments:
        segment.write_bytes(damage(segment.read_bytes()))
    with Collection.open(tmp_path / "c") as again:
        assert again.check() == []
        assert [(h.id, pytest.approx(h.score)) for h in again.search("alpha delta document 7", k=10)] == want


def test_a_full_database_refuses_the_commit_in_one_line_and_keeps_the_collection(tmp_path: Path) -> None:
    # SQLite rolls a transaction back itself on SQLITE_FULL; the store's ROLLBACK then raised "cannot rollback - no
    # transaction is active", hiding the cause behind a traceback. The page limit is SQLite's own way to be full.
    from slimvec.errors import CollectionError

    col = Collection.create(tmp_path / "c", model="wordllama", profile="bm25")
    col.add(_docs("a", 5))
    before = col.store.content_digest()
    pages = col.store.db.execute("PRAGMA page_count").fetchone()[0]
    col.store.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(CollectionError, match="slimvec.db: the database or disk is full; this commit was rolled back"):
        col.add([Document(f"b{i}", "gamma delta " * 3000) for i in range(5)])
    assert col.store.content_digest() == before and col.check() == []
    col.store.db.execute("PRAGMA max_page_count = 1073741823")  # room again: the next write works
    assert col.add(_docs("c", 2)) == 2 and len(col) == 7
    col.close()


def test_index_past_the_file_size_limit_is_one_line_and_keeps_the_collection(tmp_path: Path) -> None:
    # A full disk (here: the process's file size limit, EFBIG) while the vector rows are appended ended
    # `slimvec index` in an OSError traceback.
    import json
    import resource
    import subprocess
    import sys

    col = Collection.create(tmp_path / "c", model="wordllama")
    col.add(_docs("a", 5))
    before = col.store.content_digest()
    col.close()
    src = tmp_path / "big.jsonl"
    src.write_text("".join(json.dumps({"_id": f"b{i}", "text": f"z{i} " * 4000}) + "\n" for i in range(10)))
    limit = (tmp_path / "c" / "slimvec.db").stat().st_size + 65536

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "slimvec.cli", "index", str(src), "-c", str(tmp_path / "c")],
                          capture_output=True, text=True, preexec_fn=small_files)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "cannot append" in done.stderr and "File too large" in done.stderr
    with Collection.open(tmp_path / "c") as again:
        assert again.check() == [] and again.store.content_digest() == before
        assert again.add(_docs("c", 2)) == 2


def test_an_import_killed_before_its_commit_leaves_nothing_and_the_rerun_works(tmp_path: Path) -> None:
    # `slimvec import` created the collection, then committed the records: a kill in between left an empty
    # collection that `check` passed and that made the rerun fail ("a collection already exists here").
    import subprocess
    import sys

    src = Collection.create(tmp_path / "src", model="wordllama")
    src.add(_docs("d", 12))
    want = {d["id"] for d in src.store.iter_documents()}
    src.close()
    export = f"parquet:{tmp_path / 'x.parquet'}"
    assert subprocess.run([sys.executable, "-m", "slimvec.cli", "export", str(tmp_path / "src"), "--to", export],
                          capture_output=True, text=True).returncode == 0
    child = tmp_path / "killed_import.py"  # the kill lands at the commit, in the child only
    child.write_text("import os, signal, sys\n"
                     "from slimvec.collection import Collection\n"
                     "Collection.add_encoded = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
                     "from slimvec.cli import app\n"
                     "sys.argv = ['slimvec', 'import', sys.argv[1], '-c', sys.argv[2]]\n"
                     "app()\n")
    target = tmp_path / "imported"
    killed = subprocess.run([sys.executable, str(child), export, str(target)], capture_output=True, text=True)
    assert killed.returncode == -9
    assert not (target / "manifest.json").exists()
    again = subprocess.run([sys.executable, "-m", "slimvec.cli", "import", export, "-c", str(target)],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with Collection.open(target) as col:
        assert col.check() == [] and {d["id"] for d in col.store.iter_documents()} == want
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported", "killed_import.py", "src", "x.parquet"]


def _paused_index(tmp_path: Path, hook: str) -> Path:
    """A script running `slimvec index SOURCE -c DIR --model wordllama`, that prints "paused" and waits for a line
    on stdin at `hook` ("create": before the new collection is made, then goes on; "upsert": before its documents
    are written, then is interrupted as by Ctrl-C)."""
    script = tmp_path / f"paused_{hook}.py"
    script.write_text(
        "import sys\n"
        "from slimvec.collection import Collection\n"
        f"real = Collection.{hook}\n"
        "def paused(*a, **k):\n"
        "    print('paused', flush=True)\n"
        "    sys.stdin.readline()\n"
        + ("    return real(*a, **k)\nCollection.create = classmethod(lambda cls, *a, **k: paused(*a, **k))\n"
           if hook == "create" else "    raise KeyboardInterrupt\nCollection.upsert = paused\n")
        + "from slimvec.cli import app\n"
        "sys.argv = ['slimvec', 'index', sys.argv[1], '-c', sys.argv[2], '--model', 'wordllama']\n"
        "app()\n")
    return script


def _jsonl(path: Path, ids: list[str]) -> Path:
    import json

    path.write_text("".join(json.dumps({"_id": i, "text": f"text of {i} alpha beta"}) + "\n" for i in ids))
    return path


def test_two_index_runs_creating_one_collection_at_once_both_store_their_documents(tmp_path: Path) -> None:
    # Both saw no manifest and both created: one failed with "a collection already exists here" (or "directory is
    # not empty and holds no collection") and its documents were not stored.
    import subprocess
    import sys
    import time

    target = tmp_path / "col"
    first = subprocess.Popen([sys.executable, str(_paused_index(tmp_path, "create")),
                              str(_jsonl(tmp_path / "a.jsonl", ["a1", "a2"])), str(target)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "paused"  # it found no collection and is about to create one
    second = subprocess.Popen([sys.executable, "-m", "slimvec.cli", "index", str(_jsonl(tmp_path / "b.jsonl", ["b1"])),
                               "-c", str(target), "--model", "wordllama"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Let the second run as far as it goes before the first creates: until it has made the collection itself (as it
    # did before) or it waits for the first's flock (seen in /proc/locks).
    for _ in range(600):
        waiting = any(line.split()[1:3] == ["->", "FLOCK"] and line.split()[5] == str(second.pid)
                      for line in Path("/proc/locks").read_text().splitlines())
        if waiting or target.exists() or second.poll() is not None:
            break
        time.sleep(0.05)
    out, err = first.communicate("\n")
    assert first.returncode == 0, err
    out2, err2 = second.communicate()
    assert second.returncode == 0, err2
    with Collection.open(target) as col:
        assert sorted(d["id"] for d in col.store.iter_documents()) == ["a1", "a2", "b1"] and col.check() == []


def test_a_failed_index_does_not_remove_the_new_collection_another_process_has_open(tmp_path: Path) -> None:
    # A failed `slimvec index` removes the collection it created when it stayed empty. Another process that had
    # opened it meanwhile (a second index, a server) then wrote into removed files: its documents were lost.
    import subprocess
    import sys

    target = tmp_path / "col"
    failing = subprocess.Popen([sys.executable, str(_paused_index(tmp_path, "upsert")),
                                str(_jsonl(tmp_path / "a.jsonl", ["x"])), str(target)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert failing.stdout.readline().strip() == "paused"  # the collection is made, nothing added yet
    other = Collection.open(target)
    failing.communicate("\n")  # then the run is interrupted
    assert failing.returncode != 0
    assert other.add(_docs("kept", 2)) == 2
    other.close()
    with Collection.open(target) as col:
        assert sorted(d["id"] for d in col.store.iter_documents()) == ["kept-0", "kept-1"] and col.check() == []


def test_check_while_another_process_commits_reports_no_damage(tmp_path: Path) -> None:
    # `check` read the committed row count, then the chunks and checksummed batches after another commit: it reported
    # "1 chunks point past the committed vector rows" or "vector rows 9..9 fail their checksum" on a healthy
    # collection (and `slimvec check` exited 1, "damaged").
    writer = Collection.create(tmp_path / "c", model="wordllama")
    writer.add(_docs("seed", 5))
    reader = Collection.open(tmp_path / "c", encoder=writer.encoder)
    at = 1
    while True:
        count, fired = [0], [False]

        def trace(_sql: str, at: int = at, count: list = count, fired: list = fired) -> None:
            count[0] += 1
            if count[0] == at:
                fired[0] = True
                writer.add(_docs("during", 1, start=at))

        reader.store.db.set_trace_callback(trace)
        try:
            assert reader.check() == [], at
        finally:
            reader.store.db.set_trace_callback(None)
        if not fired[0]:
            break
        at += 1
    assert at > 5
    reader.close()
    writer.close()


def test_export_while_another_process_commits_writes_one_state(tmp_path: Path) -> None:
    # The export read the committed row count (its vector memmap), then the documents: a commit in between ended it
    # in IndexError, and one later made its summary count documents it had not written.
    from slimvec.interop import export_collection, read_records

    writer = Collection.create(tmp_path / "c", model="wordllama")
    writer.add(_docs("seed", 4))
    reader = Collection.open(tmp_path / "c", encoder=writer.encoder)
    for at in range(1, 8):  # a commit before each of the export's first reads
        count = [0]

        def trace(_sql: str, at: int = at, count: list = count) -> None:
            count[0] += 1
            if count[0] == at:
                writer.add(_docs("during", 1, start=at))

        reader.store.db.set_trace_callback(trace)
        try:
            out = export_collection(reader, f"parquet:{tmp_path / f'x{at}.parquet'}")
        finally:
            reader.store.db.set_trace_callback(None)
        _, records = read_records(f"parquet:{tmp_path / f'x{at}.parquet'}")
        ids = {r.doc_id for r in records}
        assert out["records"] == len(records) and out["documents"] == len(ids)
        assert {f"seed-{i}" for i in range(4)} <= ids
    reader.close()
    writer.close()
