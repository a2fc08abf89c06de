"""Faults found in session 23 by the breaker operating slimvec as a service: a write waiting on SQLite's write lock
held by another program ended in a traceback; exports to Qdrant and LanceDB left a part behind when a write
failed (a Qdrant part imported later as if whole), and reading a missing or busy Qdrant or LanceDB folder made
the folder or ended in a traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes import FakeEncoder

import slimvec
from slimvec import Collection, Document
from slimvec.errors import CollectionError, ConfigError
from slimvec.interop import export_collection, import_records, read_records


def test_a_write_while_another_program_holds_the_database_write_lock_is_one_line_and_then_works(
        tmp_path: Path) -> None:
    from slimvec.store import store

    path = tmp_path / "c"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:
        col.add([Document("a", "alpha beta"), Document("b", "gamma delta")])
    other = sqlite3.connect(path / store.DB, isolation_level=None)  # e.g. a `sqlite3` shell inside BEGIN IMMEDIATE
    other.execute("BEGIN IMMEDIATE")
    try:
        with Collection.open(path, FakeEncoder()) as col:
            col.store.db.execute("PRAGMA busy_timeout = 200")  # the wait (60 s) is not what is tested, its end is
            for write in (lambda: col.add([Document("c", "epsilon")]), lambda: col.delete(["a"]),
                          lambda: col.upsert([Document("b", "changed text")])):
                with pytest.raises(CollectionError, match=r"slimvec\.db: another process has held the database's "
                                                          r"write lock for 0.2 s .*nothing was written"):
                    write()
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Collection.open(path, FakeEncoder()) as col:
        assert col.check() == []
        assert sorted(d["id"] for d in col.store.iter_documents()) == ["a", "b"]
        assert col.get("b").text == "gamma delta"
        col.add([Document("c", "epsilon")])  # the lock let go, the same write goes through
        assert len(col) == 3


def _child_env() -> dict[str, str]:
    here = [str(Path(slimvec.__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(here + [os.environ.get("PYTHONPATH", "")])}


def _texts_collection(path: Path, n: int = 120) -> None:
    """A collection of `n` documents of 150 random words: exports of it do not compress to a few bytes."""
    import random

    rnd = random.Random(7)
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder(max_tokens=4096)) as col:
        col.add([Document(f"d{i}", " ".join(f"{rnd.getrandbits(32):08x}" for _ in range(150))) for i in range(n)])


_EXPORT = """if True:
    import resource, sys
    from fakes import FakeEncoder
    from slimvec import Collection
    from slimvec.errors import SlimvecError
    from slimvec.interop import export_collection
    with Collection.open(sys.argv[1], FakeEncoder(max_tokens=4096)) as col:
        # The limit once the collection is open: its files stay as they are, the export's may not grow past it
        # (EFBIG, as a full disk stops a write; Python ignores SIGXFSZ).
        limit = int(sys.argv[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            export_collection(col, sys.argv[2])
        except SlimvecError as e:
            print("refused:", e)
"""


@pytest.mark.parametrize("kind", ["qdrant", "lancedb", "parquet"])
def test_an_export_stopped_by_a_full_disk_is_one_line_leaves_nothing_and_the_rerun_works(
        tmp_path: Path, kind: str) -> None:
    pytest.importorskip({"parquet": "pyarrow", "lancedb": "lancedb", "qdrant": "qdrant_client"}[kind])
    path = tmp_path / "c"
    _texts_collection(path)
    out = tmp_path / ("out.parquet" if kind == "parquet" else "out")
    target = f"{kind}:{out}"
    done = subprocess.run([sys.executable, "-c", _EXPORT, str(path), target, "20000"], capture_output=True, text=True,
                          env=_child_env())
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"refused: {out}: the export could not be written ("), lines
    assert ".rs:" not in lines[0] and "nothing of it was kept" in lines[0]
    assert not out.exists() and not list(tmp_path.glob("out*"))  # no part to block the rerun or hold the space
    with Collection.open(path, FakeEncoder(max_tokens=4096)) as col:
        assert col.check() == []
        assert export_collection(col, target)["documents"] == 120  # room again: the same export goes through
    assert len({r.doc_id for r in read_records(target)[1]}) == 120


@pytest.mark.parametrize("kind", ["qdrant", "lancedb"])
def test_an_export_failing_into_a_folder_of_other_tables_removes_only_its_own(tmp_path: Path, kind: str) -> None:
    pytest.importorskip({"lancedb": "lancedb", "qdrant": "qdrant_client"}[kind])
    path = tmp_path / "c"
    _texts_collection(path, 20)
    out = tmp_path / "out"
    with Collection.open(path, FakeEncoder(max_tokens=4096)) as col:
        export_collection(col, f"{kind}:{out}#kept")

        def failing(col: Collection):  # a source that fails part-way (as a disk read error would)
            for i, record in enumerate(real(col)):
                if i == 10:
                    raise OSError(5, "Input/output error")
                yield record

        from slimvec.interop import rows

        real = rows.collection_records
        rows.collection_records = failing
        try:
            with pytest.raises(slimvec.errors.ExportError, match="nothing of it was kept"):
                export_collection(col, f"{kind}:{out}#part")
        finally:
            rows.collection_records = real
        with pytest.raises(ConfigError):  # no part to import as if whole
            read_records(f"{kind}:{out}#part")
        assert export_collection(col, f"{kind}:{out}#part")["records"] == 20  # nor one blocking the rerun
    assert len(read_records(f"{kind}:{out}#kept")[1]) == 20


@pytest.mark.parametrize("kind", ["qdrant", "lancedb"])
def test_reading_a_missing_folder_says_so_and_makes_nothing(tmp_path: Path, kind: str) -> None:
    pytest.importorskip({"lancedb": "lancedb", "qdrant": "qdrant_client"}[kind])
    with pytest.raises(ConfigError, match=r"typo: no such folder$"):
        read_records(f"{kind}:{tmp_path / 'typo'}")
    assert not (tmp_path / "typo").exists()  # the libraries make the folder they are given
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"file: not a folder$"):
        read_records(f"{kind}:{tmp_path / 'file'}")
    with pytest.raises(ConfigError, match="no such folder"):
        import_records(f"{kind}:{tmp_path / 'typo'}", tmp_path / "new")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "new").exists()


def test_a_qdrant_folder_another_process_has_open_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    path = tmp_path / "c"
    _texts_collection(path, 5)
    out = tmp_path / "q"
    with Collection.open(path, FakeEncoder(max_tokens=4096)) as col:
        export_collection(col, f"qdrant:{out}")
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from qdrant_client import QdrantClient; "
                               "c = QdrantClient(path=sys.argv[1]); print('open', flush=True); sys.stdin.read()",
                               str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_child_env())
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(ConfigError, match="another process has this Qdrant folder open"):
            read_records(f"qdrant:{out}")
        with Collection.open(path, FakeEncoder(max_tokens=4096)) as col, \
                pytest.raises(ConfigError, match="another process has this Qdrant folder open"):
            export_collection(col, f"qdrant:{out}#more")
    finally:
        holder.communicate("")
    assert len(read_records(f"qdrant:{out}")[1]) == 5


@contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Files of this process may not grow past `limit` bytes while inside (EFBIG, as from a full disk; Python
    ignores SIGXFSZ); the soft limit only, so it is raised back after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_http_writes_stopped_by_the_servers_disk_or_a_lock_are_5xx_naming_the_cause(tmp_path: Path) -> None:
    import httpx
    from _server_util import AUTH, KEY, make_collection, snapshot

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread
    from slimvec.store import store

    col = make_collection(tmp_path / "col")
    before = snapshot(col)
    long = [{"id": "long", "text": " ".join(f"{i:04d}" * 250 for i in range(300))}]  # 300 KB of text, 5 chunks
    many = [{"id": "many", "text": " ".join(f"w{i}" for i in range(60_000))}]  # 1,818 chunks: 230 KB of vectors
    upload = "".join(f'{{"_id": "u{i}", "text": "{"word " * 100}"}}\n' for i in range(400)).encode()  # ~220 KB
    limit = 64 * 1024 + max(p.stat().st_size for p in col.path.rglob("*") if p.is_file())
    app = create_app({"col": col}, api_key=KEY)
    try:
        with server_thread(app) as base, httpx.Client(base_url=base, timeout=60, headers=AUTH) as http:
            with _file_size_limit(limit):
                r = http.post("/api/collections/col/documents", json=long)
                rv = http.post("/api/collections/col/documents", json=many)
                up = http.post("/api/collections/col/documents/upload", files={"file": ("a.jsonl", upload)})
            assert r.status_code == 507, r.text  # 400 said the request was at fault
            assert r.json()["detail"].startswith("col/slimvec.db: the database could not be written"), r.text
            assert rv.status_code == 507, rv.text
            assert rv.json()["detail"].startswith("col/vectors/float32.bin: cannot append 1818 vector rows"), rv.text
            assert up.status_code == 507, up.text
            assert up.json()["detail"].startswith("upload: the server has no room for its temporary copy"), up.text
            assert snapshot(col) == before

            other = sqlite3.connect(col.path / store.DB, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                col.store.db.execute("PRAGMA busy_timeout = 200")  # the wait (60 s) is not what is tested
                r = http.post("/api/collections/col/documents", json=[{"id": "x", "text": "one more"}])
                assert r.status_code == 503, r.text
                assert "another process has held the database's write lock" in r.json()["detail"], r.text
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert snapshot(col) == before
            for docs in (long, many):  # room again, lock let go
                assert http.post("/api/collections/col/documents", json=docs).status_code == 200
            assert http.post("/api/collections/col/documents/upload",
                             files={"file": ("a.jsonl", upload)}).status_code == 200
        assert col.check() == [] and len(col) == len(before) - 1 + 2 + 400
    finally:
        col.close()


@contextmanager
def _folder_read_only(path: Path) -> Iterator[None]:
    """`path` itself read-only, the files in it as they were: `chattr +i` as root (permissions do not stop root),
    else `chmod a-w`."""
    import shutil
    import stat

    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("root needs chattr +i (a file system that supports it) to make a folder read-only")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    mode = path.stat().st_mode
    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        path.chmod(mode)


def test_a_collection_whose_folder_alone_is_read_only_searches_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:
        col.add([Document("a", "cats purr and sleep"), Document("b", "fish swim in the sea")])
    files = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with _folder_read_only(path):
        # Its lock files still open for writing (they are not read-only), which made it look writable: SQLite
        # then failed to make its -wal file beside the database, and even a search ended in a traceback.
        with Collection.open(path, FakeEncoder()) as col:
            assert [h.id for h in col.search("cats purr", k=1)] == ["a"]
            assert col.check() == [] and len(col) == 2
            for write in (lambda: col.add([Document("c", "dogs bark")]), lambda: col.delete(["a"]),
                          lambda: col.upsert([Document("b", "changed")]), col.compact):
                with pytest.raises(CollectionError, match=r"c: cannot write this collection \(permission denied: "
                                                          r"the folder itself\); it can still be searched$"):
                    write()
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == files  # not even the vector file grew
    with Collection.open(path, FakeEncoder()) as col:
        col.add([Document("c", "dogs bark")])
        assert col.check() == [] and len(col) == 3


_CREATE = """if True:
    import resource, sys
    from fakes import FakeEncoder
    from slimvec import Collection, Document
    from slimvec.errors import SlimvecError
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # EFBIG as from a full disk; Python ignores SIGXFSZ
    try:
        with Collection.create(sys.argv[1], profile="exact-f32", encoder=FakeEncoder()) as col:
            col.add([Document("a", "alpha")])
    except SlimvecError as e:
        print("refused:", e)
"""


@pytest.mark.parametrize("empty_folder", [False, True])
def test_a_collection_created_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, empty_folder: bool) -> None:
    # `slimvec index` into a new folder, and `slimvec migrate`'s new target, ended in a traceback ("disk I/O error")
    # and left the folder with its lock files.
    path = tmp_path / "new"
    if empty_folder:
        path.mkdir()
    done = subprocess.run([sys.executable, "-c", _CREATE, str(path), "16384"], capture_output=True, text=True,
                          env=_child_env())
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == (f"refused: {path}: the new collection could not be written (disk I/O error: a full "
                                   "disk, a file size limit or a failing device); nothing of it was left"), done.stdout
    assert (sorted(path.iterdir()) == [] if empty_folder else not path.exists())
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:  # room again: it is made
        col.add([Document("a", "alpha")])
        assert col.check() == [] and len(col) == 1


def test_a_row_added_to_an_export_by_the_targets_own_tools_is_named_where_it_is(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c"
    _texts_collection(path, 5)
    with Collection.open(path, FakeEncoder(max_tokens=4096)) as col:
        export_collection(col, f"qdrant:{tmp_path / 'q'}")
        export_collection(col, f"parquet:{tmp_path / 'p.parquet'}")
    qdrant_client = pytest.importorskip("qdrant_client")
    client = qdrant_client.QdrantClient(path=str(tmp_path / "q"))
    try:  # a point as a Qdrant user writes one: an integer id, its own payload, nested
        client.upsert("slimvec", points=[qdrant_client.models.PointStruct(
            id=12345, vector=[0.0] * 31 + [1.0], payload={"text": "foreign", "nested": {"a": [1, {"b": 2}]}})])
    finally:
        client.close()
    with pytest.raises(ConfigError, match=r"not a readable slimvec export \(ValueError: point 12345: no 'doc_id' "
                                          r"field\)$"):
        read_records(f"qdrant:{tmp_path / 'q'}")
    table = pq.read_table(tmp_path / "p.parquet")
    chunks = table.column("chunk").to_pylist()
    chunks[3] = None
    table = table.set_column(table.schema.get_field_index("chunk"), "chunk", pa.array(chunks, pa.int32()))
    pq.write_table(table, tmp_path / "p2.parquet")  # the schema's metadata (the export's) kept
    with pytest.raises(ConfigError, match=r"\(ValueError: row 3: chunk None: not a whole number\)$"):
        read_records(f"parquet:{tmp_path / 'p2.parquet'}")
    with pytest.raises(ConfigError, match="point 12345"):
        import_records(f"qdrant:{tmp_path / 'q'}", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_the_search_page_shows_the_last_search_when_an_earlier_answer_comes_after_it(tmp_path: Path) -> None:
    """Two searches in a burst (Enter pressed again after changing the query) whose answers cross: the earlier
    one, answered last, replaced the results of the query shown in the box."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from _server_util import make_collection

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium (scripts/setup-browser.sh)")
    col = make_collection(tmp_path / "col")
    app = create_app({"col": col}, api_key=None)
    held: list = []
    try:
        with server_thread(app) as base, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                page = browser.new_page()
                page.goto(base + "/")
                page.wait_for_selector("body[data-ready='1']", timeout=15_000)

                def hold_first(route: object) -> None:  # the first search's answer is kept back (a slow query)
                    if held:
                        route.continue_()  # type: ignore[attr-defined]
                    else:
                        held.append(route)

                page.route("**/api/collections/col/search", hold_first)
                page.fill("#q", "coffee heart disease")
                page.click("#go")
                page.fill("#q", "tumours immune checkpoint")
                page.click("#go")
                page.wait_for_selector("#results li.hit", timeout=15_000)
                first_shown = page.locator("#results li.hit .meta").first.inner_text()
                assert first_shown.startswith("d2"), first_shown
                assert len(held) == 1
                with page.expect_response("**/api/collections/col/search") as answer:
                    held[0].continue_()  # the earlier search is answered now
                answer.value.finished()
                # No event marks a stale answer rightly dropped: let the page's tasks run (read body, render).
                for _ in range(3):
                    page.evaluate("() => new Promise((ok) => setTimeout(ok, 0))")
                shown = page.locator("#results li.hit .meta").first.inner_text()
                assert shown.startswith("d2"), f"results of the earlier query shown for the last: {shown!r}"
                assert page.input_value("#q") == "tumours immune checkpoint"
            finally:
                browser.close()
    finally:
        col.close()


_IMPORT = """if True:
    import resource, sys
    from fakes import FakeEncoder
    from slimvec import registry
    from slimvec.errors import SlimvecError
    from slimvec.interop import import_records
    registry.register("encoder", "fake-bow", FakeEncoder)  # the model the export names
    limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # EFBIG as from a full disk; Python ignores SIGXFSZ
    try:
        import_records(sys.argv[1], sys.argv[2]).close()
    except SlimvecError as e:
        print("refused:", e)
"""


@pytest.mark.parametrize("limit", [16_384, 150_000])  # stopped making the collection / committing its rows
def test_an_import_stopped_by_a_full_disk_names_the_target_not_its_hidden_folder(tmp_path: Path, limit: int) -> None:
    path = tmp_path / "c"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"text {i} " + "word " * 2000) for i in range(40)])  # 400 KB of text
        export_collection(col, f"parquet:{tmp_path / 'e.parquet'}")
    target = tmp_path / "new"
    done = subprocess.run([sys.executable, "-c", _IMPORT, f"parquet:{tmp_path / 'e.parquet'}", str(target), str(limit)],
                          capture_output=True, text=True, env=_child_env())
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"refused: {target}: the import could not be written, nothing of it was left ("), line
    assert ".import-" not in line and "holds what it held" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "e.parquet"]


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda p: (p / "vectors" / "float32.bin").unlink() or (p / "vectors" / "float32.bin").mkdir(),
     "problem: vector file vectors/float32.bin is a folder, not a file (2 rows committed)"),  # was "holds 0 rows"
    (lambda p: shutil.rmtree(p / "vectors") or (p / "vectors").write_text(""),
     "problem: vectors is a file, not a folder (2 rows committed)"),  # was an OS error, exit 2
    (lambda p: (p / "slimvec.db").unlink() or (p / "slimvec.db").mkdir(),
     "problem: cannot open the collection: "),
])
def test_check_reports_a_file_and_a_folder_swapped_as_a_problem(tmp_path: Path, damage, expected: str) -> None:
    import fcntl

    from typer.testing import CliRunner

    from slimvec.cli import app

    path = tmp_path / "c"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:
        col.add([Document("a", "alpha"), Document("b", "beta")])
    damage(path)
    res = CliRunner().invoke(app, ["check", str(path)])
    assert res.exit_code == 1 and " ".join(res.stdout.split()).startswith(expected), (res.exit_code, res.output)
    kept = None
    try:
        Collection.open(path, FakeEncoder()).close()
    except (CollectionError, OSError) as e:
        kept = e  # a caller keeping the error (to log it) keeps its traceback's frames, and what they hold
    # A failed open lets go of its share of the readers' lock at once: held, it blocked every compaction and
    # switch of the collection (in any process) for as long as the error was kept.
    with open(path / ".readers.lock", "a+") as probe:
        fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    del kept


_KILLED_EXPORT = """if True:
    import os, signal, sys
    from fakes import FakeEncoder
    from slimvec import Collection
    from slimvec.interop import export_collection, rows
    real = rows.collection_records

    def killed_part_way(col):  # the process is killed (OOM killer, kill -9) part-way through the records
        for i, record in enumerate(real(col)):
            if i == 10 + 256:  # past the first batch of 256 points, which Qdrant has stored
                os.kill(os.getpid(), signal.SIGKILL)
            yield record

    rows.collection_records = killed_part_way
    with Collection.open(sys.argv[1], FakeEncoder()) as col:
        export_collection(col, sys.argv[2])
"""


def test_a_qdrant_export_killed_part_way_is_not_read_as_a_whole_export(tmp_path: Path) -> None:
    pytest.importorskip("qdrant_client")
    path = tmp_path / "c"
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"text {i}") for i in range(300)])
    target = f"qdrant:{tmp_path / 'q'}"
    done = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(path), target], capture_output=True, text=True,
                          env=_child_env())
    assert done.returncode == -9, done.stderr
    # The export's metadata was written with the collection, first: the 256 points stored before the kill then
    # read, and imported, as a whole export of 256 documents.
    with pytest.raises(ConfigError, match="is not a slimvec export"):
        read_records(target)
