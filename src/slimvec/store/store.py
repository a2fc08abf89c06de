"""The on-disk collection: SQLite (WAL) for documents and chunks, a row-aligned float32 vector file.

Commit protocol (why a crash at any instant leaves the old or the new state, never a mix):
1. take the collection's writer lock (one writer at a time, across processes);
2. cut the vector file back to the committed row count, dropping rows a crashed writer left behind;
3. append the new rows and fsync them;
4. in ONE SQLite transaction insert documents and chunks pointing at those rows and bump `rows`.
Step 4 is the commit point: until it lands, readers see only the old row count, and the extra
vector rows are ignored (and cut by the next writer). Index files are derived data, rebuilt or
extended from the vector file on open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import sqlite3
import stat
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from slimvec.atomic import check_place, write_json_atomic
from slimvec.errors import BusyError, CollectionError, NoRoomError, no_room
from slimvec.ids import lone_surrogate
from slimvec.store import probes, switch
from slimvec.store.switch import READERS_LOCK

FORMAT = "slimvec-collection"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB = "slimvec.db"
VECTORS = "vectors/float32.bin"

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL CHECK (json_valid(metadata))
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    section_id TEXT,
    heading_path TEXT
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (start_row INTEGER PRIMARY KEY, end_row INTEGER NOT NULL, crc32 INTEGER NOT NULL);
"""
# Each deleted or replaced chunk row under the dead-row count it takes (`rows_deleted`); added on open to
# collections made before it (`_add_dead_log`).
_DEAD_LOG = "CREATE TABLE IF NOT EXISTS dead_log (seq INTEGER PRIMARY KEY, row INTEGER NOT NULL)"

_NEXT_GENERATION = "UPDATE state SET value = value + 1 WHERE key = 'generation'"  # every commit moves it

# Field indexes (`create_field_index`), made with the first one: a term row per indexed JSON path and document,
# one per element for an array (elem 1), kept in step with `documents` by triggers inside every writing
# transaction, so each write path (add, upsert, delete, compaction's copy, a writer that predates them) keeps them.
_FIELD_INDEX = (
    "CREATE TABLE IF NOT EXISTS field_index (path TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS field_terms (path TEXT NOT NULL, doc_id TEXT NOT NULL, elem INTEGER NOT NULL, "
    "kind TEXT NOT NULL, value)",
    "CREATE INDEX IF NOT EXISTS field_terms_value ON field_terms(path, kind, value)",
    "CREATE INDEX IF NOT EXISTS field_terms_doc ON field_terms(doc_id)",
    """CREATE TRIGGER IF NOT EXISTS field_terms_add AFTER INSERT ON documents BEGIN
    INSERT INTO field_terms (path, doc_id, elem, kind, value)
        SELECT f.path, NEW.id, json_type(NEW.metadata, f.path) = 'array', je.type, je.value
        FROM field_index f, json_each(NEW.metadata, f.path) je
        WHERE json_type(NEW.metadata, f.path) NOT IN ('object');
END""",
    """CREATE TRIGGER IF NOT EXISTS field_terms_drop AFTER DELETE ON documents BEGIN
    DELETE FROM field_terms WHERE doc_id = OLD.id;
END""",
    # A marker row per document holding the key (any value: null, an empty array, an object), so `$exists: true`
    # can drive too. Trusted for a path only while its sentinel row (doc_id '', no document has it) is there:
    # indexes made before the markers, or again by a slimvec that predates them, have none (`_MARK_EXISTS`).
    """CREATE TRIGGER IF NOT EXISTS field_terms_exists AFTER INSERT ON documents BEGIN
    INSERT INTO field_terms (path, doc_id, elem, kind, value)
        SELECT f.path, NEW.id, 0, 'exists', NULL FROM field_index f WHERE json_type(NEW.metadata, f.path) IS NOT NULL;
END""",
)
# Markers for JSON path ?1 over every stored document, then its sentinel: run in the transaction that indexes it
# (or upgrades an index made without markers), after clearing the path's old markers.
_MARK_EXISTS = (
    "DELETE FROM field_terms WHERE path = ?1 AND kind IN ('exists', 'marked')",
    "INSERT INTO field_terms (path, doc_id, elem, kind, value) "
    "SELECT ?1, d.id, 0, 'exists', NULL FROM documents d WHERE json_type(d.metadata, ?1) IS NOT NULL",
    "INSERT INTO field_terms (path, doc_id, elem, kind, value) VALUES (?1, '', 0, 'marked', NULL)",
)
# The term rows of JSON path ?1 for every stored document: what the triggers keep, made at once.
_FIELD_TERMS_DUE = """SELECT ?1, d.id, json_type(d.metadata, ?1) = 'array', je.type, je.value
    FROM documents d, json_each(d.metadata, ?1) je WHERE json_type(d.metadata, ?1) NOT IN ('object')"""
_FIELD_TERMS_OF = "INSERT INTO field_terms (path, doc_id, elem, kind, value) " + _FIELD_TERMS_DUE

# SQLite's LIMIT is a signed 64-bit integer: a larger page size (a caller's "everything") is every document.
_MAX_LIMIT = 2**63 - 1

# Columns added to `chunks` after format version 1 was released, each nullable (NULL = "not known"), with the
# SQL type they are added with. They do not bump FORMAT_VERSION: a reader or writer that predates them names
# its columns in every statement (INSERT INTO chunks (row, doc_id, idx, start, end) ..., SELECT c.row, ...;
# only content_digest reads SELECT *, and it just hashes whatever columns there are), so it neither sees them
# nor fails on them, and its new chunks simply carry NULL (no section known), which every reader here treats
# as a chunk without a given section. Opening a collection made before them adds
# them (see `Store._add_missing_columns`).
_ADDED_CHUNK_COLUMNS = {
    "section_id": "TEXT",  # the given section a chunk was made from (`Chunk.section_id`)
    "heading_path": "TEXT",  # its heading path as a JSON array of strings ("Intro", "Setup"), when it has one
}


# Every open Store holds a shared flock on this file for its lifetime, so a process that must replace the
# collection's files (a compaction's or a migration's switch, `store.switch`) can tell, with an exclusive
# non-blocking flock, that no other handle still reads them: SQLite deletes `-wal` by path when a connection
# closes, and rescoring reopens the vector file by path, so no handle may outlive the files it opened.


def field_index_paths(db: sqlite3.Connection | sqlite3.Cursor, schema: str = "main") -> frozenset[str]:
    """The JSON paths with a field index in database `schema` of `db` (an attached one: "old")."""
    try:
        return frozenset(p for (p,) in db.execute(f"SELECT path FROM {schema}.field_index"))  # noqa: S608
    except sqlite3.OperationalError:  # no field index was ever made: the table is made with the first
        return frozenset()


def field_exists_paths(db: sqlite3.Connection | sqlite3.Cursor) -> frozenset[str]:
    """The indexed JSON paths whose `$exists` markers are complete (their sentinel row is there)."""
    try:
        return frozenset(p for (p,) in db.execute("SELECT path FROM field_terms WHERE doc_id = '' AND kind = 'marked'"))
    except sqlite3.OperationalError:  # no field index was ever made
        return frozenset()


def _hold_shared(path: Path) -> Any:
    """The open lock file of collection `path` holding a shared flock (waits out a switch in progress, and
    rolls forward one a crash interrupted), or None where the directory cannot be written (a read-only
    collection: nothing can switch its files either). Taken before any file of the collection is opened."""
    while True:
        try:
            f = open(path / READERS_LOCK, "a+")
        except OSError:
            return None
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        if not (path / switch.INTENT).exists():
            return f
        f.close()
        switch.finish(path)


def _remove_made(path: Path, existed: bool) -> None:
    """Remove what a failed `Store.create` made at `path`: the folder, or what it put in one that was empty."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _connect_read_only(db: Path) -> sqlite3.Connection:
    """A connection to the database of a collection whose directory cannot be written (a read-only mount, a
    shared dataset): in WAL mode SQLite must create the -shm file even to read, so a database closed cleanly
    (no -wal file left) is opened `immutable=1`, and one with a -wal file left needs that file's -shm too.

    Raises CollectionError (one line) when a -wal file is left without its -shm: the last commits live only there.
    """
    wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
    if wal.exists() and wal.stat().st_size > 0:
        if not shm.exists():
            raise CollectionError(f"{db}: read-only, and its last commits are still in {wal.name}; open it once where "
                                  "it can be written (any slimvec command), then it reads anywhere")
        uri = f"{db.resolve().as_uri()}?mode=ro"
    else:
        uri = f"{db.resolve().as_uri()}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None, check_same_thread=False)


def _read_only(e: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused a write because the database is read-only (an upgrade step on open then leaves the
    collection as it is)."""
    return "readonly" in str(e).replace(" ", "").lower()


class StoredChunk(NamedTuple):
    """A chunk row joined with its document, as search needs it (`text` is the chunk's own text).

    A named tuple rather than a frozen dataclass: search builds one per hit, and this is 3x cheaper.
    """

    row: int
    doc_id: str
    start: int
    end: int
    title: str
    text: str
    metadata: dict[str, Any]
    section_id: str | None = None  # the given section the chunk was made from, None when it has none


class ChunkSection(NamedTuple):
    """Where a chunk row lies: its document, its given section (None when it has none) and its character span."""

    row: int
    doc_id: str
    section_id: str | None
    heading_path: tuple[str, ...]
    start: int
    end: int


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the types of a manifest's core fields (a hand edit or a damaged file), or None."""
    if not isinstance(manifest["model"], str) or not manifest["model"]:
        return f"'model' must be a model name, got {manifest['model']!r}"
    dim = manifest["dim"]
    if type(dim) is not int or dim < 0:
        return f"'dim' must be a whole number >= 0, got {dim!r}"
    if problem := model_weight_problem(manifest):
        return problem
    retrievers = manifest.get("retrievers", [])
    if not isinstance(retrievers, list) or not all(isinstance(r, str) for r in retrievers):
        return f"'retrievers' must be a list of names, got {retrievers!r}"
    return None


def model_weight_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's "model_fusion_weight" (the static model's weight that every softmax fusion
    of dense + BM25 takes), or None: a damaged one failed each such search with a bare ValueError or TypeError,
    naming no file, or fused with a boolean taken for 1.0."""
    w = manifest.get("model_fusion_weight")
    if w is None:  # the model declares none
        return None
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
        return f"'model_fusion_weight' must be a finite number >= 0, got {w!r}"
    return None


class Store:
    """Low-level access to one collection directory; `Collection` builds search on top."""

    def __init__(self, path: Path, manifest: dict[str, Any], readers: Any = False) -> None:
        """readers: the readers' lock `open` took before reading `manifest` (False: take it now)."""
        self.path = path
        self.manifest = manifest
        self.dim = int(manifest["dim"])
        self._readers = _hold_shared(path) if readers is False else readers
        # The folder alone decides, not the lock file: in a folder made read-only by itself (`chmod a-w DIR`,
        # `chattr +i DIR`) the existing lock file still opens for writing, but SQLite cannot make its -wal and -shm
        # files beside the database, so even a search failed ("unable to open database file").
        self.read_only = (path / DB).exists() and not os.access(path, os.W_OK)
        try:
            if self.read_only:
                self.db = _connect_read_only(path / DB)
            else:
                self.db = sqlite3.connect(path / DB, timeout=60, isolation_level=None, check_same_thread=False)
        except BaseException:  # e.g. a folder where the database goes: the lock file was left open (ResourceWarning)
            if self._readers is not None:
                self._readers.close()
            raise
        try:
            if not self.read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError:  # not a database: release the connection and lock now, not at exit
            self.close()
            raise
        self.has_sections = True  # the chunks table holds the section columns (False: read-only, made before them)
        self._probes: tuple[Any, Any] = (None, None)  # (file state, ProbeQueries | None): probe_queries' cache
        self._alive: tuple[Any, np.ndarray | None] = (None, None)  # (commit state, alive rows): alive_rows' cache

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, manifest: dict[str, Any]) -> "Store":
        """Make a new, empty collection directory."""
        check_place(path, "collection", folder=True)
        if (path / MANIFEST).exists():
            raise CollectionError(f"{path}: a collection already exists here")
        if path.exists() and any(path.iterdir()):
            raise CollectionError(f"{path}: directory is not empty and holds no collection")
        existed = path.exists()
        (path / "vectors").mkdir(parents=True, exist_ok=True)
        (path / "index").mkdir(exist_ok=True)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": time.time(), **manifest}
        store = None
        try:
            store = cls(path, manifest)
            store.db.executescript(_SCHEMA)
            store.db.execute(_DEAD_LOG)
            store.db.execute("INSERT OR IGNORE INTO state VALUES ('rows', 0), ('generation', 0), ('dead', 0)")
            (path / VECTORS).touch()
            # The manifest goes last: a directory without one is not a collection, so a crash here leaves nothing
            # half-made.
            write_json_atomic(path / MANIFEST, manifest)
        except (sqlite3.OperationalError, OSError) as e:
            # A full disk or a file size limit while the new database was set up ended in a traceback ("disk I/O
            # error"; `slimvec index` into a new folder, `slimvec migrate`'s target) and left the folder behind.
            code = getattr(e, "sqlite_errorcode", 0) or 0
            room = no_room(e) if isinstance(e, OSError) else None
            if room is None and code != sqlite3.SQLITE_FULL and code & 0xFF != sqlite3.SQLITE_IOERR:
                raise
            if store is not None:
                store.close()
            _remove_made(path, existed)
            raise NoRoomError(f"{path}: the new collection could not be written ({room or e}: a full disk, a file "
                              "size limit or a failing device); nothing of it was left") from None
        return store

    @classmethod
    def open(cls, path: Path) -> "Store":
        """Open an existing collection, checking its format version (a switch of its files that a crash
        interrupted is rolled forward first, see `store.switch`)."""
        switch.finish(path)
        # The readers' lock before the manifest: read before it, a switch (compaction, migration) could move the
        # files in between, and the old manifest (model, dim) was paired with the new database.
        # Not in a folder that holds no collection: the lock file would be left there.
        readers = _hold_shared(path) if (path / MANIFEST).exists() or (path / READERS_LOCK).exists() else None
        try:
            return cls._open_locked(path, readers)
        except BaseException:
            if readers is not None:
                readers.close()
            raise

    @classmethod
    def _open_locked(cls, path: Path, readers: Any) -> "Store":
        mpath = path / MANIFEST
        if not mpath.exists():
            raise CollectionError(f"{path}: no slimvec collection here (missing {MANIFEST})")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CollectionError(f"{mpath}: manifest is not valid JSON ({e})") from None
        if not isinstance(manifest, dict):
            raise CollectionError(f"{mpath}: manifest must be a JSON object, not {type(manifest).__name__}")
        if manifest.get("format") != FORMAT:
            raise CollectionError(f"{path}: not a slimvec collection (format {manifest.get('format')!r})")
        version = manifest.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:  # "1" or true is not version 1
            raise CollectionError(
                f"{path}: collection format version {version!r} is not supported "
                f"by this slimvec (reads version {FORMAT_VERSION})"
            )
        for key in ("model", "dim"):
            if key not in manifest:
                raise CollectionError(f"{mpath}: manifest lacks {key!r}")
        if problem := _manifest_problem(manifest):
            raise CollectionError(f"{mpath}: manifest is damaged: {problem}")
        if not (path / DB).exists():  # SQLite would make an empty one: a collection that silently holds nothing
            raise CollectionError(f"{path / DB}: the collection's database is missing (its manifest is there: the "
                                  "directory is damaged or was copied in part); restore the whole directory")
        store = None
        try:
            store = cls(path, manifest, readers)
            store._add_missing_columns()
            store._add_dead_count()
            store._add_dead_log()
        except sqlite3.DatabaseError as e:  # not a database, damaged, or a read-only directory without WAL files
            if store is not None:
                store.close()
            raise CollectionError(f"{path / DB}: cannot open the collection's database ({e})") from None
        return store

    def _chunk_columns(self) -> set[str]:
        return {r[1] for r in self.db.execute("PRAGMA table_info(chunks)")}

    def _add_missing_columns(self) -> None:
        """Add the nullable `chunks` columns a collection made before them lacks (see _ADDED_CHUNK_COLUMNS).

        One transaction under SQLite's write lock, the columns looked up again inside it, so two processes
        opening the same old collection add each column once. A collection that cannot be written (read-only
        file) stays as it is and is read as one whose chunks have no sections.
        """
        if not set(_ADDED_CHUNK_COLUMNS) - self._chunk_columns():
            return
        try:
            with self._transaction() as cur:
                have = {r[1] for r in cur.execute("PRAGMA table_info(chunks)")}
                for name, sql_type in _ADDED_CHUNK_COLUMNS.items():
                    if name not in have:
                        cur.execute(f"ALTER TABLE chunks ADD COLUMN {name} {sql_type}")  # fixed names, not input
        except sqlite3.OperationalError as e:
            if not _read_only(e):
                raise
            self.has_sections = False

    def _add_dead_count(self) -> None:
        """Start the `dead` counter (chunk rows deleted or replaced) in a collection made before it: committed
        rows minus stored chunks, counted once under the write lock. Read-only: stays without one."""
        if self.db.execute("SELECT 1 FROM state WHERE key = 'dead'").fetchone():
            return
        try:
            with self._transaction() as cur:
                cur.execute("INSERT OR IGNORE INTO state SELECT 'dead', (SELECT value FROM state WHERE key = 'rows') "
                            "- (SELECT count(*) FROM chunks)")
        except sqlite3.OperationalError as e:
            if not _read_only(e):
                raise

    def _add_dead_log(self) -> None:
        """Start the log of deleted rows (`rows_deleted`) in a collection made before it; its earlier deletes are
        not in it, which `rows_deleted` notices. Read-only: stays without one."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_log'").fetchone():
            return  # no write, not even a no-op one: another process may hold the write lock
        try:
            self.db.execute(_DEAD_LOG)
        except sqlite3.OperationalError as e:
            if not _read_only(e):
                raise

    def close(self) -> None:
        """Close the database connection (and release this handle's share of the readers' lock)."""
        self.db.close()
        if self._readers is not None:
            self._readers.close()
            self._readers = None

    def save_manifest(self, updates: dict[str, Any], drop: Iterable[str] = ()) -> None:
        """Merge `updates` into the manifest, less the keys in `drop`, and replace it atomically; other handles see
        it at their next sync (the generation moves). The caller holds the writer lock."""
        gone = set(drop)
        self.manifest = {k: v for k, v in {**self.manifest, **updates}.items() if k not in gone}
        write_json_atomic(self.path / MANIFEST, self.manifest)
        self.bump_generation()

    def bump_generation(self) -> None:
        """Move the commit generation without changing rows: a file beside the database (manifest,
        calibration.json) changed, and every handle re-reads it at its next sync. The caller holds the writer lock."""
        with self._transaction() as cur:
            cur.execute(_NEXT_GENERATION)

    def reload_manifest(self) -> bool:
        """Re-read manifest.json (another handle may have changed it); the dict is replaced only when its content
        changed, so holders of the old object can tell. Returns whether it changed."""
        try:
            fresh = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return False  # replaced atomically, so a failed read is a vanished directory: keep what is known
        if fresh == self.manifest:
            return False
        self.manifest = fresh
        return True

    # ---- state -----------------------------------------------------------------------------
    def _state(self, key: str) -> int:
        return int(self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0])

    @property
    def committed_rows(self) -> int:
        return self._state("rows")

    @property
    def generation(self) -> int:
        return self._state("generation")

    def probe_queries(self) -> "probes.ProbeQueries | None":
        """The user's probe queries an index calibrates on (`store.probes`, stored by `Collection.tune`), or
        None; the file is read again only when it, or the collection's model, changed. A damaged file counts as
        none (the index is calibrated on its rows, as before any tuning) with a warning in the log: tuning is a
        search knob, and a search must not stop for it; `check` reports the file (`probe_problem`)."""
        try:
            st = os.stat(self.path / probes.FILE)
            key: tuple[Any, ...] | None = (st.st_mtime_ns, st.st_size, st.st_ino, self.manifest["model"], self.dim)
        except FileNotFoundError:
            key = None
        if key != self._probes[0]:
            found = None
            if key is not None:
                try:
                    found = probes.load(self.path, str(self.manifest["model"]), self.dim)
                except CollectionError as e:
                    log.warning("%s; calibrating on the collection's rows meanwhile", e)
            self._probes = (key, found)
        return self._probes[1]

    def probe_problem(self) -> str | None:
        """Why the stored probe query file cannot be used (damaged), or None."""
        try:
            probes.load(self.path, str(self.manifest["model"]), self.dim)
        except CollectionError as e:
            return str(e)
        return None

    @property
    def dead_rows(self) -> int | None:
        """Committed chunk rows whose document was deleted or replaced (monotonic: rows are never reused);
        None for a read-only collection made before the counter."""
        row = self.db.execute("SELECT value FROM state WHERE key = 'dead'").fetchone()
        return None if row is None else int(row[0])

    # ---- writing ---------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the collection's exclusive writer lock (blocks until other writers finish). Raises CollectionError
        (one line) for a collection opened read-only, or one being migrated to another model
        (`switch.refuse_writes_during_migration`)."""
        self._refuse_read_only()
        with switch.writer_lock(self.path):
            switch.refuse_writes_during_migration(self.path)
            yield

    def check_writable(self) -> None:
        """Raise, without taking the writer lock, the CollectionError `writer` would raise now (a read-only folder,
        a migration under way): for a caller about to do costly work before its write (`fit_calibrator`'s searches),
        which a handle opened before the migration started would otherwise run for nothing. `writer` checks again."""
        self._refuse_read_only()
        switch.refuse_writes_during_migration(self.path)

    def _refuse_read_only(self) -> None:
        if self.read_only:  # a folder read-only by itself: the lock file (and the vector file) can still be written
            why = "read-only file system" if os.statvfs(self.path).f_flag & os.ST_RDONLY else "permission denied"
            raise CollectionError(f"{self.path}: cannot write this collection ({why}: the folder itself); it can "
                                  "still be searched")

    def sole_handle(self) -> bool:
        """Whether no other handle, in this process or another, has the collection open (what a switch of its
        files needs, `store.switch`). This handle's share of the readers' lock is let go for the test and taken
        back; the caller holds the writer lock, so no switch can run in between."""
        if self._readers is None:
            return False
        self._readers.close()
        try:
            with open(self.path / READERS_LOCK, "a+") as probe:
                try:
                    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True
        finally:
            self._readers = _hold_shared(self.path)

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of `ids` are stored."""
        found: set[str] = set()
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            q = f"SELECT id FROM documents WHERE id IN ({','.join('?' * len(part))})"
            found.update(r[0] for r in self.db.execute(q, part))
        return found

    def unchanged(self, docs: list[Any], chunks: dict[str, list[Any]]) -> set[str]:
        """Ids among `docs` whose stored version is the same document cut the same way: equal title, text,
        metadata (the same JSON value, keys in any order) and chunks (index, span, given section and heading path), so
        an upsert of it would store equal rows again (the collection's model and chunking are fixed). The
        caller holds the writer lock when it acts on the answer."""
        wanted = {d.id: d for d in docs}
        stored: dict[str, list[Any]] = {}
        cols = "section_id, heading_path" if self.has_sections else "NULL, NULL"
        ids = list(wanted)
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            marks = ",".join("?" * len(part))
            # Two reads, not a join: a join would ship each document's text once per chunk. Without the lock a
            # writer may commit between them; a document added meanwhile is skipped here (not unchanged), and
            # the caller's check under the writer lock sees one state.
            for doc_id, title, text, meta in self.db.execute(
                    f"SELECT id, title, text, metadata FROM documents WHERE id IN ({marks})", part):  # noqa: S608
                stored[doc_id] = [(title, text, meta)]
            for doc_id, *chunk in self.db.execute(
                    f"SELECT doc_id, idx, start, end, {cols} FROM chunks WHERE doc_id IN ({marks}) ORDER BY row", part):  # noqa: S608
                if doc_id in stored:
                    stored[doc_id].append(tuple(chunk))
        out = set()
        for doc_id, entry in stored.items():
            d = wanted[doc_id]
            paths = _heading_paths([d])
            mine = [(d.title, d.text, json.dumps(d.metadata, ensure_ascii=False))]
            mine += [(c.index, c.start, c.end, *_section_fields(c, paths)) for c in chunks[doc_id]]
            if mine[1:] != entry[1:] or mine[0][:2] != entry[0][:2]:
                continue
            # The same metadata with its keys in another order is unchanged too (it would be encoded again for
            # nothing): compared with sorted keys, the stored text (the order first given, which `get` returns) kept.
            if mine[0][2] == entry[0][2] or _canonical(mine[0][2]) == _canonical(entry[0][2]):
                out.add(doc_id)
        return out

    def commit(self, docs: list[Any], chunks: list[Any], vectors: np.ndarray, replace: bool) -> int:
        """Append documents, their chunks and one vector per chunk; the caller holds the writer lock."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dim):
            raise CollectionError(f"expected {len(chunks)} vectors of dimension {self.dim}, got {vectors.shape}")
        start = self.committed_rows
        vpath = self.path / VECTORS
        try:
            with open(vpath, "r+b") as f:
                f.truncate(start * self.dim * 4)
                f.seek(start * self.dim * 4)
                f.write(vectors.tobytes())
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # rows past the committed count are ignored, and cut by the next write
            kind = NoRoomError if no_room(e) is not None else CollectionError
            raise kind(f"{vpath}: cannot append {len(vectors)} vector rows ({e.strerror or e}); this "
                                  "commit was not made (the collection holds what it held before it)") from None
        crc = zlib.crc32(vectors.tobytes())
        paths = _heading_paths(docs)
        with self._transaction() as cur:
            if replace:
                self._delete_ids(cur, [d.id for d in docs])
            cur.executemany(
                "INSERT INTO documents (id, title, text, metadata) VALUES (?, ?, ?, ?)",
                [(d.id, d.title, d.text, json.dumps(d.metadata, ensure_ascii=False)) for d in docs],
            )
            cur.executemany(
                "INSERT INTO chunks (row, doc_id, idx, start, end, section_id, heading_path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(start + i, c.doc_id, c.index, c.start, c.end, *_section_fields(c, paths))
                 for i, c in enumerate(chunks)],
            )
            if len(chunks):
                cur.execute("INSERT INTO batches VALUES (?, ?, ?)", (start, start + len(chunks), crc))
            cur.execute("UPDATE state SET value = ? WHERE key = 'rows'", (start + len(chunks),))
            cur.execute(_NEXT_GENERATION)
        return start

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one committed state: a read transaction (in WAL mode writers go on meanwhile).
        Without it each statement sees the latest commit, so a reader catching up could read the row count before
        another process's commit and that commit's chunk rows after it. Nested uses share the outer one."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction (BEGIN IMMEDIATE: the write lock at once); rolled back on any exception."""
        cur = self.db.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            # Another process (not slimvec: its writers queue on the writer lock) held SQLite's write lock for the
            # whole busy timeout, e.g. a `sqlite3` shell or a backup tool inside a transaction.
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                waited = self.db.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
                raise BusyError(f"{self.path / DB}: another process has held the database's write lock for "
                                      f"{waited:g} s (a `sqlite3` shell or another tool inside a transaction?); "
                                      "nothing was written, run this again once it is done") from None
            raise
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as e:
            if self.db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                cur.execute("ROLLBACK")
            code = getattr(e, "sqlite_errorcode", None) if isinstance(e, sqlite3.OperationalError) else None
            if code == sqlite3.SQLITE_FULL:
                raise NoRoomError(f"{self.path / DB}: the database or disk is full; this commit was rolled back (the "
                                      "collection holds what it held before it)") from None
            if code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:  # e.g. a file size limit (ulimit -f)
                raise NoRoomError(f"{self.path / DB}: the database could not be written ({e}: a full disk, a file "
                                      "size limit or a failing device); this commit was rolled back (the collection "
                                      "holds what it held before it)") from None
            raise

    def delete(self, ids: list[str]) -> int:
        """Delete documents (and their chunks) by id in one transaction; returns how many existed."""
        ids = [i for i in ids if not lone_surrogate(i)]  # an id no store can hold is an unknown id
        with self._transaction() as cur:
            n = self._delete_ids(cur, ids)
            cur.execute(_NEXT_GENERATION)
        return n

    def delete_matching(self, flt: dict[str, Any]) -> list[str]:
        """Delete the documents satisfying metadata filter `flt` (store.filters) in one transaction: the ids are
        read and deleted under the write lock, so a document another process adds meanwhile is either seen whole
        or not at all. Returns the deleted ids. Raises FilterError for a malformed filter."""
        with self._transaction() as cur:
            where, params = self._compiled(flt)  # the field indexes and counts of the state it deletes from
            ids = [r[0] for r in self._run_filter(cur, f"SELECT d.id FROM documents d WHERE {where}", params)]
            self._delete_ids(cur, ids)
            cur.execute(_NEXT_GENERATION)
        return ids

    @staticmethod
    def _delete_ids(cur: sqlite3.Cursor, ids: list[str]) -> int:
        n = dead = 0
        (before,) = cur.execute("SELECT value FROM state WHERE key = 'dead'").fetchone() or (0,)
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            marks = ",".join("?" * len(part))
            # each deleted row under the dead-row count it takes, so a handle catching up reads only these
            rows = [r for (r,) in cur.execute(f"SELECT row FROM chunks WHERE doc_id IN ({marks}) ORDER BY row", part)]
            cur.executemany("INSERT INTO dead_log VALUES (?, ?)",
                            [(before + dead + i, r) for i, r in enumerate(rows)])
            dead += cur.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part).rowcount
            n += cur.execute(f"DELETE FROM documents WHERE id IN ({marks})", part).rowcount
        if dead:
            cur.execute("UPDATE state SET value = value + ? WHERE key = 'dead'", (dead,))
        return n

    # ---- reading ---------------------------------------------------------------------------
    def vectors(self, rows: int | None = None) -> np.ndarray:
        """The committed float32 rows as a read-only memmap (pages load on demand)."""
        n = self.committed_rows if rows is None else rows
        if n == 0 or self.dim == 0:
            return np.zeros((n, self.dim), dtype=np.float32)
        try:
            size = (self.path / VECTORS).stat().st_size
        except FileNotFoundError:  # removed by hand or a bad copy: as a damaged file, a line that names what to run
            raise CollectionError(f"{self.path / VECTORS}: missing, while {n} rows are committed; run `slimvec "
                                  "check` (the collection is damaged)") from None
        if size < n * self.dim * 4:  # damaged (a commit fsyncs its rows before it counts them): never a traceback
            raise CollectionError(f"{self.path / VECTORS}: {size} bytes hold fewer than the {n} committed rows of "
                                  f"{self.dim} float32 values; run `slimvec check` (the file is damaged)")
        return np.memmap(self.path / VECTORS, dtype=np.float32, mode="r", shape=(n, self.dim))

    def rows_deleted(self, since: int | None, until: int | None) -> np.ndarray | None:
        """(until - since,) int64 chunk rows deleted (or replaced) while the dead-row count (`dead_rows`) went from
        `since` to `until`, read from the log each delete writes: O(those rows), where `alive_rows` is a pass over
        every row. None when either count is unknown (None: not read yet, or a read-only collection made before
        the counter) or the log lacks some of the rows (deletes made before the log, or by an older slimvec, or a
        read-only collection without it): the caller then reads `alive_rows`."""
        if since is None or until is None or until < since:
            return None
        try:
            rows = np.fromiter((r for (r,) in self.db.execute(
                "SELECT row FROM dead_log WHERE seq >= ? AND seq < ?", (since, until))), dtype=np.int64)
        except sqlite3.OperationalError:  # no log table (read-only, made before it)
            return None
        return rows if len(rows) == until - since else None

    def alive_rows(self) -> np.ndarray:
        """(n,) int64 row numbers of chunks that belong to stored documents, read-only. Kept for the commit it was
        read at (generation, rows and dead-row count unchanged): each commit's sync asks for it from several
        places (BM25 taking in deletes, the row map), and one read is a Python pass over every row (100k rows:
        ~0.1 s)."""
        state = (self.generation, self.committed_rows, self.dead_rows)
        if state[2] is not None and self._alive[0] == state and self._alive[1] is not None:
            return self._alive[1]
        rows = np.fromiter((r[0] for r in self.db.execute("SELECT row FROM chunks")), dtype=np.int64)
        rows.flags.writeable = False
        # kept only when no commit landed during the read (another process's), so the state names what was read
        if state[2] is not None and state == (self.generation, self.committed_rows, self.dead_rows):
            self._alive = (state, rows)
        return rows

    def alive_count_below(self, row: int) -> int:
        """How many chunk rows below `row` belong to stored documents."""
        (n,) = self.db.execute("SELECT count(*) FROM chunks WHERE row < ?", (row,)).fetchone()
        return int(n)

    def chunk_owners_from(self, row: int) -> Iterator[tuple[int, str]]:
        """(row, document id) of every stored chunk at or above `row`, in row order."""
        yield from self.db.execute("SELECT row, doc_id FROM chunks WHERE row >= ? ORDER BY row", (row,))

    def field_indexes(self) -> frozenset[str]:
        """The JSON paths with a field index (`create_field_index`)."""
        return field_index_paths(self.db)

    def create_field_index(self, paths: list[str]) -> list[str]:
        """Index the metadata values at these JSON paths (`filters.field_path`) for filters, in one transaction
        that reads every document once; returns the paths that were not indexed yet. Values are kept per
        document (per element for an array) in `field_terms`, which triggers keep in step with every write."""
        with self._transaction() as cur:
            for stmt in _FIELD_INDEX:
                cur.execute(stmt)
            new = [p for p in dict.fromkeys(paths)
                   if cur.execute("INSERT OR IGNORE INTO field_index VALUES (?)", (p,)).rowcount]
            for p in new:
                cur.execute(_FIELD_TERMS_OF, (p,))
            # every index without complete markers gets them, the new ones and any made before the markers
            for p in sorted(field_index_paths(cur) - field_exists_paths(cur)):
                for stmt in _MARK_EXISTS:
                    cur.execute(stmt, (p,))
            cur.execute(_NEXT_GENERATION)
        return new

    def drop_field_index(self, paths: list[str]) -> list[str]:
        """Remove the field indexes of these JSON paths; returns those that existed."""
        held = self.field_indexes()
        gone = [p for p in dict.fromkeys(paths) if p in held]
        if gone:
            with self._transaction() as cur:
                for p in gone:
                    cur.execute("DELETE FROM field_index WHERE path = ?", (p,))
                    cur.execute("DELETE FROM field_terms WHERE path = ?", (p,))
                cur.execute(_NEXT_GENERATION)
        return gone

    def rows_matching(self, flt: dict[str, Any], explain: bool = True) -> np.ndarray:
        """(n,) int64 chunk rows whose document satisfies the metadata filter `flt` (see store.filters).

        Raises FilterError for a malformed filter, or (unless `explain` is False: a shard, whose router explains
        for all its shards at once) one that matched nothing because a value's type can never equal the field's
        stored type or no stored document has the field.
        """
        from slimvec.store.filters import compile_filter

        with self.snapshot():  # the indexed fields named and their terms read in one state (`_compiled`)
            where, params = compile_filter(flt, **self._index_args())
            rows = self.filtered_rows(where, params)
        if explain and not len(rows):
            self.explain_unmatched(flt)
        return rows

    def explain_unmatched(self, flt: dict[str, Any]) -> None:
        """For a filter that matched nothing: FilterError when it compares with a type the field never holds (e.g.
        "2020" vs 2020) or names a field no stored document has, instead of returning silence (search, count,
        scroll, delete by filter). Only then is the metadata scanned for stored types."""
        from slimvec.errors import FilterError
        from slimvec.store.filters import filter_type_mismatch

        if self.holds_documents() and (msg := filter_type_mismatch(flt, self.metadata_types)):
            raise FilterError(msg)

    def holds_documents(self) -> bool:
        """Whether any document is stored (one row read, not a count)."""
        return self.db.execute("SELECT 1 FROM documents LIMIT 1").fetchone() is not None

    def filtered_rows(self, where: str, params: list[Any]) -> np.ndarray:
        """Chunk rows whose document satisfies a compiled filter expression."""
        q = f"SELECT c.row FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}"
        return np.fromiter((r[0] for r in self._run_filter(self.db, q, params)), dtype=np.int64)

    def count_matching(self, flt: dict[str, Any] | None) -> int:
        """How many stored documents satisfy metadata filter `flt` (all of them for None or {})."""
        with self.snapshot():
            where, params = self._compiled(flt)
            return int(self._run_filter(self.db, f"SELECT COUNT(*) FROM documents d WHERE {where}",
                                        params).fetchone()[0])

    def documents_matching(self, flt: dict[str, Any] | None, start: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` stored documents satisfying `flt`, in id order (SQLite's binary collation: code point
        order, as Python compares str) from id `start` on, inclusive; dicts as `get_document` gives them."""
        with self.snapshot():
            where, params = self._compiled(flt)
            if start is not None:
                where, params = f"({where}) AND d.id >= ?", [*params, start]
            q = f"SELECT d.id, d.title, d.text, d.metadata FROM documents d WHERE {where} ORDER BY d.id LIMIT ?"
            docs = {r[0]: {"id": r[0], "title": r[1], "text": r[2], "metadata": json.loads(r[3]), "sections": []}
                    for r in self._run_filter(self.db, q, [*params, min(int(limit), _MAX_LIMIT)])}
            self._add_sections(docs)
        return list(docs.values())

    def _compiled(self, flt: dict[str, Any] | None) -> tuple[str, list[Any]]:
        """(SQL condition, parameters) for `flt` over this store's field indexes. Call inside the snapshot or
        transaction that runs it: the condition reads the terms of the indexes listed now, and another handle may
        drop one."""
        from slimvec.store.filters import compile_filter

        if flt is None or (isinstance(flt, dict) and not flt):
            return ("1", [])
        return compile_filter(flt, **self._index_args())

    def _index_args(self) -> dict[str, Any]:
        """What `compile_filter` reads of this store's field indexes (call inside the snapshot that runs it)."""
        indexed = self.field_indexes()
        # the markers' sentinels are read only where some field is indexed: a filter over a collection without
        # field indexes pays one SQLite statement for them, not two
        return {"indexed": indexed, "exists_indexed": field_exists_paths(self.db) if indexed else frozenset(),
                "estimate": self._term_rows}

    def _term_rows(self, select: str, params: list[Any], cap: int) -> int:
        """How many rows a field index's `SELECT doc_id FROM field_terms ...` reads, counted through the index and
        at most `cap`: what the filter compiler compares to let the narrowest list drive."""
        return int(self.db.execute(f"SELECT count(*) FROM ({select} LIMIT ?)", [*params, cap]).fetchone()[0])  # noqa: S608

    @staticmethod
    def _run_filter(db: sqlite3.Connection | sqlite3.Cursor, q: str, params: list[Any]) -> sqlite3.Cursor:
        try:
            return db.execute(q, params)
        except sqlite3.OperationalError as e:
            from slimvec.errors import FilterError

            raise FilterError(f"filter could not be evaluated: {e}") from None

    def metadata_types(self, path: str) -> set[str]:
        """SQLite `json_type` names ('integer', 'real', 'text', 'true', 'false', 'null', 'object', 'array')
        that the metadata value at JSON `path` (e.g. `$."year"`) has in any stored document, plus the types
        of the elements of array values; empty when no document has the field. A full scan of the
        documents table: call it only to explain a filter that matched nothing."""
        q = (
            "SELECT DISTINCT json_type(metadata, ?1) FROM documents WHERE json_type(metadata, ?1) IS NOT NULL "
            "UNION SELECT DISTINCT je.type FROM documents d, json_each(d.metadata, ?1) je "
            "WHERE json_type(d.metadata, ?1) = 'array'"
        )
        return {r[0] for r in self.db.execute(q, (path,))}

    def chunks_for_rows(self, rows: list[int]) -> dict[int, StoredChunk]:
        """Chunk and document fields for the given rows (missing rows are simply absent)."""
        out: dict[int, StoredChunk] = {}
        section = "c.section_id" if self.has_sections else "NULL"
        for s in range(0, len(rows), 500):
            part = [int(r) for r in rows[s : s + 500]]
            q = (
                # substr (1-based, in characters like Python's str) ships only the chunk, not the whole document.
                "SELECT c.row, c.doc_id, c.start, c.end, d.title, substr(d.text, c.start + 1, c.end - c.start), "
                f"d.metadata, {section} FROM chunks c "
                f"JOIN documents d ON d.id = c.doc_id WHERE c.row IN ({','.join('?' * len(part))})"
            )
            for row, doc_id, st, en, title, text, meta, sid in self.db.execute(q, part):
                out[row] = StoredChunk(row, doc_id, st, en, title, text, {} if meta == "{}" else json.loads(meta), sid)
        return out

    def sections_for_rows(self, rows: list[int]) -> dict[int, ChunkSection]:
        """Document, given section, heading path and span of the given chunk rows, from the chunks table alone
        (no document text is read); rows of deleted documents are absent."""
        out: dict[int, ChunkSection] = {}
        cols = "section_id, heading_path" if self.has_sections else "NULL, NULL"
        for s in range(0, len(rows), 500):
            part = [int(r) for r in rows[s : s + 500]]
            q = f"SELECT row, doc_id, {cols}, start, end FROM chunks WHERE row IN ({','.join('?' * len(part))})"
            for row, doc_id, sid, path, st, en in self.db.execute(q, part):
                out[row] = ChunkSection(row, doc_id, sid, tuple(json.loads(path)) if path else (), st, en)
        return out

    def section_first_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, first) int64 arrays: every stored chunk row that shares its given section with a lower row,
        and the lowest row of that section (its document and section id equal). Rows of chunks alone in
        their section, or without one, are not listed: each is a unit of its own."""
        if not self.has_sections:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        q = ("SELECT row, first FROM (SELECT row, MIN(row) OVER (PARTITION BY doc_id, section_id) AS first "
             "FROM chunks WHERE section_id IS NOT NULL) WHERE row != first")
        pairs = np.array(self.db.execute(q).fetchall(), dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        """One stored document as a dict (id, title, text, metadata, sections as `documents_from` gives them), or
        None."""
        if lone_surrogate(doc_id):  # no store can hold it: an unknown id
            return None
        r = self.db.execute("SELECT id, title, text, metadata FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if r is None:
            return None
        doc = {"id": r[0], "title": r[1], "text": r[2], "metadata": json.loads(r[3]), "sections": []}
        self._add_sections({doc_id: doc})
        return doc

    def iter_documents(self, by_row: bool = False) -> Iterator[dict[str, Any]]:
        """Every stored document as a dict (id, title, text, metadata), in id order (for audits), or with
        `by_row` in the order of their chunk rows, the order ties break in (for exports, so an import keeps it)."""
        order = "(SELECT MIN(row) FROM chunks WHERE doc_id = documents.id), rowid" if by_row else "id"
        for r in self.db.execute(f"SELECT id, title, text, metadata FROM documents ORDER BY {order}"):
            yield {"id": r[0], "title": r[1], "text": r[2], "metadata": json.loads(r[3])}

    def documents_from(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` stored documents with rowid > `after`, in rowid (insertion) order, each a dict
        (rowid, id, title, text, metadata, sections: [(section id, start, end, heading path JSON)] from its
        chunks, empty for a document cut without given sections). For `slimvec migrate`, which copies a
        collection document by document in the order it was built."""
        q = "SELECT rowid, id, title, text, metadata FROM documents WHERE rowid > ? ORDER BY rowid LIMIT ?"
        docs = [{"rowid": int(r[0]), "id": r[1], "title": r[2], "text": r[3], "metadata": json.loads(r[4]),
                 "sections": []} for r in self.db.execute(q, (after, limit))]
        self._add_sections({d["id"]: d for d in docs})
        return docs

    def _add_sections(self, by_id: dict[str, dict[str, Any]]) -> None:
        """Append to each document dict's "sections" its given sections, rebuilt from its chunks: (section id,
        start, end, heading path JSON), each spanning its chunks, in chunk order."""
        if by_id and "section_id" in self._chunk_columns():
            marks = ",".join("?" * len(by_id))
            q = (f"SELECT doc_id, section_id, MIN(start), MAX(end), MAX(heading_path) FROM chunks "  # noqa: S608
                 f"WHERE doc_id IN ({marks}) AND section_id IS NOT NULL GROUP BY doc_id, section_id ORDER BY MIN(row)")
            for doc_id, sid, start, end, path in self.db.execute(q, list(by_id)):
                by_id[doc_id]["sections"].append((sid, int(start), int(end), path))

    def document_ids_from(self, after: int) -> list[tuple[int, str]]:
        """(rowid, id) of the stored documents with rowid > `after`, in rowid (insertion) order."""
        q = "SELECT rowid, id FROM documents WHERE rowid > ? ORDER BY rowid"
        return [(int(r), str(i)) for r, i in self.db.execute(q, (after,))]

    def rows_of_documents(self, ids: list[str]) -> np.ndarray:
        """(n,) int64 chunk rows of the stored documents among `ids` (unknown ids add none), in no set order."""
        found: list[int] = []
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            q = f"SELECT row FROM chunks WHERE doc_id IN ({','.join('?' * len(part))})"  # noqa: S608
            found += [r for (r,) in self.db.execute(q, part)]
        return np.asarray(found, dtype=np.int64)

    def rowid_of(self, doc_id: str) -> int | None:
        """The documents-table rowid (insertion order) of `doc_id`, or None when it is not stored."""
        r = self.db.execute("SELECT rowid FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return None if r is None else int(r[0])

    def last_document_id(self) -> str | None:
        """The id of the most recently inserted stored document (highest rowid), or None when empty."""
        r = self.db.execute("SELECT id FROM documents ORDER BY rowid DESC LIMIT 1").fetchone()
        return None if r is None else str(r[0])

    def chunks_of(self, doc_id: str) -> list[tuple[int, int, int]]:
        """(row, start, end) of each chunk of document `doc_id`, in row order: its vector rows and its spans
        as character offsets into the text (end exclusive); empty for an unknown id."""
        q = "SELECT row, start, end FROM chunks WHERE doc_id = ? ORDER BY row"
        return [(int(r), int(s), int(e)) for r, s, e in self.db.execute(q, (doc_id,))]

    def counts(self) -> dict[str, int]:
        """Documents, live chunks and committed vector rows."""
        docs = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return {"documents": int(docs), "chunks": int(chunks), "rows": self.committed_rows}

    def content_digest(self) -> str:
        """SHA-256 (hex) of the committed content: documents, chunks, row count and the committed vector rows.

        Equal digests mean equal stored data, whatever the derived index files hold; tests compare it before
        and after a refused call.
        """
        import hashlib

        h = hashlib.sha256()
        for table, order in (("documents", "id"), ("chunks", "row")):
            for r in self.db.execute(f"SELECT * FROM {table} ORDER BY {order}"):  # noqa: S608 - fixed names
                h.update(json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        rows = self.committed_rows
        h.update(str(rows).encode())
        if rows and self.dim:
            vecs = self.vectors(rows)
            for s in range(0, rows, 65536):
                h.update(np.ascontiguousarray(vecs[s : s + 65536]).tobytes())
        return h.hexdigest()

    def disk_bytes(self) -> int:
        """Bytes of every file in the collection directory."""
        return sum(self.disk_usage().values())

    def disk_usage(self) -> dict[str, int]:
        """Bytes of the files under each top-level entry of the collection directory ("vectors", "index",
        "slimvec.db", ...), from one walk of it. A file or folder another writer replaces during the walk (an
        index save's temporary file, a rewritten folder's old copy) is skipped, not an error: `info` must not
        fail because another process saved its index meanwhile."""
        usage: dict[str, int] = {}
        for root, _dirs, files in os.walk(self.path):  # os.walk skips a folder that vanished under it
            top = Path(root).relative_to(self.path).parts[:1]
            for name in files:
                try:
                    st = os.stat(os.path.join(root, name))
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    key = top[0] if top else name
                    usage[key] = usage.get(key, 0) + st.st_size
        return usage

    # ---- integrity -------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Problems found by a full integrity check (empty list = healthy), all read in one snapshot: a commit
        another process makes meanwhile is not half seen (its chunks past the rows counted, its batch unread)."""
        with self.snapshot():
            return self._check()

    def _check(self) -> list[str]:
        problems: list[str] = []
        ok = self.db.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            problems.append(f"sqlite integrity_check: {ok}")
        fk = self.db.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} chunk rows point at missing documents")
        rows = self.committed_rows
        try:
            st = (self.path / VECTORS).stat()
        except FileNotFoundError:
            return [*problems, f"vector file {VECTORS} is missing ({rows} rows committed)"]
        except NotADirectoryError:  # a file where its folder goes: was an OS error out of `check` (exit 2)
            return [*problems, f"{Path(VECTORS).parent} is a file, not a folder ({rows} rows committed)"]
        if stat.S_ISDIR(st.st_mode):  # its size would be read as "holds 2 rows"
            return [*problems, f"vector file {VECTORS} is a folder, not a file ({rows} rows committed)"]
        size = st.st_size
        if size < rows * self.dim * 4:
            problems.append(f"vector file holds {size // (self.dim * 4)} rows, {rows} committed")
        bad = self.db.execute("SELECT COUNT(*) FROM chunks WHERE row < 0 OR row >= ?", (rows,)).fetchone()[0]
        if bad:
            problems.append(f"{bad} chunks point past the committed vector rows")
        orphans = self.db.execute(
            "SELECT COUNT(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} documents have no chunks")
        marked = field_exists_paths(self.db)
        for path in sorted(self.field_indexes()):  # the terms the triggers kept, against the metadata itself
            held = self.db.execute("SELECT COUNT(*) FROM field_terms WHERE path = ? AND kind NOT IN ('exists', "
                                   "'marked')", (path,)).fetchone()[0]
            due = self.db.execute(f"SELECT COUNT(*) FROM ({_FIELD_TERMS_DUE})", (path,)).fetchone()[0]  # noqa: S608
            if path in marked and held == due:  # and one marker per document holding the key
                held = self.db.execute("SELECT COUNT(*) FROM field_terms WHERE path = ? AND kind = 'exists'",
                                       (path,)).fetchone()[0]
                due = self.db.execute("SELECT COUNT(*) FROM documents WHERE json_type(metadata, ?) IS NOT NULL",
                                      (path,)).fetchone()[0]
            if held != due:
                from slimvec.store.filters import path_field

                name = path_field(path)
                problems.append(f"field index {name}: {held} values held, {due} in the metadata (make it again: "
                                f"`slimvec field-index DIR {name} --drop`, then without --drop)")
        if not problems and rows:
            vecs = self.vectors(rows)
            for start, end, crc in self.db.execute("SELECT start_row, end_row, crc32 FROM batches"):
                if zlib.crc32(np.ascontiguousarray(vecs[start:end]).tobytes()) != crc:
                    problems.append(f"vector rows {start}..{end - 1} fail their checksum")
            bad = [s + int(i) for s in range(0, rows, 65536)
                   for i in np.flatnonzero(~np.isfinite(np.asarray(vecs[s : s + 65536])).all(axis=1))]
            if bad:
                shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
                problems.append(f"{len(bad)} vector rows hold NaN or infinity (rows {shown})")
        if problem := self.probe_problem():  # `Collection.tune`'s file: every calibration reads it
            problems.append(problem)
        return problems


def _heading_paths(docs: list[Any]) -> dict[tuple[str, str], str]:
    """(document id, section id) -> heading path as JSON text, for the given sections that have one."""
    out: dict[tuple[str, str], str] = {}
    for d in docs:
        for sec in getattr(d, "sections", None) or ():
            if sec.path:
                out[(d.id, sec.id)] = json.dumps(list(sec.path), ensure_ascii=False)
    return out


def _canonical(meta: str) -> str:
    """Metadata JSON text with every object's keys sorted: equal for the same metadata given in another key order
    (an int and a float, or 1 and true, still differ, as their JSON texts do)."""
    return json.dumps(json.loads(meta), ensure_ascii=False, sort_keys=True)


def _section_fields(chunk: Any, paths: dict[tuple[str, str], str]) -> tuple[str | None, str | None]:
    """(section id, heading path JSON) stored with a chunk; (None, None) for a chunk cut without given sections."""
    sid = getattr(chunk, "section_id", None)
    return (None, None) if sid is None else (sid, paths.get((chunk.doc_id, sid)))
