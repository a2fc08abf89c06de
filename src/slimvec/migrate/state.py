"""Where a migration lives on disk (DIR/migration/) and its record, migration.json.

    DIR/migration/
      migration.json   target model, adapter name, file and agreement, score map, status, counts, switch intent
      adapter.npz      the fitted adapter (slimvec.migrate.adapters)
      reference.npz    the sample pairs (new and old vectors) kept for search's per-query score line (line.py)
      target/          an ordinary slimvec collection: the same profile with the new model, filled in batches
      old/             during the switch only: the old generation's files, moved aside before target's move in

Status runs reembedding (written once the adapter is fitted) -> -> switching -> (DIR/migration removed). The record is replaced atomically
(write, fsync, rename), so a reader sees one whole version of it.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from slimvec.atomic import write_json_atomic
from slimvec.errors import CollectionError
from slimvec.store.switch import INTENT, MANIFEST, MIGRATE_LOCK, MIGRATION, MIGRATION_RECORD

DIRNAME = MIGRATION  # while the record exists, writes are refused (`switch.refuse_writes_during_migration`)
RECORD = MIGRATION_RECORD
ADAPTER = "adapter.npz"
REFERENCE_FILE = "reference.npz"
TARGET = "target"
OLD = "old"


class Status(str, Enum):
    """The stage a migration is at (the record is written once the adapter is fitted: before that, nothing)."""

    REEMBEDDING = "reembedding"
    SWITCHING = "switching"


_held = threading.local()  # the collections whose migration lock this thread holds (runs nest: migrate -> reembed)


@contextmanager
def running(path: Path) -> Iterator[None]:
    """Hold collection `path`'s migration lock (DIR/.migrate.lock, kept through switches) for one `slimvec migrate`
    run: start, re-embedding and switch. A second run meanwhile (another process or thread) would remove the first
    one's staging folder or commit the same batch again; it is refused at once instead (CollectionError, one line),
    nothing touched. Calls nested in one thread hold it once."""
    key = str(Path(path).resolve())
    held: set[str] = getattr(_held, "paths", set())
    if key in held or not (Path(path) / MANIFEST).is_file():
        yield  # no collection here (or a sharded one): the run refuses it in its own words, leaving no lock file
        return
    try:
        lock = open(Path(path) / MIGRATE_LOCK, "a+")
    except OSError as e:
        raise CollectionError(f"{path}: cannot migrate this collection ({(e.strerror or str(e)).lower()}: "
                              f"{MIGRATE_LOCK}); it can still be searched") from None
    with lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectionError(f"{path}: another `slimvec migrate` is running on this collection; wait for it to "
                                  "finish (a run killed meanwhile is continued by running the same command "
                                  "again)") from None
        _held.paths = held | {key}
        try:
            yield
        finally:
            _held.paths = held
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def migration_dir(path: Path) -> Path:
    return Path(path) / DIRNAME


def has_migration(path: Path) -> bool:
    """Whether `path` holds a migration record (a migration started and not finished)."""
    return (migration_dir(path) / RECORD).is_file()


def read_record(path: Path) -> dict[str, Any]:
    """The migration record of collection `path`. Raises CollectionError naming the file when it is missing or bad."""
    f = migration_dir(path) / RECORD
    try:
        record = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CollectionError(f"{path}: no migration under way (no {f})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CollectionError(f"{f}: migration record is not valid JSON ({e})") from None
    if not isinstance(record, dict) or record.get("status") not in {s.value for s in Status}:
        raise CollectionError(f"{f}: migration record has no valid status")
    return record


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Replace the migration record of collection `path` atomically."""
    write_json_atomic(migration_dir(path) / RECORD, record)


def progress(path: Path) -> dict[str, Any] | None:
    """What `info` and the HTTP info endpoint show: {"to", "adapter", "status", "documents", "reembedded",
    "fraction"} from the record and the target collection's document count, or None when no migration is under
    way. Reads files only (no model, no collection object), so any process can report it."""
    if not has_migration(path):
        return None
    try:
        r = read_record(path)
    except CollectionError as e:
        return {"status": "unreadable", "error": str(e)}
    done = _target_documents(migration_dir(path) / TARGET)
    total = int(r.get("documents", 0))
    if r["status"] == Status.SWITCHING.value or (path / INTENT).is_file():
        done, r = total, {**r, "status": Status.SWITCHING.value}
    return {"to": r.get("to"), "adapter": r.get("adapter"), "status": r["status"], "documents": total,
            "reembedded": done, "fraction": round(done / total, 4) if total else 1.0}


def _target_documents(target: Path) -> int:
    """Documents committed in the target collection (0 when it is not created yet)."""
    from slimvec.store import Store

    if not (target / "manifest.json").is_file():
        return 0
    store = Store.open(target)
    try:
        return store.counts()["documents"]
    finally:
        store.close()
