"""Turn a list of paths (files, folders, tables, BEIR folders) into one stream of Documents."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from slimvec.documents import Document
from slimvec.errors import IngestError
from slimvec.ingest.beir import BEIR_FIELDS, is_beir_dir, iter_corpus
from slimvec.ingest.files import FILE_EXTS, file_ext, iter_folder, read_file
from slimvec.ingest.tables import TABLE_EXTS, FieldMap, iter_table, locate

log = logging.getLogger("slimvec.ingest")

# (file the item came from, line/row or None, id field name for messages, the item)
_Located = tuple[Path, int | None, str, Document | IngestError]


def read_sources(
    paths: Iterable[str | Path] | str | Path,
    fields: FieldMap = FieldMap(),  # noqa: B008 - frozen, so one shared default is safe
    strict: bool = False,
    on_error: Callable[[IngestError], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[Document]:
    """Documents from every path, in order; bad records go to `on_error` (or raise if `strict`)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    checked = [_check(Path(p)) for p in paths]  # fail before any work starts, not halfway through a long run
    return _read(checked, fields, strict, on_error or _log_error, on_skip or _log_skip)


def _check(path: Path) -> Path:
    if not path.exists():
        raise IngestError(f"{path}: no such file or directory")
    if path.is_dir():
        return path
    if not path.is_file():
        raise IngestError(f"{path}: not a regular file or folder")
    ext = file_ext(path)
    if ext not in FILE_EXTS and ext not in TABLE_EXTS:
        known = ", ".join(f".{e}" for e in sorted(FILE_EXTS | TABLE_EXTS))
        raise IngestError(f"{path}: unsupported file type '.{ext}' (supported: {known}, or a folder)")
    return path


def _read(
    paths: list[Path],
    fields: FieldMap,
    strict: bool,
    on_error: Callable[[IngestError], None],
    on_skip: Callable[[str], None],
) -> Iterator[Document]:
    # Locations packed as (file number << 32) | (position + 1) ints: a run may hold millions of ids.
    seen: dict[str, int] = {}
    files: list[Path] = []
    file_no: dict[Path, int] = {}
    for path in paths:
        for src, pos, id_field, item in _items(path, fields, on_skip):
            if isinstance(item, Document) and item.id in seen:
                there = _unpack(files, seen[item.id])
                item = IngestError(
                    f"{locate(src, pos)}: {id_field}: duplicate id {item.id!r} (first seen at {there})"
                )
            if isinstance(item, IngestError):
                if strict:
                    raise item
                on_error(item)
                continue
            if src not in file_no:
                file_no[src] = len(files)
                files.append(src)
            seen[item.id] = (file_no[src] << 32) | (pos + 1 if pos is not None else 0)
            yield item


def _unpack(files: list[Path], packed: int) -> str:
    pos = packed & 0xFFFFFFFF
    return locate(files[packed >> 32], pos - 1 if pos else None)


def _items(path: Path, fields: FieldMap, on_skip: Callable[[str], None]) -> Iterator[_Located]:
    if path.is_dir() and is_beir_dir(path):
        corpus = path / "corpus.jsonl"
        for pos, item in iter_corpus(path):
            yield corpus, pos, BEIR_FIELDS.id_field, item
    elif path.is_dir():
        for src, item in iter_folder(path, on_skip):
            yield src, None, "id", item
    elif file_ext(path) in TABLE_EXTS:
        for pos, item in iter_table(path, fields):
            yield path, pos, fields.id_field, item
    else:
        try:
            yield path, None, "id", read_file(path)
        except IngestError as e:
            yield path, None, "id", e


def _log_error(error: IngestError) -> None:
    log.warning("skipped: %s", error)


def _log_skip(note: str) -> None:
    log.info("%s", note)
