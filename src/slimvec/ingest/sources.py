"""Turn a list of paths (files, folders, tables, BEIR folders) into one stream of Documents."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from slimvec.documents import Document, has_content
from slimvec.errors import ConfigError, IngestError
from slimvec.ingest.beir import BEIR_FIELDS, is_beir_dir, iter_corpus
from slimvec.ingest.fieldtypes import convert, parse_field_types
from slimvec.ingest.files import (
    FILE_EXTS,
    NO_TEXT,
    Claim,
    file_ext,
    file_identity,
    iter_folder,
    read_file,
    same_file_note,
)
from slimvec.ingest.tables import TABLE_EXTS, FieldMap, iter_table, locate
from slimvec.records import check_record

log = logging.getLogger("slimvec.ingest")

# (file the item came from, line/row or None, field names for messages, the item)
_Located = tuple[Path, int | None, FieldMap, Document | IngestError]
_FILE_FIELDS = FieldMap(id_field="id")


def read_sources(
    paths: Iterable[str | Path] | str | Path,
    fields: FieldMap = FieldMap(),  # noqa: B008 - frozen, so one shared default is safe
    strict: bool = False,
    on_error: Callable[[IngestError], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    field_types: Mapping[str, str] | Iterable[str] | None = None,
) -> Iterator[Document]:
    """Documents from every path, in order; bad records go to `on_error` (or raise if `strict`).

    Every record is checked where it is read (`slimvec.records`: the id rule, lone surrogates, NUL,
    non-finite metadata numbers, empty text) and reported as `IngestError("path:line: field: problem")`.
    `field_types` ({field: "int" | "float" | "bool" | "str"}, or `["year=int"]`) fixes metadata types:
    it overrides the types inferred for CSV columns and converts text values of other sources; a value
    that does not convert is an error for its record. Raises IngestError (missing path, unsupported file
    type) or ConfigError (bad field type) before any record is read.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    types = parse_field_types(field_types)
    own = {fields.id_field: "id", fields.title_field: "title", fields.text_field: "text"}
    if typed_own := next((name for name in types if name in own), None):  # never metadata: the type was dropped
        raise ConfigError(f"field type for {typed_own!r}: it is the {own[typed_own]} field, not metadata (ids, titles "
                          "and texts are always text)")
    checked = [_check(Path(p)) for p in paths]  # fail before any work starts, not halfway through a long run
    _no_overlap(checked)
    return _read(checked, fields, strict, on_error or _log_error, _once(on_skip or _log_skip), types)


def _once(on_skip: Callable[[str], None]) -> Callable[[str], None]:
    """`on_skip` called once per distinct note: a link in a folder, given again, is passed over by the folder's walk
    and as given, in the same words."""
    said: set[str] = set()

    def note(text: str) -> None:
        if text not in said:
            said.add(text)
            on_skip(text)
    return note


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


def _no_overlap(paths: list[Path]) -> None:
    """IngestError when two sources would read the same records: a folder, table or BEIR folder given twice, or a
    folder and a folder its walk reads (`docs docs/sub`). Ids are paths relative to the folder named, so each file
    of such a folder was stored twice, as `sub/a.txt` and `a.txt`. A table inside a folder is not read by the walk:
    naming it is how to read it. A document file (.txt, .md, .html, .pdf) reached again, given twice, inside a
    folder given, or through a link, is no error: it is read once, under the first path met, and the others are
    noted (`FileClaims`), as a linked file is (`slimvec index docs docs/b.txt` is `docs docs/link.txt`)."""
    seen: list[tuple[Path, Path, object]] = []
    for path in paths:
        if path.is_file() and file_ext(path) in FILE_EXTS:  # read by `_items` as one document, claimed there
            continue
        here = path.resolve()
        # A BEIR folder is read as its corpus table, which no folder walk reads (tables are passed over): inside
        # a folder it overlaps nothing, and named beside its own corpus.jsonl it is that file given twice.
        here = here / "corpus.jsonl" if is_beir_dir(here) else here
        same = file_identity(here) if here.is_file() else here  # two hard links to one table are one table
        for earlier, there, other in seen:
            if same == other:
                raise IngestError(f"{path}: given twice (also as {earlier})")
            for outer, o, inner, i in ((earlier, there, path, here), (path, here, earlier, there)):
                if _walk_reads(o, i):
                    raise IngestError(f"{inner}: inside {outer}, which is also given: its files would be stored "
                                      "twice, under two ids (ids are paths relative to the folder named); give one")
        seen.append((path, here, same))


def _walk_reads(folder: Path, path: Path) -> bool:
    """Whether a walk of `folder` (resolved) reads the file or folder `path` (resolved) or files under it."""
    if not folder.is_dir() or is_beir_dir(folder) or not path.is_relative_to(folder):
        return False
    if any(part.startswith(".") for part in path.relative_to(folder).parts):  # hidden entries are not walked
        return False
    return path.is_dir() or file_ext(path) in FILE_EXTS


def _read(
    paths: list[Path],
    fields: FieldMap,
    strict: bool,
    on_error: Callable[[IngestError], None],
    on_skip: Callable[[str], None],
    field_types: dict[str, str],
) -> Iterator[Document]:
    # Locations packed as (file number << 32) | (position + 1) ints: a run may hold millions of ids.
    seen: dict[str, int] = {}
    files: list[Path] = []
    file_no: dict[Path, int] = {}
    untyped = dict(field_types)  # the field types no record has used yet
    claim = FileClaims()  # one file reached by two paths (a link in a folder, its target given) is read once
    for path in paths:
        for src, pos, names, item in iter_located(path, fields, on_skip, field_types, claim):
            if isinstance(item, Document) and item.id in seen:
                there = _unpack(files, seen[item.id])
                item = IngestError(
                    f"{locate(src, pos)}: {names.id_field}: duplicate id {item.id!r} (first seen at {there})"
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
            if untyped:
                for name in [n for n in untyped if n in item.metadata]:
                    del untyped[name]
            yield item
    for name, typ in untyped.items():  # a misspelt field would otherwise change nothing without a word
        on_skip(f"field type {name}={typ}: no record read has a metadata field {name!r}, so it changed nothing "
                "(a misspelt field name?)")


class FileClaims:
    """The files read so far, by identity (`files.file_identity`): `claim(path, root)` is None the first time a file is met (it is then read), else
    (the path it was first read under, the folder whose walk read it or None for a path given on its own). Ids are
    paths relative to the folder named (a lone file: its name), so a linked file and its target, or a file and the
    folder holding it, both given, had two ids and were stored twice. root: the folder whose walk meets `path`."""

    def __init__(self) -> None:
        self.first: dict[object, tuple[Path, Path | None]] = {}

    def __call__(self, path: Path, root: Path | None = None) -> tuple[Path, Path | None] | None:
        key = file_identity(path)  # device and inode: hard links are one file too, not only what resolves alike
        if key in self.first:
            return self.first[key]
        self.first[key] = (path, root)
        return None


def iter_located(
    path: Path, fields: FieldMap, on_skip: Callable[[str], None], field_types: dict[str, str],
    claim: Claim | None = None,
) -> Iterator[_Located]:
    """Each record of one checked path as (file, line/row or None, field names, checked Document or its error),
    in order; repeated ids are not looked for (the caller sees every path: `read_sources`, or the driver of a
    distributed ingest, `slimvec.distributed.ingest`, whose workers read one path each). `claim` (see
    `FileClaims`) passes over, with a note, a file already read under another path."""
    said = False

    def skip(text: str) -> None:
        nonlocal said
        said = True
        on_skip(text)

    read = False
    for src, pos, names, item in _items(path, fields, skip, field_types, claim):
        read = True
        if isinstance(item, Document):
            item = _checked(item, src, pos, names, field_types)
        yield src, pos, names, item
    if not read and not said:  # an empty folder or table was read as nothing at all, without a word
        on_skip(f"{path}: {_NOTHING_IN[path.is_dir() and not is_beir_dir(path)]}")


_NOTHING_IN = {True: "no file to read (an empty folder; hidden files and folders are not read)",
               False: "no records in it"}


def _unpack(files: list[Path], packed: int) -> str:
    pos = packed & 0xFFFFFFFF
    return locate(files[packed >> 32], pos - 1 if pos else None)


def _checked(
    doc: Document, src: Path, pos: int | None, names: FieldMap, field_types: dict[str, str]
) -> Document | IngestError:
    where = locate(src, pos)
    try:
        if field_types and any(k in doc.metadata for k in field_types):
            meta = dict(doc.metadata)
            for key, typ in field_types.items():
                if key in meta:
                    try:
                        meta[key] = convert(meta[key], typ)
                    except ValueError as e:
                        raise IngestError(f"{where}: {key}: {e}") from None
            doc = Document(doc.id, doc.text, doc.title, meta, doc.sections)  # its given sections kept
        # BEIR embeds title + text, and its corpora hold title-only records: only a record with neither
        # is empty there. Elsewhere empty text means nothing was extracted, which is worth a report.
        beir = names is BEIR_FIELDS
        empty = "" if beir and has_content(doc.title) else _empty_text(src, names, beir)
        return check_record(doc, where, id_field=names.id_field, title_field=names.title_field,
                            text_field=names.text_field, empty_text=empty)
    except IngestError as e:
        return e


def _empty_text(src: Path, names: FieldMap, beir: bool) -> str:
    if names is _FILE_FIELDS:
        return NO_TEXT.get(file_ext(src), NO_TEXT[""])
    return "empty (and no title)" if beir else "empty"


def _items(
    path: Path, fields: FieldMap, on_skip: Callable[[str], None], field_types: dict[str, str],
    claim: Claim | None,
) -> Iterator[_Located]:
    if path.is_dir() and is_beir_dir(path):
        corpus = path / "corpus.jsonl"
        for pos, item in iter_corpus(path):
            yield corpus, pos, BEIR_FIELDS, item
    elif path.is_dir():
        for src, item in iter_folder(path, on_skip, claim):
            yield src, None, _FILE_FIELDS, item
    elif file_ext(path) in TABLE_EXTS:
        for pos, item in iter_table(path, fields, field_types):
            yield path, pos, fields, item
    elif claim is not None and (first := claim(path)) is not None:
        on_skip(same_file_note(path, *first))
    else:
        try:
            yield path, None, _FILE_FIELDS, read_file(path)
        except IngestError as e:
            yield path, None, _FILE_FIELDS, e


def _log_error(error: IngestError) -> None:
    log.warning("skipped: %s", error)


def _log_skip(note: str) -> None:
    log.info("%s", note)
