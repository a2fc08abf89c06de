"""Distributed ingest on Ray Data: read sources in Ray tasks, chunk and encode in an actor pool, write each shard
from the driver through the normal collection write path (extra `ray`).

Stages (docs/scale.md, "Distributed ingest"):

1. read: the driver checks the source paths (as `slimvec.ingest.read_sources` does) and hands them to Ray Data
   (`from_items`, one block per path); a task reads each path with slimvec's own readers
   (`ingest.sources.iter_located`), so a bad record gives the same one-line error (file, line, field). One path
   is read by one task (a single big JSONL is read by one task; encoding, not reading, is the cost).
2. chunk and encode: `map_batches` with the callable class `ChunkEncoder`, run by `workers` actors (the model
   loaded once per actor from the collection's manifest: registered name or model directory), `batch_size`
   documents per call, `Collection.chunk` then `Collection.chunk_and_encode` so chunks and vectors are those
   `Collection.add` makes. With upsert (the default) an actor first asks the document's shard (`router.shard_of`,
   read-only) whether it stores the document exactly as given (`Store.unchanged`: title, text, metadata, chunks),
   and encodes only the others; those it skipped travel without vectors.
3. write: the driver takes the encoded documents in source order (`preserve_order`), reports bad records and
   repeated ids exactly as single-process ingest does, routes each document to its shard by the stable hash of
   its id (`router.shard_of`) and commits it with `Collection.add_encoded`, one writer (this process) per shard,
   `commit_docs` documents per transaction. Documents that came without vectors are passed as `unchanged`:
   checked again under the shard's writer lock, left as stored (no rows written, none left dead), or, if another
   writer changed one since the actor looked, encoded by the driver and written, so this call's version wins.

A rerun over the same sources therefore encodes only what changed (as `Collection.upsert` does) and counts every
stored document as written; the driver logs how many the actors encoded and how many they found unchanged
("slimvec.ingest", INFO). A kill loses at most the uncommitted batches; rerunning the same call upserts by id and
ends with the same documents and chunks (what the killed run committed is found unchanged and not encoded again).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.collection import Collection
from slimvec.distributed.router import shard_of
from slimvec.documents import Chunk, Document
from slimvec.errors import CollectionError, ConfigError, IngestError
from slimvec.extras import require
from slimvec.ingest.fieldtypes import parse_field_types
from slimvec.ingest.files import file_identity, same_file_note
from slimvec.ingest.sources import FileClaims, iter_located, read_sources
from slimvec.ingest.tables import FieldMap, locate
from slimvec.profiles import Profile, load_profile
from slimvec.progress import progress_bar

BATCH_SIZE = 256  # documents per encoder call: sorted by length inside (as single-process encoding sorts 512),
# so batches pad little; large enough that the per-call overhead of Ray Data is small
COMMIT_DOCS = 512  # documents per shard transaction: single-process ingest commits iterators in 512s


def index(
    sources: Iterable[str | Path] | str | Path,
    path: str | Path,
    *,
    shards: int | None = None,
    workers: int = 2,
    address: str | None = None,
    batch_size: int = BATCH_SIZE,
    commit_docs: int = COMMIT_DOCS,
    upsert: bool = True,
    fields: FieldMap = FieldMap(),  # noqa: B008 - frozen, so one shared default is safe
    strict: bool = False,
    field_types: Mapping[str, str] | Iterable[str] | None = None,
    on_error: Callable[[IngestError], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    progress: bool = False,
    **create: Any,
) -> int:
    """Ingest `sources` (files, folders, JSONL/CSV/Parquet tables, BEIR folders) into the collection at `path`,
    encoding on `workers` Ray actors (Ray Data `map_batches` with a callable class on an `ActorPoolStrategy`);
    returns how many documents were written.

    path: an existing collection (sharded or plain), or a new one: sharded with `shards` shards
    (`create_sharded`), else plain; `create` holds `Collection.create`'s options (model, profile, chunk_tokens,
    ...) for a new one. shards: on an existing sharded collection it must equal its shard count. address: a Ray
    cluster to join; without one and no Ray running, a local instance is started on loopback and shut down after.
    batch_size: documents per encoder call; commit_docs: documents per shard transaction. upsert: replace stored
    documents with the same id, leaving those stored exactly as given as they are (not encoded, counted as
    written; see the module docstring); False: a stored id is an error, as `add`. fields, strict, field_types, on_error,
    on_skip: as `slimvec.ingest.read_sources` (bad records are reported and skipped, or raised with `strict`).

    Raises IngestError (missing path, unsupported file, with strict a bad record), ConfigError (bad option, a
    collection keeping token vectors, a shard count that differs from the collection's), CollectionError.
    """
    for name, value in (("workers", workers), ("batch_size", batch_size), ("commit_docs", commit_docs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    paths = [Path(p) for p in ([sources] if isinstance(sources, (str, Path)) else sources)]
    read_sources(paths, fields, field_types=field_types)  # path and field-type checks, before any work
    types = parse_field_types(field_types)
    report = on_error or _log_error
    note = on_skip or _log_note
    ray = require("ray")  # fails in one line, before a collection is created, when the extra is missing
    if not paths:
        _open_target(Path(path), shards, create).close()
        return 0
    from slimvec.distributed.actors import connect
    from slimvec.distributed.ray_logs import ray_lines_to_log

    started = not ray.is_initialized()
    # The cluster first: a bad address or a cluster too small fails before any collection is created.
    with _worker_niceness(started and address is None):
        connect(address, num_cpus=workers + 1)
    # A local instance of our own: Ray's C++ log lines go to a log file, not the user's terminal (ray_logs.py).
    # Started after `connect`, so Ray's own processes keep the real stderr and never hold the pipe.
    with ray_lines_to_log() if started and address is None else nullcontext():
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if workers + 1 > cpus:  # a task that can never be placed would stall the run, not fail it
                raise ConfigError(f"{workers} workers need {workers + 1} CPUs in the Ray cluster (one per encoder "
                                  f"actor, one for Ray Data's repartition tasks); it has {cpus}")
            writer = _open_target(Path(path), shards, create)
            try:
                # With upsert the actors skip documents stored as given: they read the shards the driver writes.
                stream = _encoded(paths, writer.reference, fields, types, workers, batch_size,
                                  [str(c.path) for c in writer.cols] if upsert else None)
                try:
                    return _write(stream, writer, upsert, commit_docs, strict, report, note, progress)
                finally:
                    # Now, not when it is collected: a stream left open by an error (--strict) restores the Ray Data
                    # context it changed whenever the garbage collector gets to it, possibly in the middle of the
                    # next run, which then lost its preserve_order (seen once: a rerun reporting out of order).
                    stream.close()
            finally:
                writer.close()
        finally:
            if started:  # the local instance is shut down; a cluster joined by address is only left
                ray.shutdown()


@contextmanager
def _worker_niceness(local: bool) -> Iterator[None]:
    """Start a local Ray instance whose workers run at this process's priority. Ray starts workers at niceness 15
    (RAY_worker_niceness), and the encoder actors do the whole job here: beside two busy processes on the 2-core
    development box they got 14 s of CPU in 8 minutes."""
    key = "RAY_worker_niceness"
    before = os.environ.get(key)
    if local and before is None:
        os.environ[key] = "0"
    try:
        yield
    finally:
        if local and before is None:
            os.environ.pop(key, None)


class ChunkEncoder:
    """Ray Data callable class: chunks and encodes a batch of read records with the collection's model, loaded
    once per actor. Input and output batches: {"item": object array of pickled records}; a document's output
    payload is (document, its chunks, their float32 (chunks, dim) vectors), or (document, chunks, None) when
    `shards` is given and its shard stores it exactly as given (`Store.unchanged`: not encoded; the driver checks
    it again under the shard's writer lock)."""

    def __init__(self, reference: str, threads: int = 1, shards: list[str] | None = None) -> None:
        self.col = Collection.open(reference)
        encoder = self.col.encoder  # load the model now, once, not on the first batch
        # One intra-op thread per actor: actors, not threads, share the cores. Set before the first batch (a torch
        # model computes nothing at load); an encoder that never runs torch (static, ONNX: `needs_torch` False)
        # is spared its import, seconds per actor on every run.
        if getattr(encoder, "needs_torch", True):
            try:
                import torch

                torch.set_num_threads(threads)
            except ImportError:  # model2vec models run without torch
                pass
        # Each shard collection (in shard order), only read here: the driver is their one writer. Opening one loads
        # nothing but its manifest and a SQLite connection.
        self.shards = [self.col if p == reference else Collection.open(p) for p in shards or []]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = [pickle.loads(b) for b in batch["item"]]
        docs: dict[str, Document] = {}
        for kind, _, _, item in records:
            if kind == "doc" and item.id not in docs:  # a repeat is dropped by the driver, which names it
                docs[item.id] = item
        chunks = self.col.chunk(list(docs.values()))
        same = self._unchanged(list(docs.values()), chunks)
        todo = [d for d in docs.values() if d.id not in same]
        _, vectors = self.col.chunk_and_encode(todo, chunks)
        parts: dict[str, tuple[list[Chunk], np.ndarray | None]] = {}
        start = 0
        for doc in docs.values():
            own = chunks[doc.id]
            if doc.id in same:
                parts[doc.id] = (own, None)
            else:
                parts[doc.id] = (own, vectors[start : start + len(own)])
                start += len(own)
        out = []
        for kind, where, id_field, item in records:
            if kind == "doc":
                part = parts.pop(item.id, None)  # the first record of an id carries its vectors
                out.append(pickle.dumps((kind, where, id_field, (item, *part) if part else (item, None, None))))
            else:
                out.append(pickle.dumps((kind, where, id_field, item)))
        return {"item": np.array(out, dtype=object)}

    def _unchanged(self, docs: list[Document], chunks: dict[str, list[Chunk]]) -> set[str]:
        """Ids of `docs` their shard stores exactly as given (none without `shards`: not an upsert)."""
        if not self.shards:
            return set()
        by_shard: dict[int, list[Document]] = {}
        for d in docs:
            by_shard.setdefault(shard_of(d.id, len(self.shards)), []).append(d)
        same: set[str] = set()
        for s, part in by_shard.items():
            same |= self.shards[s].store.unchanged(part, chunks)
        return same


def _read_path(row: dict[str, Any], fields: FieldMap, field_types: dict[str, str]) -> Iterator[dict[str, bytes]]:
    """Ray Data flat_map: every record of one source path, in order, as {"item": pickled (kind, where, id
    field, payload)}: kind "doc" (a checked Document), "error" (its one-line message) or "note" (skipped files)."""
    notes: list[str] = []
    # A file a folder's walk reaches twice (through a link) is read once here, as by read_sources; a file that two
    # source paths reach is passed over by the driver (`_write`), told by the "file" record before each file's:
    # (its identity, the path it is read under, the folder whose walk reads it or None).
    path = Path(row["path"])
    root = str(path) if path.is_dir() else None
    for src, pos, names, item in iter_located(path, fields, notes.append, field_types, FileClaims()):
        for n in notes:
            yield {"item": pickle.dumps(("note", n, "", None))}
        notes.clear()
        if pos is None:  # a file's document (a table's or BEIR corpus's records have their line)
            yield {"item": pickle.dumps(("file", repr(file_identity(src)), str(src), root))}
        kind, payload = ("doc", item) if isinstance(item, Document) else ("error", str(item))
        yield {"item": pickle.dumps((kind, locate(src, pos), names.id_field, payload))}
    for n in notes:
        yield {"item": pickle.dumps(("note", n, "", None))}


def _encoded(paths: list[Path], reference: str, fields: FieldMap, field_types: dict[str, str], workers: int,
             batch_size: int, shards: list[str] | None) -> Iterator[tuple[str, str, str, Any]]:
    """The records of every path in source order, documents with their chunks and vectors (None for a document
    its shard stores as given, when `shards`, the shard collections' paths, are given: an upsert)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    kept = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True  # reports and repeated ids in source order, as single-process
    ctx.enable_progress_bars = False  # slimvec draws its own
    # Absolute: a Ray worker reads in its own working directory (a cluster's, or the one Ray was started in), where a
    # relative path names another folder or none. Document ids do not change: they are relative to a source folder.
    ds = ray.data.from_items([{"path": str(p.absolute())} for p in paths], override_num_blocks=len(paths))
    # Reading takes no CPU slot: the encoder actors hold one each, and a read task must never wait for them.
    ds = ds.flat_map(_read_path, fn_kwargs={"fields": fields, "field_types": field_types}, num_cpus=0)
    # A path's records come out as one block, and a block goes to one actor: cut them into blocks of one
    # encoder batch (a streaming repartition), so every actor gets work from a single big file. Its tasks take
    # a CPU slot: `index` asks for one more than the actors hold (with none free the run stalls).
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    ds = ds.map_batches(ChunkEncoder, fn_constructor_kwargs={"reference": reference, "shards": shards},
                        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                        batch_format="numpy")
    quiet = logging.getLogger("ray.data")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # Ray Data's plan and timing lines: the progress bar says enough
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for raw in batch["item"]:
                yield pickle.loads(raw)
    finally:
        quiet.setLevel(level)
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = kept


def _write(stream: Iterator[tuple[str, str, str, Any]], writer: "_Writer", upsert: bool, commit_docs: int,
           strict: bool, report: Callable[[IngestError], None], note: Callable[[str], None], progress: bool) -> int:
    """Report, de-duplicate and commit the encoded stream; the number of documents written."""
    seen: dict[str, str] = {}  # id -> where it was first read (the duplicate rule of read_sources)
    files: dict[str, tuple[str, str | None]] = {}  # file -> (first path, its folder or None): read_sources' FileClaims
    again: tuple[str, tuple[str, str | None]] | None = None  # (path, files' entry) when the next is a file read already
    with progress_bar("indexing documents", 0, enabled=progress) as advance:
        for kind, where, id_field, payload in stream:
            if kind == "note":
                note(where)
                continue
            if kind == "file":  # where: the file's identity, id_field: the path it is read under, payload: its folder
                again = (id_field, files[where]) if where in files else None
                files.setdefault(where, (id_field, payload))
                continue
            if again is not None:
                first, root = again[1]
                note(same_file_note(Path(again[0]), Path(first), None if root is None else Path(root)))
                again = None
                continue
            if kind == "doc" and payload[0].id in seen:
                doc = payload[0]
                kind, payload = "error", f"{where}: {id_field}: duplicate id {doc.id!r} (first seen at {seen[doc.id]})"
            if kind == "error":
                e = IngestError(payload)
                if strict:
                    raise e
                report(e)
                continue
            doc, chunks, vectors = payload
            seen[doc.id] = where
            writer.put(doc, chunks, vectors, upsert, commit_docs)
            advance(1)
        n = writer.finish(upsert)
    logging.getLogger("slimvec.ingest").info(
        "%d documents written: %d encoded by the encoder actors, %d found stored as given and not encoded by them",
        n, writer.encoded, writer.unchanged)
    return n


class _Writer:
    """One writer per shard, in this process: buffers each shard's documents and commits them `commit_docs` at a
    time with `Collection.add_encoded` (a sharded collection assigns commit ordinals first, as its own writes do).
    A document that came without vectors (its shard stored it as given when an actor looked) is passed as
    `unchanged`: checked again under the shard's writer lock, left as it is, or encoded here if it changed."""

    def __init__(self, root: Path, cols: list[Collection], sharded: Any = None) -> None:
        self.root, self.cols, self.sharded = root, cols, sharded
        self.reference = str(cols[0].path)  # the encoder actors read the model and chunking from here
        self.buffers: list[list[tuple[Document, list[Chunk], np.ndarray | None]]] = [[] for _ in cols]
        self.written = 0
        self.encoded = 0  # documents that came with vectors (encoded by an actor)
        self.unchanged = 0  # documents that came without (stored as given when an actor checked)

    def put(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray | None, upsert: bool,
            commit_docs: int) -> None:
        s = self.sharded.shard_for(doc.id) if self.sharded is not None else 0
        if len(self.buffers[s]) >= commit_docs:
            # flushed before the next document arrives, so each shard's last batch is committed (and its index
            # files saved) by `finish`
            self._flush(s, upsert, save=False)
        self.buffers[s].append((doc, chunks, vectors))

    def finish(self, upsert: bool) -> int:
        for s in range(len(self.cols)):
            self._flush(s, upsert, save=True)
        return self.written

    def _flush(self, s: int, upsert: bool, save: bool) -> None:
        part = self.buffers[s]
        if not part:
            return
        docs = [d for d, _, _ in part]
        chunks = [c for _, cs, _ in part for c in cs]
        same = [d.id for d, _, v in part if v is None]
        dim = int(self.cols[s].manifest["dim"])
        given = [v for _, _, v in part if v is not None]
        vectors = np.concatenate(given) if given else np.zeros((0, dim), np.float32)
        if self.sharded is not None:
            # New ordinals for what is written, as the sharded collection's own writes give them; a document left
            # as stored keeps its rows and so its ordinal (one deleted meanwhile gets one: stored means numbered).
            # One changed meanwhile, encoded by `add_encoded`, keeps its old ordinal: its ties rank it as before.
            have = self.sharded.ordinals.get(same) if same else {}
            self.sharded.ordinals.assign([d.id for d, _, v in part if v is not None or d.id not in have])
        try:
            self.written += self.cols[s].add_encoded(docs, chunks, vectors, replace=upsert, save=save,
                                                     unchanged=same)
        except IngestError as e:
            where = f"shard {s}: " if self.sharded is not None else ""
            raise IngestError(f"{where}{e} ({self.written} documents were committed before)") from None
        self.encoded += len(part) - len(same)
        self.unchanged += len(same)
        part.clear()

    def close(self) -> None:
        if self.sharded is not None:
            self.sharded.close()
        else:
            self.cols[0].close()


def _open_target(path: Path, shards: int | None, create: dict[str, Any]) -> _Writer:
    """The writer for the collection at `path`, created (sharded when `shards` is given) if there is none."""
    from slimvec.distributed.router import ROUTER_FILE, is_sharded
    from slimvec.distributed.sharded import create_sharded, open_sharded, unfinished_create

    if shards is not None and (not isinstance(shards, int) or isinstance(shards, bool) or shards < 1):
        raise ConfigError(f"shards must be a positive integer, got {shards!r}")
    if is_sharded(path):
        sharded = open_sharded(path)
        have = len(sharded.shards)
        if shards is not None and shards != have:
            sharded.close()
            raise ConfigError(f"{path}: collection has {have} shards, not {shards}; the shard count is fixed "
                              "when it is created")
        cols = [s.core.col for s in sharded.shards]
        try:  # another model, profile, index, chunking or prompt is refused, as for a plain collection
            Collection.open_or_create(cols[0].path, **create).close()
        except CollectionError:
            sharded.close()
            raise
        return _checked_target(_Writer(path, cols, sharded))
    exists = (path / "manifest.json").exists()
    if shards is None and not exists and path.is_dir() and unfinished_create(path):
        raise ConfigError(f"{path}: holds a sharded collection whose creation was interrupted (no {ROUTER_FILE}); "
                          f"rerun with --shards N to create it again")
    if exists and shards is not None:
        raise ConfigError(f"{path}: holds an unsharded collection; --shards applies to a new directory only")
    if not exists:
        prof = create.get("profile")
        prof = prof if isinstance(prof, Profile) else load_profile(prof)
        if prof.tokens is not None:  # refused before anything is created
            raise ConfigError(f"profile {prof.name!r} keeps token vectors (multi-vector); distributed ingest "
                              "stores chunk vectors only: index it without --ray")
    if shards is None:
        return _checked_target(_Writer(path, [Collection.open_or_create(path, **create)]))
    sharded = create_sharded(path, shards=shards, **create)
    return _checked_target(_Writer(path, [s.core.col for s in sharded.shards], sharded))


def _checked_target(writer: _Writer) -> _Writer:
    if writer.cols[0].token_config is not None:
        writer.close()
        raise ConfigError(f"{writer.root}: keeps token vectors (a multi-vector profile); distributed ingest "
                          "stores chunk vectors only: index it without --ray")
    return writer


def _log_error(error: IngestError) -> None:
    logging.getLogger("slimvec.ingest").warning("skipped: %s", error)


def _log_note(text: str) -> None:
    logging.getLogger("slimvec.ingest").info("%s", text)
