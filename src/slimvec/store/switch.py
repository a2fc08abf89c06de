"""Replace a collection's files by a staged generation: all at once for readers, rolled forward after a crash.

A compaction (`slimvec compact`) and a migration's switch (`slimvec migrate`) both build a whole new generation
of the collection in a staging folder under DIR (an ordinary collection directory) while readers keep using the
current files, then swap it in. The swap:

1. the caller holds the writer lock (`writer_lock`), so no commit lands on the old generation meanwhile;
2. the readers' lock (store.READERS_LOCK) is taken exclusively without waiting: every open Store holds it
   shared, so success means no handle still reads the old files (SQLite deletes `-wal` by path when its last
   connection closes, and rescoring reopens the vector file by path: no handle may outlive its files); opens
   wait while it is held. When another handle is open, the switch is refused and nothing changed;
3. the intent, DIR/.switch.json (names to move out and in, the staging folder), is written atomically: the
   commit point. From here on every open rolls the switch forward (`finish`), so a crash never leaves a mix;
4. the old files move into STAGE/old/ (manifest.json first out), the staged ones into DIR (manifest.json last
   in), STAGE is renamed away, then the intent is removed. Each move is redone only while its source exists,
   so rolling forward twice is harmless.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slimvec.atomic import fsync_dir, write_json_atomic
from slimvec.errors import CollectionError

INTENT = ".switch.json"
WRITER_LOCK = ".writer.lock"
READERS_LOCK = ".readers.lock"
MIGRATE_LOCK = ".migrate.lock"  # held by a `slimvec migrate` run (slimvec.migrate.state.running)
MANIFEST = "manifest.json"
MIGRATION = "migration"  # DIR/migration/: a `slimvec migrate` under way (slimvec.migrate.state) ...
MIGRATION_RECORD = "migration.json"  # ... from its record, written at its start, until its switch
# Names in DIR that stay through a switch: the lock files every process flocks, and the intent itself.
KEEP = (WRITER_LOCK, READERS_LOCK, MIGRATE_LOCK, INTENT)


@contextmanager
def writer_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold collection `path`'s exclusive writer lock: yields True while held.

    wait=True blocks until other writers finish; a directory that cannot be written raises CollectionError
    (one line: the collection is read-only). wait=False yields False instead, holding nothing, when another
    writer has the lock or the lock file cannot be opened (what optional writes of derived files want)."""
    try:
        lock = open(Path(path) / WRITER_LOCK, "a+")
    except OSError as e:
        if wait:
            raise CollectionError(f"{path}: cannot write this collection ({e.strerror.lower()}: "
                                  f"{WRITER_LOCK}); it can still be searched") from None
        yield False
        return
    with lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def refuse_writes_during_migration(path: Path) -> None:
    """CollectionError while a migration of collection `path` is under way. Its re-embedding reads the documents
    once and its switch replaces the collection with what it read, so a write landing meanwhile, through a handle
    opened before the migration started (a server: a plain collection, not the migrating one that refuses
    writes), was dropped by the switch (an upsert lost without a word) or kept it from ever switching (a delete:
    fewer documents than the target holds). Checked under the writer lock, which the migration's start holds
    while it reads the documents and writes its record."""
    record = Path(path) / MIGRATION / MIGRATION_RECORD
    if not record.is_file():
        return
    try:
        to = json.loads(record.read_text(encoding="utf-8")).get("to")
    except (OSError, ValueError, AttributeError):  # unreadable: `slimvec migrate` itself says what is wrong with it
        to = None
    model = f" to {to!r}" if isinstance(to, str) else ""
    raise CollectionError(f"{path}: a migration{model} is under way; writes are refused until it finishes "
                          f"(`slimvec migrate {path} --to {to if isinstance(to, str) else 'MODEL'}`)")


def switch(path: Path, stage: Path, staged: Path, busy: str) -> None:
    """Swap the collection files of `path` for those of `staged` (a collection directory inside `stage`, a
    folder of `path`), then remove `stage`. The caller holds the writer lock.

    busy: the message of the CollectionError raised, with nothing changed, while another handle is open.
    """
    path, stage, staged = Path(path), Path(stage), Path(staged)
    with open(path / READERS_LOCK, "a+") as readers:
        try:
            fcntl.flock(readers.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectionError(busy) from None
        intent = {
            "stage": stage.name,
            "staged": str(staged.relative_to(stage)),
            "move_in": sorted(p.name for p in staged.iterdir() if p.name not in KEEP),
            "move_out": sorted(p.name for p in path.iterdir() if p.name not in KEEP and p.name != stage.name
                               and not p.name.startswith(".done-")),
        }
        write_json_atomic(path / INTENT, intent)  # the commit point of the switch
        _roll_forward(path, intent)


def finish(path: Path) -> bool:
    """Roll forward a switch that was interrupted after its intent was written (called on open); returns
    whether there was one. Takes the writer lock and waits for the readers' lock."""
    path = Path(path)
    if not (path / INTENT).is_file():
        return False
    with writer_lock(path):
        # The intent seen above may be that of a switch running, not interrupted: its process removed it when done,
        # then let go of the writer lock this call waited for, and its handles (and any opened since) hold the
        # readers' lock shared for as long as they are open. Waiting for that lock here, holding the writer lock,
        # hung the open for good and the switching process's next write behind it.
        if not (path / INTENT).is_file():
            return True
        with open(path / READERS_LOCK, "a+") as readers:
            fcntl.flock(readers.fileno(), fcntl.LOCK_EX)
            intent = _read_intent(path)
            if intent is not None:
                _roll_forward(path, intent)
    return True


def _read_intent(path: Path) -> dict[str, Any] | None:
    try:
        intent = json.loads((path / INTENT).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None  # another process finished it while we waited for the locks
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CollectionError(f"{path / INTENT}: switch record is not valid JSON ({e})") from None
    return intent if isinstance(intent, dict) else None


def _roll_forward(path: Path, intent: dict[str, Any]) -> None:
    stage = path / intent["stage"]
    staged, aside = stage / intent["staged"], stage / "old"
    move_in = [n for n in intent["move_in"] if n != MANIFEST] + [MANIFEST]  # manifest last in
    move_out = [MANIFEST] + [n for n in intent["move_out"] if n != MANIFEST]  # and first out
    if stage.exists():
        aside.mkdir(exist_ok=True)
        for name in move_out:
            # a name the new generation also has is moved out only while its replacement still waits
            if (path / name).exists() and (name not in move_in or (staged / name).exists()):
                _replace(path / name, aside / name)
        for name in move_in:
            if (staged / name).exists():
                _replace(staged / name, path / name)
        fsync_dir(path)
        done = path / f".done-{intent['stage']}-{os.getpid()}"
        os.replace(stage, done)
        fsync_dir(path)
        shutil.rmtree(done, ignore_errors=True)
    (path / INTENT).unlink(missing_ok=True)
    fsync_dir(path)
    for leftover in path.glob(".done-*"):  # a stage renamed away by a run killed before removing it
        shutil.rmtree(leftover, ignore_errors=True)


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)
