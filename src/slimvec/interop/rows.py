"""The record every export target holds, and the two directions: collection -> records -> collection."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimvec import registry, strictjson
from slimvec.atomic import check_place, fsync_dir
from slimvec.errors import CollectionError, ConfigError, ExportError, FilterError, IngestError, NoRoomError

TARGETS = ("qdrant", "lancedb", "parquet")
FORMAT = "slimvec-export-1"
# How the vectors were made beyond model and prompts, so an import chunks new documents and encodes queries as the
# exported collection did: the profile's late-chunking fields, and the manifest's records of late chunking (the
# section default fixed at creation, the query pooling of a late collection of a [CLS] model; late.py).
LATE_FIELDS = ("chunk_mode", "late_window", "late_overlap", "late_weight")
MANIFEST_LATE = ("late_sections", "query_pooling")


@dataclass(frozen=True)
class ChunkRecord:
    """One alive chunk row: its document, span, text and float32 vector (shape (dim,))."""

    doc_id: str
    chunk: int  # chunk number within its document, from 0
    start: int  # character span [start, end) in the document text
    end: int
    title: str
    text: str  # the chunk's own text
    document: str | None  # the whole document text on chunk 0, None on the others (stored once)
    metadata: dict[str, Any]
    vector: np.ndarray
    section_id: str | None = None  # the given section the chunk was cut from (None: cut without sections)
    heading_path: tuple[str, ...] = ()  # that section's heading path ("Intro", "Setup"), when it has one


def parse_target(spec: str) -> tuple[str, Path, str]:
    """("qdrant" | "lancedb" | "parquet", path, collection or table name) of "kind:PATH[#name]".

    Raises ConfigError for another kind or an empty path."""
    kind, sep, rest = spec.partition(":")
    path, _, name = rest.partition("#")
    if not sep or kind not in TARGETS or not path:
        raise ConfigError(f"export target {spec!r}: use qdrant:PATH, lancedb:PATH or parquet:FILE (optionally #NAME)")
    if name and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", name):  # LanceDB's table-name rule, checked before any write
        raise ConfigError(f"export target {spec!r}: #NAME may hold only letters, digits, '_', '-' and '.'")
    return kind, Path(path), name or "slimvec"


def collection_records(col: Any) -> Iterator[ChunkRecord]:
    """The records of a collection's alive chunk rows, in row order (vectors from disk): an import adds them in
    this order, so equal scores still break to the same document (`slimvec.scoring`)."""
    vectors = col.store.vectors()
    for doc in col.store.iter_documents(by_row=True):
        chunks = col.store.chunks_of(doc["id"])
        sections = col.store.sections_for_rows([row for row, _, _ in chunks])
        for i, (row, start, end) in enumerate(chunks):
            sec = sections.get(row)
            yield ChunkRecord(doc["id"], i, start, end, doc["title"], doc["text"][start:end],
                              doc["text"] if i == 0 else None, doc["metadata"],
                              np.asarray(vectors[row], np.float32), sec.section_id if sec else None,
                              sec.heading_path if sec else ())


def export_collection(col: Any, target: str) -> dict[str, Any]:
    """Write every alive chunk row of `col` to `target` ("qdrant:PATH", "lancedb:PATH", "parquet:FILE", each
    optionally "#NAME"); returns {"target", "records", "documents", "model", "dim"}.

    Raises ConfigError for a bad target, a sharded collection, a collection without dense vectors, or a target
    that exists already."""
    kind, path, name = parse_target(target)
    check_place(path, "export", parent_must_exist=kind == "parquet")  # a parquet file needs its folder
    if getattr(col, "store", None) is None:  # a ShardedCollection: its documents live in DIR/shards/NNN
        raise ConfigError(f"{col.path}: a sharded collection cannot be exported as one; export each shard "
                          f"directory ({col.path}/shards/000, ...) instead")
    dim = int(col.manifest["dim"])
    if not dim:
        raise ConfigError(f"{col.path}: keeps no dense vectors; exports carry float32 vectors")
    m = col.manifest
    meta = {"format": FORMAT, "model": m["model"], "dim": dim, "prompts": m.get("prompts"), "chunking": m.get("chunking"),
            "late": {k: (m.get("profile") or {}).get(k) for k in LATE_FIELDS},
            "profile": m.get("profile"),  # an import without a profile of its own rebuilds this one
            # and the retrievers enabled after creation (`index --bm25`), which the profile does not name
            "retrievers": m.get("retrievers"), "sparse_model": m.get("sparse_model"),
            **({"field_indexes": fields} if (fields := col.field_indexes()) else {}),
            **{k: m.get(k) for k in MANIFEST_LATE}}
    with col.reading():  # one committed state, whatever another process or thread commits meanwhile
        try:
            n = registry.load("export", kind).write(path, name, collection_records(col), meta)
        except (OSError, sqlite3.Error, RuntimeError) as e:
            # A full disk or a file size limit, as each target's library words it (qdrant-client's SQLite: "disk
            # I/O error", LanceDB: a RuntimeError, pyarrow: an OSError without the file): the writers remove
            # what they wrote, so say that, not "check the collection" (an export does not write to it).
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0] if str(e) else ""
            detail = re.sub(r", /\S+\.rs:\d+:\d+$", "", detail)  # the Rust source line LanceDB appends
            raise ExportError(f"{path}: the export could not be written ({detail or type(e).__name__}); nothing of "
                              "it was kept, the collection is unchanged") from None
        documents = len(col)
    return {"target": target, "records": n, "documents": documents, "model": meta["model"], "dim": dim}


def read_records(source: str) -> tuple[dict[str, Any], list[ChunkRecord]]:
    """(export metadata, records) read back from an export target.

    Raises ConfigError for a bad target, or a file or table that is not a readable slimvec export (damaged,
    foreign columns, metadata without model and dimension, an empty document id)."""
    kind, path, name = parse_target(source)
    try:
        meta, records = registry.load("export", kind).read(path, name)
        if not isinstance(meta, dict) or not meta.get("model") or int(meta.get("dim") or 0) < 1:
            raise ValueError("export metadata lacks the model or the dimension")
    except (KeyError, ValueError, TypeError) as e:  # damaged file, foreign columns or metadata (ArrowInvalid: ValueError)
        raise ConfigError(f"{source}: not a readable slimvec export ({type(e).__name__}: {e})") from None
    return meta, records


def import_records(source: str, path: str | Path, profile: Any = None, normalize: bool = False) -> Any:
    """A new collection at `path` built from an export (no re-encoding: its model must be the export's).

    profile: a `Profile` or a built-in profile's name; None rebuilds the exported collection's own profile (exports
    made before it was carried, and those of multi-vector collections, get exact-f32).
    A profile without dense vectors (bm25, splade) builds its index from the texts and drops the vectors.
    Raises ConfigError for a bad source or a multi-vector profile (token vectors are not exported);
    IngestError naming the document for records that do not fit together (a missing or repeated chunk, spans
    outside the text, vectors of another dimension, not finite, or not unit length unless `normalize` (see
    `Collection.add_encoded`), metadata that is not an object); nothing is left at `path` then."""
    from slimvec.collection import Collection
    from slimvec.documents import Chunk, Document
    from slimvec.profiles import Profile, load_profile

    meta, records = read_records(source)
    fields = _exported_field_indexes(source, meta)
    prof = profile if isinstance(profile, Profile) else load_profile(profile) if profile else _exported_profile(source, meta)
    if prof.tokens is not None:
        raise ConfigError(f"profile {prof.name!r} keeps token vectors, which exports do not carry")
    if profile is None and prof.rerank is not None:
        _check_exported_reranker(source, prof)
    if profile is not None and _other_model(prof.model, str(meta["model"])):  # it was replaced without a word
        raise ConfigError(f"{source}: profile {prof.name!r} names model {prof.model!r}, but the exported vectors are of "
                          f"{meta['model']!r}, which an import keeps (no re-encoding); import with the export's model, "
                          f"then move with `slimvec migrate DIR --to {prof.model}`")
    by_doc: dict[str, list[ChunkRecord]] = {}
    for r in records:
        by_doc.setdefault(r.doc_id, []).append(r)
    docs, chunks, vectors = [], [], []
    for doc_id, recs in by_doc.items():
        recs.sort(key=lambda r: r.chunk)
        first = recs[0]
        if first.chunk != 0 or first.document is None:
            raise IngestError(f"{source}: document {doc_id!r} has no chunk 0 carrying its text")
        if [r.chunk for r in recs] != list(range(len(recs))):  # a repeated record would be stored as a second row
            raise IngestError(f"{source}: document {doc_id!r} has chunks {[r.chunk for r in recs][:8]}, not 0, 1, "
                              "... once each")
        try:
            doc = Document(doc_id, first.document, first.title, first.metadata, sections=_sections(recs))
        except ValueError as e:
            raise IngestError(f"{source}: {e}") from None
        for r in recs:
            if not 0 <= r.start <= r.end <= len(doc.text) or r.vector.shape != (int(meta["dim"]),):
                raise IngestError(f"{source}: document {doc_id!r} chunk {r.chunk}: span or vector does not fit")
            chunks.append(Chunk(doc_id, r.chunk, r.start, r.end, doc.text[r.start : r.end], r.section_id))
            vectors.append(r.vector)
        docs.append(doc)
    prompts = meta.get("prompts") or {}
    chunking = meta.get("chunking") or {}
    made = {"chunk_tokens": chunking.get("max_tokens"), "chunk_overlap": chunking.get("overlap"),
            "chunk_mode": chunking.get("mode"),  # exports made before "late" was carried
            **{k: v for k, v in (meta.get("late") or {}).items() if k in LATE_FIELDS}}
    if (made["chunk_mode"] or prof.chunk_mode) != "late":
        # late_* settings an older collection recorded beside another chunk mode were never read: put back to their
        # defaults, as `recorded_profile` puts the carried profile's, not refused by `Collection.create`
        made = {k: v for k, v in made.items() if not k.startswith("late_")}
    # Built beside `path` and renamed into place whole: a refused or killed import leaves no collection behind
    # (an empty one, made before the commit, would pass `check` and block the rerun).
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CollectionError(f"{target}: a collection already exists here" if (target / "manifest.json").exists()
                              else f"{target}: not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = _import_stage(target)
    try:
        col = Collection.create(stage, profile=prof.model_copy(update={
            "model": meta["model"], "query_prompt": prompts.get("query"), "document_prompt": prompts.get("document"),
            **{k: v for k, v in made.items() if v is not None}}))
    except NoRoomError as e:
        raise _no_room_for(target, stage, e) from None
    try:
        col = _same_late_records(col, meta)
        if profile is None:
            _enable_exported(col, meta)
        if fields:  # before the rows: filled as they come
            col.create_field_index(fields)
        rows = np.stack(vectors) if vectors else np.zeros((0, int(meta["dim"])), np.float32)
        if not int(col.manifest["dim"]):  # a profile keeping no dense vectors (bm25, splade): built from the texts
            rows = np.zeros((len(chunks), 0), np.float32)
        col.add_encoded(docs, chunks, rows, normalize=normalize)
        encoder = col._encoder
        col.close()
        try:
            os.rename(stage, target)  # onto a missing or empty directory
        except OSError as e:
            raise CollectionError(f"{target}: cannot move the imported collection into place ({e.strerror})") from None
        fsync_dir(target.parent)
    except BaseException as e:
        col.close()
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, IngestError) and not str(e).startswith(f"{source}: "):  # name the file, as the checks above
            raise IngestError(f"{source}: {e}") from None
        if isinstance(e, NoRoomError):
            raise _no_room_for(target, stage, e) from None
        raise
    return Collection.open(target, encoder)


def _exported_field_indexes(source: str, meta: dict[str, Any]) -> list[str]:
    """The field names the export's metadata lists under "field_indexes", checked before anything is built: a
    name filters cannot write (edited by hand, or from another tool) was refused by `create_field_index` without
    naming the export it came from."""
    from slimvec.store.filters import field_path

    names = meta.get("field_indexes", [])
    if not isinstance(names, list):
        raise ConfigError(f"{source}: its metadata's field_indexes is {json.dumps(names)[:60]}, not a list of field "
                          "names")
    for name in names:
        try:
            if not isinstance(name, str):
                raise FilterError(f"{json.dumps(name)[:60]} is not a field name (a string)")
            field_path(name)
        except FilterError as e:
            raise ConfigError(f"{source}: its metadata lists field index {json.dumps(name)[:60]}, which cannot be "
                              f"made ({e}); fix or remove it in the export's metadata") from None
    return names


def _no_room_for(target: Path, stage: Path, e: Exception) -> NoRoomError:
    """The one line of an import the disk stopped: it named the hidden folder the import is built in, and said
    "this commit was rolled back (the collection holds what it held before it)" of a collection never made."""
    what = str(e).split("; ")[0].replace(str(stage), str(target))
    return NoRoomError(f"{target}: the import could not be written, nothing of it was left ({what})")


def _check_exported_reranker(source: str, prof: Any) -> None:
    """ConfigError when the exported profile's reranker cannot load on this machine (a cross-encoder directory of
    the exporting machine, a model name not registered here), naming the export and how to import all the same."""
    from slimvec.search.rerank import check_loadable

    check_loadable(prof.rerank, f"{source}: the exported profile {prof.name!r}",
                   "import with a profile of your own (`--profile NAME` or `--profile-file FILE`, `profile=` in Python; "
                   "e.g. the exported one without its rerank), or make that reranker available here first")


def _enable_exported(col: Any, meta: dict[str, Any]) -> None:
    """Enable on `col` (the exported collection's profile rebuilt) the retrievers the exported collection kept
    beyond its profile's: BM25 or SPLADE enabled after it was made are built from the texts; without this a round
    trip lost them and `--mode hybrid` failed. Names this slimvec does not know are passed over (an export's
    metadata is a file from elsewhere; exports made before it was carried have none)."""
    from slimvec import registry

    names = meta.get("retrievers")
    known = [n for n in (names if isinstance(names, list) else []) if isinstance(n, str) and registry.has("retriever", n)]
    col.enable_kept(known, meta.get("sparse_model"))


def _other_model(named: str | None, exported: str) -> bool:
    """Whether a profile's model is known to be another than the export's: two registered names of different models
    (an alias such as `minilm` is the model it names). A directory is not compared: its name is its path."""
    if named is None or named == exported or not registry.has("encoder", named) or not registry.has("encoder", exported):
        return False
    return registry.target("encoder", named) != registry.target("encoder", exported)


def _import_stage(target: Path) -> Path:
    """The folder an import into `target` is built in (beside it, named by this process), after removing those of
    imports into `target` whose process is gone (killed)."""
    prefix = f".{target.name}.import-"
    for name in os.listdir(target.parent):
        pid = name[len(prefix):]
        if name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(target.parent / name, ignore_errors=True)
    return target.parent / f"{prefix}{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sections(recs: list[ChunkRecord]) -> tuple[Any, ...] | None:
    """A document's given sections rebuilt from its chunk records (as `slimvec migrate` rebuilds them from chunk
    rows): each spans its chunks, with their heading path; None for a document cut without sections."""
    from slimvec.documents import Section

    spans: dict[str, list[Any]] = {}
    for r in recs:
        if r.section_id is not None:
            s = spans.setdefault(r.section_id, [r.start, r.end, r.heading_path])
            s[0], s[1] = min(s[0], r.start), max(s[1], r.end)
    return tuple(sorted((Section(sid, a, b, path) for sid, (a, b, path) in spans.items()),
                        key=lambda sec: sec.start)) or None


def _same_late_records(col: Any, meta: dict[str, Any]) -> Any:
    """`col` (just created, empty) with the export's late-chunking records in its manifest instead of those its
    creation derived (an export of a collection made before them: no query pooling, the old section default);
    reopened when they differ, so its encoder pools queries as the exported collection's did. Exports made before
    these records were carried (no such keys) keep what creation derived."""
    want = {k: meta[k] for k in MANIFEST_LATE if k in meta}
    if all(col.manifest.get(k) == v for k, v in want.items()):
        return col
    from slimvec.collection import Collection

    path = col.path
    with col.store.writer():
        col.store.save_manifest(want, drop=[k for k, v in want.items() if v is None])
    col.close()
    return Collection.open(path)


@dataclass(frozen=True)
class ExportFormat:
    """One target kind (registered in slimvec.registry, kind "export"): write records, read them back."""

    write: Any  # (path, name, records: Iterable[ChunkRecord], meta: dict) -> int records written
    read: Any  # (path, name) -> (meta, list[ChunkRecord])


def to_row(r: ChunkRecord) -> dict[str, Any]:
    """A record as a flat row (metadata as JSON text, so every target stores any metadata)."""
    return {"doc_id": r.doc_id, "chunk": r.chunk, "start": r.start, "end": r.end, "title": r.title, "text": r.text,
            "document": r.document, "metadata": json.dumps(r.metadata, ensure_ascii=False),
            "vector": np.asarray(r.vector, np.float32), "section_id": r.section_id,
            "heading_path": json.dumps(list(r.heading_path), ensure_ascii=False) if r.heading_path else None}


def _exported_profile(source: str, meta: dict[str, Any]) -> Any:
    """The exported collection's profile, or exact-f32 when the export carries none or one keeping token vectors
    (exports carry no token vectors). Raises ConfigError naming `source` for a carried profile that does not
    validate."""
    from slimvec.profiles import load_profile, recorded_profile

    carried = meta.get("profile")
    if carried is None:
        return load_profile()
    prof = recorded_profile(carried, meta.get("chunking"), source=f"{source}: exported profile")
    return load_profile() if prof.tokens is not None else prof


def _whole(row: dict[str, Any], field: str) -> int:
    """row[field] as an int; a fraction, a bool or text is refused (int(0.5) would silently be chunk 0)."""
    v = row[field]
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not float(v).is_integer():
        raise ValueError(f"{field} {v!r}: not a whole number")
    return int(v)


def from_row(row: dict[str, Any]) -> ChunkRecord:
    """The inverse of `to_row` (vector as float32); rows of exports made before sections were carried have no
    section fields. Metadata naming a key twice is refused (strictjson.RepeatedKeyError, a ValueError): keeping the
    last value would lose the first without a word."""
    if not isinstance(row["doc_id"], str) or not row["doc_id"]:
        raise ValueError(f"doc_id {row['doc_id']!r}: not a non-empty string")
    sid, path = row.get("section_id"), row.get("heading_path")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise ValueError(f"section_id {sid!r}: not a non-empty string")
    heading = json.loads(path) if path else []
    if not isinstance(heading, list) or not all(isinstance(h, str) for h in heading):
        raise ValueError(f"heading_path {path!r}: not a JSON array of strings")
    return ChunkRecord(row["doc_id"], _whole(row, "chunk"), _whole(row, "start"), _whole(row, "end"), row["title"] or "",
                       row["text"] or "", row["document"], strictjson.loads(row["metadata"] or "{}"),
                       np.asarray(row["vector"], np.float32), sid, tuple(heading))


def from_rows(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[ChunkRecord]:
    """`from_row` of each (where, row), where naming the row in its target ("row 7", "point 12345"). Raises
    ValueError naming it and the field: a row added with the target's own tools (a point without slimvec's
    fields) was "KeyError: 'doc_id'", which left the user to find it among thousands."""
    out = []
    for where, row in rows:
        try:
            out.append(from_row(row))
        except KeyError as e:
            raise ValueError(f"{where}: no {e.args[0]!r} field") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: {e}") from None
    return out


def meta_json(meta: dict[str, Any]) -> str:
    """Export metadata as JSON text (stored beside the records by every target)."""
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)
