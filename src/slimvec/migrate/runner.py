"""`slimvec migrate`: fit an adapter, re-embed every document into DIR/migration/target in batches, switch.

Crash safety. Starting writes DIR/migration/ (target collection holding the sample, adapter file) and the record last:
without a record the folder is leftover and is removed by the next start. The fitting sample is whole
documents: their new-model vectors are stored in the target at start (in the same directory, before the
record), so they are scored natively from the start and the re-embedding skips them. Re-embedding copies the
other documents from the old store in rowid (insertion) order, one batch per commit of the target collection,
so a kill loses at most the batch in flight and a rerun continues after the last document it committed:
every document is encoded once, by the start or by the re-embedding. The switch is `store.switch`'s, as a
compaction's: the intent DIR/.switch.json lists the files to move, then the old generation's files are moved
into DIR/migration/old/ and the target's into DIR (manifest.json out first and in last), then DIR/migration is
renamed away and removed. Every step is a rename redone idempotently, and every open of a directory holding
the intent finishes it first.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from slimvec.collection import Collection, stored_document
from slimvec.documents import Chunk, Document
from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import load_encoder
from slimvec.errors import CollectionError, ConfigError
from slimvec.migrate import adapters as _adapters
from slimvec.migrate import line as _line
from slimvec.migrate.state import (
    ADAPTER,
    REFERENCE_FILE,
    TARGET,
    Status,
    has_migration,
    migration_dir,
    read_record,
    running,
    write_record,
)
from slimvec.profiles import recorded_profile
from slimvec.store import Store
from slimvec.store import switch as _switch

MAX_SAMPLE = 5000  # chunk pairs the adapter is fitted on, at most
QUERIES = ("adapter", "old-model")
_F = TypeVar("_F", bound=Callable[..., Any])


def _one_run(fn: _F) -> _F:
    """Run `fn(path, ...)` holding the collection's migration lock (`state.running`): one run at a time."""
    @functools.wraps(fn)
    def wrapped(path: str | Path, *args: Any, **kwargs: Any) -> Any:
        with running(Path(path)):
            return fn(path, *args, **kwargs)
    return wrapped  # type: ignore[return-value]


@_one_run
def start(path: str | Path, to: str, adapter: str = "auto", sample: int = MAX_SAMPLE, seed: int = 0,
          encoder: Encoder | None = None, queries: str = "adapter", references: int = _line.REFERENCES,
          pick: str = _line.Pick.KMEANS.value) -> dict[str, Any]:
    """Fit the adapter new model -> collection `path`'s model and create DIR/migration (status reembedding).

    The fitting sample is whole documents drawn with `seed`: the new model encodes their chunks once, the
    vectors serve as the fitting pairs (with the stored old vectors of the same chunk spans) and are stored in
    the target collection, so those documents are scored natively from the start and never re-encoded.
    to: the new model's registered name or directory; adapter: "auto" (procrustes or procrustes-ridge with the
    ridge of its grid that agrees best with the new model on held-out pairs, adapters.choose) or a name of kind
    "adapter"; sample: chunk pairs (at most 5,000, the default) to fit on: documents are drawn until their
    chunks reach it (they are encoded once either way: the sample's documents are not re-embedded later); encoder: the new model as an Encoder object instead of loading `to`; queries: how search
    scores the documents not yet in the target: "adapter" (the new query mapped into the old space) or
    "old-model" (the query encoded by the old model too: its own ranking of them, one more query encoding);
    references, pick: how many sample pairs search's per-query score line keeps and how they are picked
    (line.pick_references; the depth it matches is line.reference_depth of the count, kept in the record).
    Returns the record ("native_at_start": documents stored at start). Raises ConfigError for an unknown
    adapter, a model equal to the collection's, a sample out of range, or an adapter below the agreement
    threshold (adapters.MIN_RECALL), and CollectionError when a migration is already under way;
    on any error nothing is changed.
    """
    path = Path(path)
    if has_migration(path):
        raise CollectionError(f"{path}: a migration to {read_record(path).get('to')!r} is already under way; "
                              "run `slimvec migrate` again to continue it")
    names = _checked_options(adapter, sample, queries, references)
    if pick not in {p.value for p in _line.Pick}:
        raise ConfigError(f"pick must be one of {', '.join(p.value for p in _line.Pick)}, got {pick!r}")
    # The old generation's writer lock, from before its documents are read until the record is written: a write
    # in between (through a handle opened before, a server's) would be missing from what the migration reads and
    # switches in. Taken after rolling forward an interrupted switch (opening does that, under the same lock), and
    # only over a collection (no lock file is left in a directory that holds none).
    _switch.finish(path)
    with _switch.writer_lock(path) if (path / _switch.MANIFEST).is_file() else nullcontext():
        return _start(path, to, adapter, sample, seed, encoder, queries, references, pick, names)


def _start(path: Path, to: str, adapter: str, sample: int, seed: int, encoder: Encoder | None, queries: str,
           references: int, pick: str, names: list[str]) -> dict[str, Any]:
    """`start` past its argument checks, under the collection's writer lock."""
    mdir = migration_dir(path)
    old = Collection.open(path)
    try:
        if not isinstance(old, Collection) or type(old) is not Collection:
            raise ConfigError(f"{path}: only a plain (unsharded) collection can be migrated")
        if old.routed_by is not None:
            # A shard switched alone holds another model than its siblings: its router then refused to open at all.
            raise ConfigError(f"{path}: is a shard of the sharded collection {old.routed_by}, whose shards share one "
                              "model; a shard cannot be migrated alone (only a plain collection can be migrated)")
        _check_kept_reranker(path, (old.manifest.get("profile") or {}).get("rerank"))  # before a model loads
        new = encoder or load_encoder(to)
        if new.name == old.manifest["model"]:
            raise ConfigError(f"{path}: the collection already uses model {new.name!r}")
        if not int(old.manifest["dim"]) or old.token_config is not None:
            raise ConfigError(f"{path}: migration maps dense vectors; this collection's profile keeps "
                              f"{'token vectors' if int(old.manifest['dim']) else 'no dense vectors'}")
        profile = {**(old.manifest.get("profile") or {}), "model": to, "query_prompt": None, "document_prompt": None}
        if old.manifest.get("fusion_weights_from_model"):
            # The old model's weight for its own ranking (a static model's 0.2), kept in the profile by collections
            # of session 20 (later ones keep it as the manifest's "model_fusion_weight", which the target's own
            # manifest replaces), says nothing of the new model's: the new one sets its own, or none.
            profile["fusion_weights"] = None
        if (profile.get("chunk_tokens") or 0) > new.max_tokens:
            # The old model's chunk length (an import records it) would be refused by a model that reads fewer
            # tokens; the new model cuts at its own maximum, as a new collection on it does. Documents whose
            # spans the new cut lacks are encoded the new way at re-embedding (`_reembed`).
            profile["chunk_tokens"] = None
        documents = len(old)
        shutil.rmtree(mdir, ignore_errors=True)  # a start killed before its record: leftovers only
        mdir.mkdir()
        # Everything below writes inside DIR/migration only, and the record comes last: an error (or a kill)
        # before it leaves a folder without a record, removed here and by the next start.
        target = Collection.create(mdir / TARGET, profile=recorded_profile(profile, old.manifest.get("chunking"),
                                                                          source="migration profile"),
                                   encoder=new)
        try:
            # Retrievers enabled after the collection was made (`index --bm25`) are in its manifest, not its
            # profile: the switched collection keeps them, or its hybrid and BM25 searches would stop working.
            target.enable_kept(old.manifest.get("retrievers", ["dense"]), old.manifest.get("sparse_model"))
            if fields := old.field_indexes():  # made before any document: their triggers fill them as rows arrive
                target.create_field_index(fields)
            x_new, y_old, native = _sample_into(old, target, sample, seed)
            t0 = time.perf_counter()
            fitted, scores = _adapters.choose(x_new, y_old, names, seed)
            fit_s = time.perf_counter() - t0
            held = np.random.default_rng(seed + 1).permutation(len(x_new))[: max(1, len(x_new) // 5)]
            a, b = _adapters.score_map(fitted, x_new, y_old, np.sort(held), old_queries=queries == "old-model")
            fitted.save(mdir / ADAPTER)
            keep = _line.pick_references(x_new, references, pick, seed + 2)
            depth = _line.reference_depth(len(keep))
            with open(mdir / REFERENCE_FILE, "wb") as f:
                np.savez(f, x_new=x_new[keep], y_old=y_old[keep])
        finally:
            target.close()
    except BaseException:
        if not has_migration(path):
            shutil.rmtree(mdir, ignore_errors=True)
        raise
    finally:
        old.close()
    record = {"to": new.name, "from": old.manifest["model"], "adapter": fitted.name, "adapter_file": ADAPTER,
              **({"ridge": fitted.ridge} if isinstance(fitted, _adapters.ProcrustesRidge) else {}),
              "agreement": [s.as_dict() for s in scores], "pairs": int(len(x_new)), "fit_s": round(fit_s, 3),
              "score_map": [a, b], "reference_file": REFERENCE_FILE, "line_depth": depth, "line_pick": _line.Pick(pick).value, "queries": queries, "documents": documents, "native_at_start": native,
              "status": Status.REEMBEDDING.value, "started": time.time()}
    write_record(path, record)  # the commit point of starting
    return record


def _check_kept_reranker(path: Path, spec: str | None) -> None:
    """ConfigError when the collection's profile names a reranker that cannot load on this machine (a cross-encoder
    directory since removed, a model name not registered here): the target keeps the profile."""
    from slimvec.search.rerank import check_loadable

    if spec is not None:
        check_loadable(spec, f"{path}: the collection's profile",
                       "make that reranker available here again (this collection's own searches need it too; "
                       "`--rerank none` searches without it), then run the migration again",
                       kept_by="a migration keeps")


def _checked_options(adapter: str, sample: int, queries: str, references: int) -> list[str]:
    """The adapter names `adapter` stands for; ConfigError naming the first option out of range."""
    names = list(_adapters_named(adapter))
    if queries not in QUERIES:
        raise ConfigError(f"queries must be one of {', '.join(QUERIES)}, got {queries!r}")
    if not 20 <= sample <= MAX_SAMPLE:
        raise ConfigError(f"--sample must be between 20 and {MAX_SAMPLE} chunk pairs, got {sample}")
    if not 1 <= references <= MAX_SAMPLE:
        raise ConfigError(f"references must be between 1 and {MAX_SAMPLE} sample pairs, got {references}")
    return names


def _adapters_named(adapter: str) -> list[str]:
    from slimvec import registry

    if adapter == "auto":
        return list(_adapters.AUTO)
    registry.target("adapter", adapter)  # ConfigError naming the choices
    return [adapter]


def _sample_into(old: Collection, target: Collection, sample: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw documents at random (`seed`) until their stored chunks reach `sample`, encode them once with the
    target's (new) model, store them in `target` (one commit) and return (x_new, y_old, documents stored):
    float32 (n, d_new) and (n, d_old) pairs of the same chunk spans, n <= sample. Chunking counts tokens of each
    model's tokenizer (and up to each model's maximum), so a long document may be cut differently: a stored chunk
    whose span the new cut lacks is encoded once more by the new model the target's way (late chunking included),
    for its pair only."""
    store = old.store
    docs: list[Document] = []
    spans: list[list[tuple[int, int, int]]] = []
    drawn = 0
    for doc_id in _shuffled_ids(store, seed):
        rowid = store.rowid_of(doc_id)
        rows = store.documents_from(rowid - 1, 1) if rowid is not None else []
        own = store.chunks_of(doc_id)
        if not rows or not own:
            continue
        docs.append(stored_document(rows[0]))
        spans.append(own)
        drawn += len(own)
        if drawn >= sample:
            break
    if drawn < 20:
        raise ConfigError(f"{old.path}: {drawn} chunks stored; an adapter needs at least 20 to be fitted")
    chunks, vectors = target.chunk_and_encode(docs)
    at = {(c.doc_id, c.start, c.end): i for i, c in enumerate(chunks)}
    rows_old, x_rows = [], []
    missing_docs: list[Document] = []
    missing: list[list[Chunk]] = []
    for doc, own in zip(docs, spans):
        lost = []
        for j, (r, s, e) in enumerate(own):
            rows_old.append(r)
            x_rows.append(at.get((doc.id, s, e), -1))
            if x_rows[-1] < 0:
                lost.append(Chunk(doc.id, j, s, e, doc.text[s:e]))
        if lost:
            missing_docs.append(doc)
            missing.append(lost)
    x_new = np.zeros((len(rows_old), vectors.shape[1]), np.float32)
    have = np.asarray(x_rows) >= 0
    x_new[have] = vectors[np.asarray(x_rows)[have]]
    if missing:
        # Encoded as the target encodes its own chunks (alone, with the prefix, or pooled late from the
        # document's pass), so every pair holds the kind of vector the target will store.
        _, x_new[~have] = target.chunk_and_encode(missing_docs, {d.id: lost for d, lost in zip(missing_docs, missing)})
    y_old = np.asarray(store.vectors()[np.asarray(rows_old)], dtype=np.float32)
    target.add_encoded(docs, chunks, vectors)  # one commit; the record, written after, makes it count
    return x_new[:sample], y_old[:sample], len(docs)


def _shuffled_ids(store: Store, seed: int) -> list[str]:
    ids = [d["id"] for d in store.iter_documents()]
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


@_one_run
def reembed(path: str | Path, batch: int = 64, encoder: Encoder | None = None,
            on_batch: Callable[[int, int], None] | None = None, switch_when_done: bool = True) -> dict[str, Any]:
    """Re-embed the documents of `path` not yet in the target, `batch` per commit, then switch (see module doc).

    encoder: the new model as an Encoder object (its name must be the record's); on_batch(done, total) is
    called after each commit. Returns {"reembedded": documents encoded by this call, "documents": total,
    "switched": bool}. Raises CollectionError when no migration is under way.
    """
    path = Path(path)
    record = read_record(path)
    if record["status"] == Status.SWITCHING.value:
        switch(path)
        return {"reembedded": 0, "documents": record["documents"], "switched": True}
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    old = Store.open(path)
    target = Collection.open(migration_dir(path) / TARGET, encoder=encoder)
    encoded = 0
    try:
        total = old.counts()["documents"]
        # The target holds the sample (stored at start) and then a prefix, in rowid order, of the other
        # documents: the re-embedding continues after the last one it committed, skipping sample documents.
        after = 0
        if target.store.counts()["documents"] > int(record.get("native_at_start", 0)):
            last = target.store.last_document_id()
            after = old.rowid_of(last) if last is not None else 0
            if after is None:
                raise CollectionError(f"{path}: target holds {last!r}, which the collection does not: the "
                                      "collection was written during the migration")
        while True:
            rows = old.documents_from(after, batch)
            if not rows:
                break
            after = rows[-1]["rowid"]
            have = target.store.existing_ids([r["id"] for r in rows])
            fresh = [stored_document(r) for r in rows if r["id"] not in have]
            if not fresh:
                continue
            target.add(fresh)  # one commit: a kill loses at most this batch
            encoded += len(fresh)
            if on_batch is not None:
                on_batch(target.store.counts()["documents"], total)
        target.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        target.close()
        old.close()
    if switch_when_done:
        switch(path)
    return {"reembedded": encoded, "documents": total, "switched": switch_when_done}


@_one_run
def switch(path: str | Path) -> None:
    """Replace the collection's files by the target's (`store.switch`: roll forward after a crash).

    Raises CollectionError when the target does not hold every document of the collection yet, or while
    another handle on the collection is open (nothing changed: rerun once it is closed)."""
    path = Path(path)
    mdir = migration_dir(path)
    record = read_record(path)
    if record["status"] == Status.SWITCHING.value:
        finish_interrupted(path)
        return
    with _switch.writer_lock(path):  # no writer of the old generation runs during the switch
        _check_complete(path)
        _switch.switch(path, mdir, mdir / TARGET,
                       busy=f"{path}: every document is re-embedded, but the collection is still open elsewhere "
                            f"(a server, another process or handle); close it, then rerun "
                            f"`slimvec migrate {path} --to {record['to']}` to switch")


def _legacy_intent(path: Path, record: dict[str, Any]) -> None:
    from slimvec.atomic import write_json_atomic

    write_json_atomic(path / _switch.INTENT, {"stage": migration_dir(path).name, "staged": TARGET,
                                              "move_in": record["move_in"], "move_out": record["move_out"]})


def _check_complete(path: Path) -> None:
    old = Store.open(path)
    target = Store.open(migration_dir(path) / TARGET)
    try:
        total, done = old.counts()["documents"], target.counts()["documents"]
    finally:
        old.close()
        target.close()
    if done != total:
        raise CollectionError(f"{path}: {done} of {total} documents are re-embedded; the switch needs all")


def finish_interrupted(path: Path) -> None:
    """Roll an interrupted switch forward (called by Collection.open through the "migrating" layout)."""
    if has_migration(path) and read_record(path)["status"] == Status.SWITCHING.value:
        _legacy_intent(path, read_record(path))  # a switch begun by slimvec before store.switch existed
    _switch.finish(path)


@_one_run
def migrate(path: str | Path, to: str, adapter: str = "auto", sample: int = MAX_SAMPLE, batch: int = 64,
            fit_only: bool = False, encoder: Encoder | None = None,
            on_batch: Callable[[int, int], None] | None = None, queries: str = "adapter",
            references: int = _line.REFERENCES) -> dict[str, Any]:
    """Start (fit) a migration of `path` to model `to` unless one is under way, then re-embed and switch
    (unless fit_only); queries, references: as `start`'s. Rerunning continues where a killed run stopped. Returns {"record": ..., "reembedded",
    "documents", "switched"}. Raises ConfigError when a migration to another model is under way."""
    path = Path(path)
    # Every option is checked before anything is fitted or stored (a bad --batch was refused only after `start`
    # had fitted and stored the migration), and on a rerun too, where the under-way migration keeps its own.
    _checked_options(adapter, sample, queries, references)
    if batch < 1 and not fit_only:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if has_migration(path):
        record = read_record(path)
        if record["status"] != Status.SWITCHING.value:
            encoder = encoder or load_encoder(to)
        if encoder is not None and encoder.name != record["to"]:
            raise ConfigError(f"{path}: a migration to {record['to']!r} is under way, not to {to!r}; "
                              f"finish it with `slimvec migrate {path} --to {record['to']}`")
    else:
        encoder = encoder or load_encoder(to)
        record = start(path, to, adapter, sample, encoder=encoder, queries=queries, references=references)
    if fit_only:
        return {"record": record, "reembedded": 0, "documents": record["documents"], "switched": False}
    return {"record": record, **reembed(path, batch, encoder=encoder, on_batch=on_batch)}

