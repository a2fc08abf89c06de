"""Atomic file and folder replacement: readers see the old version or the new one, never a partial write."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slimvec.errors import ConfigError


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replaced_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success its files are fsynced and it replaces `target`."""
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for p in tmp.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def replaced_file(target: Path, tmp: Path) -> Iterator[Path]:
    """Yield `tmp` for the caller to write; on success it is renamed over `target`. If the block raises (a full
    disk), the part written is deleted, as `replaced_dir` deletes its folder: left there, it would hold the space
    the next save needs (for good, when its name is one no later save reuses)."""
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)


def write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    """Write JSON to a temporary file, fsync it, and rename it over `path`."""
    with replaced_file(path, path.with_suffix(path.suffix + ".tmp")) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)


def check_place(path: Path, what: str, parent_must_exist: bool = False, folder: bool = False) -> None:
    """ConfigError, in one line naming the user's path, when `what` at `path` (a file, or with `folder` a
    folder, that may not exist yet) cannot be made or used: the nearest existing ancestor is a file (or `path`
    itself, for a folder), or, with `parent_must_exist`, the folder it goes in does not exist. Left to the OS,
    the error named a path inside it (DIR/vectors, x.parquet.tmp)."""
    for p in (path, *path.parents):
        if p.exists():
            if (p != path or folder) and not p.is_dir():
                raise ConfigError(f"{p} is a file, not a folder: {what} {path} cannot be made"
                                  + (" inside it" if p != path else ""))
            break
    if parent_must_exist and not path.parent.is_dir():
        raise ConfigError(f"{path.parent}: no such folder for {what} {path}")
