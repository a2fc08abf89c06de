"""The public facade: create or open a collection, add, upsert, delete, search, info."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimvec import compaction, registry
from slimvec.chunking import ChunkConfig, chunk_document
from slimvec.codecs.base import codec_for_dim
from slimvec.contextual import chunk_texts
from slimvec.documents import Chunk, Document, Hit, Section, blank_section_problem, has_content
from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder
from slimvec.errors import CollectionError, ConfigError, IngestError, StoredIdError
from slimvec.ids import id_problem, lone_surrogate
from slimvec.late import default_config as default_late_config
from slimvec.late import late_chunk_vectors, section_default
from slimvec.late import query_pooling as late_query_pooling
from slimvec.multivector.retriever import TOKENS_DIR, keeps_tokens
from slimvec.multivector.writer import TokenConfig, append_tokens, check_encoder, encode_chunks
from slimvec.profiles import Profile, load_profile, profile_from_dict, recorded_profile
from slimvec.progress import progress_bar
from slimvec.records import metadata_problem, plain_metadata, query_problem, text_problem
from slimvec.retrievers.base import Query, Retriever, describe
from slimvec.search import calibration as _calibration
from slimvec.search.options import SearchOptions
from slimvec.search.plan import (
    FUSED_MODES,
    SearchPlan,
    make_plan,
    model_fusion_weights,
    modes,
    refuse_unused_vectors,
    stored_fusion,
)
from slimvec.search.recent import KeepsQueries, RecentQueries
from slimvec.search.rerank import Reranker, check_spec, pinned_spec
from slimvec.search.run import Runner
from slimvec.sections import section_chunks
from slimvec.store import Store, probes, switch
from slimvec.store.compact import live_rows
from slimvec.store.rowmap import RowMap

INDEX_KINDS = ("exact", "hnsw", "ivf")
_BATCH_DOCS = 512  # documents per commit when adding from an iterator
FILTER_MASK_BYTES = 32 << 20  # filter masks kept per handle (`_allowed`): 32 at 1M rows, at least one


class Collection(KeepsQueries):
    """A persistent, searchable set of documents in one directory."""

    def __init__(self, store: Store, encoder: Encoder | None = None) -> None:
        self.store = store
        self.path = store.path
        self._encoder = encoder
        self._lock = threading.RLock()
        # Taken by every write before `_lock`: a compaction holds it (and the writer lock) while it writes the
        # new generation, so searches through this handle, which take `_lock` only, go on meanwhile.
        self._write_lock = threading.RLock()
        self._retrievers: dict[str, Retriever] = {}
        self._rows = RowMap()  # row -> document number, kept in step with the store
        self._runner = Runner(store)
        self._generation = -1
        try:
            self._calibrators = _calibration.load_calibrators(self.path)
        except CollectionError:
            store.close()  # else its reader lock stays held until garbage collection, refusing compactions
            raise
        self._plans: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any], SearchPlan]] = {}  # see _plan
        self._filter_masks: OrderedDict[str, tuple[tuple[Any, ...], np.ndarray]] = OrderedDict()  # see _allowed
        # A filter that matches nothing because of a type or a field no document has raises FilterError; a shard
        # turns this off (its router explains over every shard: a field may live in other shards only).
        self.explain_empty_filters = True
        self._recent = RecentQueries()  # query vectors kept to tune on (keep_queries), none by default
        # The sharded collection whose shard this is, when `open` found it under DIR/shards/ (its router clears it):
        # a document written here directly is in a shard its router may not route it to (`_refuse_shard_write`).
        self.routed_by: Path | None = None
        if encoder is not None:
            try:
                self._encoder = encoder = self._wrap(encoder)
                self._check_encoder(encoder)
            except BaseException:  # another model: the lock let go now, as for a damaged calibration above
                store.close()
                raise

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        model: str | None = None,
        index: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        chunk_mode: str | None = None,
        profile: str | Profile | dict[str, Any] | None = None,
        retrievers: list[str] | None = None,
        encoder: Encoder | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ) -> "Collection":
        """Create an empty collection at `path`; explicit options override the profile's (default exact-f32).

        model: a registered name (`slimvec.registry`, kind "encoder") or a local sentence-transformers directory;
        chunk_tokens: tokens of the model per chunk (at most its maximum); chunk_mode: tokens | truncate | whole |
        late; profile: a built-in name, a Profile or a dict of its fields; encoder: an Encoder object used instead of loading `model`;
        query_prompt / document_prompt: text put before each query / chunk (default: the prompts the model's
        config_sentence_transformers.json declares); the prompts used are recorded in the manifest.
        Raises ConfigError for an unknown index, retriever, profile, model or reranker (a reranker's model directory
        that does not exist), a profile setting the collection would never read (`Profile.unused_options`, judged
        with these options applied; one the profile as given reads and an option here makes moot, e.g. hnsw-f32's
        target_recall with index "exact", hybrid's mode or multivector's token codec with retrievers ["dense"], is put
        back to its default instead), or chunks longer than the model takes; CollectionError when `path` already holds a collection or is a non-empty directory.
        """
        prof = (profile if isinstance(profile, Profile) else
                profile_from_dict(profile) if isinstance(profile, dict) else load_profile(profile))
        if isinstance(retrievers, (str, bytes)):  # tuple("dense") would be five retrievers "d", "e", ...
            raise ConfigError(f"retrievers must be a list of names, e.g. ['dense', 'bm25'], not one string "
                              f"{retrievers!r}")
        overrides = {k: v for k, v in {"model": model, "index": index, "chunk_tokens": chunk_tokens,
                                       "chunk_overlap": chunk_overlap, "chunk_mode": chunk_mode,
                                       "query_prompt": query_prompt, "document_prompt": document_prompt,
                                       # [] is refused by the profile ("at least one"), not taken as "not given"
                                       "retrievers": tuple(retrievers) if retrievers is not None else None,
                                       }.items() if v is not None}
        given = {field for field, _ in prof.unused_options()}
        kept = list(overrides.get("retrievers", prof.retrievers))
        # What needs a retriever the option leaves out is moot, as the settings below, so back to its default, not
        # refused naming a setting the caller never wrote: the profile's search mode (hybrid's "hybrid") and its
        # weights (search then runs the first retriever kept), and token vectors only MaxSim reads
        if prof.mode not in [*modes(kept), "dense"]:
            overrides |= {"mode": Profile.model_fields["mode"].default, "fusion_weights": None}
        if prof.tokens is not None and prof.muvera is None and "multivector" not in kept:
            overrides |= {"tokens": None}
        if overrides:
            prof = profile_from_dict({**prof.model_dump(), **overrides}, source="options")
        if prof.index not in INDEX_KINDS:
            raise ConfigError(f"unknown index {prof.index!r}: choose one of {', '.join(INDEX_KINDS)}")
        unused = prof.unused_options()
        if moot := [field for field, _ in unused if field not in given]:
            # read by the profile as given, made moot by an option here (`--index exact` on hnsw-f32, whose
            # target_recall calibrates efSearch): the option was asked for, so the setting goes back to its default
            prof = profile_from_dict({**prof.model_dump(), **{f: Profile.model_fields[f].default for f in moot}},
                                     source="options")
        if unused := [line for field, line in unused if field in given]:
            # a setting the profile as given never reads (nor the options make it read): a typo that would build
            # as if unwritten
            raise ConfigError(f"profile {prof.name!r}: {unused[0]}")
        _retriever_names(list(prof.retrievers))  # unknown names fail here, before anything is written
        if prof.rerank is not None:  # a reranker that cannot load would fail every search of the collection
            try:
                check_spec(prof.rerank)  # names and directories only: no model is loaded
            except ConfigError as e:
                raise ConfigError(f"rerank: {e}") from None
            if (pinned := pinned_spec(prof.rerank)) != prof.rerank:
                prof = prof.model_copy(update={"rerank": pinned})
        enc = encoder or load_encoder(prof.model or DEFAULT_MODEL)
        model_weight = getattr(enc, "fusion_weight", None)
        if prof.fusion_weights is not None and list(prof.fusion_weights) == model_fusion_weights(
                prof.fusion, FUSED_MODES.get(prof.mode, ()), model_weight):
            # The model's own weights written out into a profile (an export of a collection made when they were
            # recorded there): the manifest's model weight gives them, and a migration replaces it.
            prof = prof.model_copy(update={"fusion_weights": None})
        asked = {"query_prompt": prof.query_prompt, "document_prompt": prof.document_prompt}
        if any(v is not None for v in asked.values()):
            if hasattr(enc, "with_prompts"):
                enc = enc.with_prompts(prof.query_prompt, prof.document_prompt)
            # A model without prompts records its own (empty) ones in the manifest; an import asks for those back.
            elif any(v is not None and v != getattr(enc, k, "") for k, v in asked.items()):
                raise ConfigError(f"model {enc.name!r} takes no prompts (query_prompt / document_prompt)")
        limit = enc.max_tokens
        tokens = prof.chunk_tokens or limit
        if tokens > limit:
            raise ConfigError(f"chunk tokens {tokens} exceed the model's maximum of {limit}")
        if chunk_overlap is not None and chunk_overlap >= tokens // 2:  # a given overlap is not cut down silently
            raise ConfigError(f"chunk overlap {chunk_overlap} must be below half of the {tokens} chunk tokens")
        chunking = ChunkConfig(max_tokens=tokens, overlap=min(prof.chunk_overlap, tokens // 2 - 1), mode=prof.chunk_mode)
        if prof.chunk_mode == "late" and not all(hasattr(enc, a) for a in ("tokenize", "token_embeddings", "max_positions")):
            raise ConfigError(f"chunk mode 'late' needs a transformer model with token embeddings; {enc.name!r} has none")
        dim = int(enc.dim)
        if prof.tokens is not None:
            check_encoder(enc)
            # A token codec is fitted at the first commit of tokens: one that cannot code them failed every add
            # with a bare ValueError, the collection already made.
            codec_for_dim(prof.tokens, int(enc.dim), what="token codec (tokens)")
            if prof.muvera is not None:
                if prof.chunk_mode == "late":
                    raise ConfigError("muvera vectors are encodings of the chunk's tokens; chunk mode 'late' gives none")
                dim = TokenConfig.of(prof.model_dump(), dim).muvera.fde_dim  # type: ignore[union-attr]
        if prof.dense:
            codec_for_dim(prof.codec, dim)  # pq:7x8 on 384 dims would fail at every fit and leave search exact
        manifest = {
            "model": enc.name,
            "kind": enc.kind,
            "dim": dim if prof.dense else 0,
            "token_dim": int(enc.dim),
            **_prompts(enc),
            "index": prof.index,
            "retrievers": list(prof.retrievers),
            "profile": prof.model_dump(mode="json"),
            # A static model's weight for its dense ranking in softmax fusion with BM25: the planner applies it to
            # any such fusion whose search and profile set no weights (`search.plan.model_fusion_weights`).
            **({"model_fusion_weight": float(model_weight)} if model_weight is not None else {}),
            "chunking": {"max_tokens": chunking.max_tokens, "overlap": chunking.overlap, "mode": chunking.mode},
        }
        if prof.bm25:
            manifest["bm25"] = prof.bm25
        if prof.chunk_mode == "late":  # the model's measured default for given sections, kept for good
            sec = section_default(enc.name)
            manifest["late_sections"] = {"window": sec.window, "overlap": sec.overlap, "late_weight": sec.late_weight}
            for kind in (False, True):  # a setting no document could be encoded with: refused now, not at each add
                default_late_config(kind, manifest["late_sections"]).with_profile(
                    prof.late_window, prof.late_overlap, prof.late_weight)
        pooled = late_query_pooling(prof.chunk_mode, prof.late_weight, getattr(enc, "pooling", None))
        if pooled is not None and hasattr(enc, "with_query_pooling"):
            manifest["query_pooling"] = pooled  # queries pooled as the late chunk vectors are (late.query_pooling)
        store = Store.create(Path(path), manifest)
        return cls(store, enc)

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None) -> "Collection":
        """Open an existing collection; its model loads on first use.

        Raises CollectionError when `path` holds no slimvec collection or one of an unknown format version.
        A sharded collection (router manifest shards.json) opens as a `slimvec.distributed.ShardedCollection`;
        one being migrated to another model (DIR/migration/) as a `slimvec.migrate.MigratingCollection`, and one
        whose switch to the new model was interrupted is first rolled forward.
        """
        switch.finish(Path(path))  # a compaction or migration switch interrupted by a crash: rolled forward first
        if (Path(path) / "shards.json").is_file():  # same API over shard collections (slimvec.distributed)
            return registry.load("layout", "sharded")(Path(path), encoder)  # type: ignore[no-any-return]
        if (Path(path) / switch.MIGRATION / switch.MIGRATION_RECORD).is_file():  # `slimvec migrate` under way
            return registry.load("layout", "migrating")(Path(path), encoder)  # type: ignore[no-any-return]
        col = cls(Store.open(Path(path)), encoder)
        col.routed_by = _router_of(Path(path))
        return col

    @classmethod
    def open_or_create(cls, path: str | Path, model: str | None = None, **options: Any) -> "Collection":
        """Open `path` if it holds a collection, else create it. Raises CollectionError when an existing
        collection was made with another model, profile, index, chunking or prompt than one given here."""
        p = Path(path)
        if isinstance(options.get("profile"), dict):  # as create takes it; compared by its fields below
            options["profile"] = profile_from_dict(options["profile"])
        if (p / "shards.json").is_file():  # not "holds no collection": it holds one, of another layout
            raise CollectionError(f"{p}: holds a sharded collection; index into it with `slimvec index ... -c {p} "
                                  "--ray` (distributed ingest), or add through Collection.open in Python")
        if not (p / "manifest.json").exists():
            with _creating(p):  # two processes creating one collection at once: the second opens it
                if not (p / "manifest.json").exists():
                    return cls.create(p, model=model, **options)
        col = cls.open(p)
        if model is not None:
            col._check_encoder(col._wrap(load_encoder(model)))
        problem = _settings_differ(col.manifest, options)
        if problem:
            col.close()
            raise CollectionError(f"{p}: collection was built with {problem}; a collection keeps the settings "
                                  "it was created with (index into a new collection to change them)")
        kept = col.manifest.get("prompts", {})
        for side in ("query", "document"):
            given = options.get(f"{side}_prompt")
            if given is not None and given != kept.get(side, ""):
                col.close()
                raise CollectionError(f"{p}: collection was built with {side} prompt {kept.get(side, '')!r}, "
                                      f"not {given!r}; a collection keeps one prompt per side")
        return col

    def close(self) -> None:
        """Release the database connection."""
        self.store.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- properties ------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """The collection's configuration (model, dim, profile, chunking, retrievers), as in manifest.json."""
        return self.store.manifest

    @property
    def encoder(self) -> Encoder:
        """The collection's model, loaded on first use (wrapped in MUVERA when the profile asks for FDEs)."""
        if self._encoder is None:
            enc = load_encoder(self.manifest["model"])
            if "prompts" in self.manifest and hasattr(enc, "with_prompts"):  # the prompts it was built with
                enc = enc.with_prompts(self.manifest["prompts"]["query"], self.manifest["prompts"]["document"])
            enc = self._wrap(enc)
            self._check_encoder(enc)
            self._encoder = enc
        return self._encoder

    @property
    def token_config(self) -> TokenConfig | None:
        """The token-file settings of a multi-vector collection (None when it keeps no token vectors)."""
        return TokenConfig.of(self.manifest.get("profile") or {}, int(self.manifest.get("token_dim", 0)))

    def _wrap(self, enc: Encoder) -> Encoder:
        # Queries pooled as the manifest records (late.query_pooling), else as the model pools: a given encoder
        # taken from a late collection (token-mean queries) must not carry its pooling into another collection.
        pooled = self.manifest.get("query_pooling") or getattr(enc, "pooling", None)
        if pooled and getattr(enc, "query_pooling", pooled) != pooled:
            enc = enc.with_query_pooling(pooled)  # type: ignore[attr-defined]
        cfg = self.token_config
        if cfg is None or cfg.muvera is None or hasattr(enc, "cfg"):
            return enc
        from slimvec.multivector.muvera import MuveraEncoder

        return MuveraEncoder(enc, cfg.muvera)  # type: ignore[return-value]

    @property
    def chunking(self) -> ChunkConfig:
        """How documents are cut into chunks (tokens of the collection's model, overlap, mode)."""
        return ChunkConfig(**self.manifest["chunking"])

    def _check_encoder(self, enc: Encoder) -> None:
        m = self.manifest
        if enc.name != m["model"]:
            raise CollectionError(
                f"{self.path}: collection was built with model {m['model']!r}, not {enc.name!r}; "
                f"models cannot be mixed in one collection; to move it to {enc.name!r}, run "
                f"`slimvec migrate {self.path} --to {enc.name}`"
            )
        if int(m["dim"]) and int(enc.dim) != int(m["dim"]):
            raise CollectionError(f"{self.path}: model gives {enc.dim}-d vectors, collection holds {m['dim']}-d")

    # ---- writing ---------------------------------------------------------------------------
    def add(self, docs: Iterable[Document], progress: bool = False) -> int:
        """Add new documents; returns how many were stored.

        A list (or tuple) is one all-or-nothing call: it is checked whole (types, metadata, repeated ids, ids
        already stored, non-finite vectors) before anything is written, then committed in one transaction.
        An iterator is taken in batches of 512 documents, each all-or-nothing; an error in a later batch says
        how many documents the earlier batches committed. Raises TypeError for a bare Document or string,
        IngestError naming the document (id and position) otherwise.
        """
        return self._write(docs, replace=False, progress=progress)

    def upsert(self, docs: Iterable[Document], progress: bool = False) -> int:
        """Add documents, replacing any stored document (and its chunks) with the same id; as `add` otherwise.

        An id repeated within one call keeps its last version. A document stored exactly as given (same title,
        text, metadata and chunks; metadata is the same when it is the same JSON value with its objects' keys in
        any order, while 1, 1.0, True and "1" differ, as `get` returns them) is left as it is: not encoded again and no rows left dead, so re-running
        `slimvec index` over a folder re-encodes only the files that changed. Returns how many documents of the
        call are stored, unchanged ones included.
        """
        return self._write(docs, replace=True, progress=progress)

    def _write(self, docs: Iterable[Document], replace: bool, progress: bool) -> int:
        n = self._write_all(docs, replace, progress)
        if replace:  # an upsert leaves the rows of the versions it replaced dead
            self._compact_if_due()
        return n

    def _refuse_shard_write(self) -> None:
        """A shard opened on its own takes no new documents or indexes: its router routes each id to one shard
        (get, delete and later adds look only there) and numbers it for ties, so a document written here could
        be found by search but never fetched or deleted, and the same id added through the router would be a
        second document. Compaction, tuning, deletes and searches of the shard alone stay allowed."""
        if self.routed_by is not None:
            raise CollectionError(f"{self.path}: is a shard of the sharded collection {self.routed_by}; add, upsert "
                                  f"and enable through it (Collection.open({str(self.routed_by)!r}), or `slimvec "
                                  f"index ... -c {self.routed_by}`), which routes each document to the shard that "
                                  "owns it")

    def _write_all(self, docs: Iterable[Document], replace: bool, progress: bool) -> int:
        self._refuse_shard_write()
        if isinstance(docs, (str, bytes, Document)) or not isinstance(docs, Iterable):
            raise TypeError(f"docs must be a list or iterable of slimvec.Document, not {type(docs).__name__}")
        if isinstance(docs, (list, tuple)):
            with progress_bar("indexing documents", len(docs), enabled=progress) as advance:
                return self._write_call(list(docs), replace, advance, offset=0, committed=0)
        total, seen, offset = 0, {}, 0
        try:
            with progress_bar("indexing documents", 0, enabled=progress) as advance:
                for batch in _batches(docs, _BATCH_DOCS):
                    if not replace:  # a repeat across batches is the same fault as within one
                        for i, d in enumerate(batch, start=offset):
                            first = seen.setdefault(getattr(d, "id", None), i)
                            if first != i:
                                raise IngestError(f"id {d.id!r} appears twice in this call (positions {first} and "
                                                  f"{i}); {total} documents (positions 0-{offset - 1}) were committed "
                                                  f"before the batch that holds position {i}, nothing after")
                    total += self._write_call(batch, replace, advance, offset, total, save=False)
                    offset += len(batch)
        finally:
            # A bulk load saves the derived index files once (they are derived: a reader opened meanwhile, or
            # this process after a crash, catches up from the committed rows).
            if total:
                with self._writing():
                    self._sync()
                    self._save_after_commit()
        return total

    def _write_call(self, docs: list[Document], replace: bool, advance: Any, offset: int, committed: int,
                    save: bool = True) -> int:
        """Check, encode and commit `docs` as one transaction (positions in errors count from `offset`); with
        `save`, the derived index files are saved after the commit."""
        try:
            docs = _validated(docs, replace, offset, refuse_blank_sections=True)
            if not docs:
                return 0
            if not replace:
                # Under `_lock`, as every read of `self.store` outside the writer lock: a compaction through another
                # thread closes the store and opens a new one under it ("Cannot operate on a closed database").
                with self._lock:
                    self._refuse_stored(docs, offset)
            enc = self.encoder
            chunks = self._chunk(docs, enc)
            tokens = self.token_config
            # An upsert of a document stored as it is would encode it again and leave its old rows dead: re-running
            # `slimvec index` over a folder then re-encodes only what changed (checked again under the lock).
            with self._lock:
                same = self.store.unchanged(docs, chunks) if replace else set()
            todo = [d for d in docs if d.id not in same]
            advance(len(docs) - len(todo))
            vectors, toks, counts = self._encode(todo, chunks, enc, tokens, advance)
            with self._writing():
                if not replace:
                    self._refuse_stored(docs, offset)  # again under the lock: another writer may have added it
                changed = same - self.store.unchanged([d for d in docs if d.id in same], chunks) if same else set()
                if changed:  # another writer changed it meanwhile: this call's version must win, so it is written
                    late = [d for d in docs if d.id in changed]
                    more = self._encode(late, chunks, enc, tokens, lambda _n: None)
                    todo, vectors = todo + late, np.concatenate([vectors, more[0]])
                    toks, counts = toks + more[1], counts + more[2]
                if not todo:
                    return len(docs)
                flat = [c for d in todo for c in chunks[d.id]]
                # before the commit point: a crash leaves token rows the next writer cuts; a MUVERA profile without
                # MaxSim wrote a token file, often larger than the rest of the collection, that nothing read
                if tokens is not None and keeps_tokens(self.manifest):
                    append_tokens(self.path / TOKENS_DIR, self.store.committed_rows, toks, counts, tokens,
                                  int(self.manifest["token_dim"]))
                self.store.commit(todo, flat, vectors, replace=replace)
                self._sync()
                if save:
                    self._save_after_commit()
        except IngestError as e:
            if committed:
                raise IngestError(f"{e} ({committed} documents of this call were committed before)") from None
            raise
        return len(docs)

    def _encode(self, docs: list[Document], chunks: dict[str, list[Chunk]], enc: Encoder, tokens: TokenConfig | None,
                advance: Any) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """(len(chunks of docs), dim) float32 chunk vectors, with token vectors and counts when `tokens` is set;
        encoded in slices of _BATCH_DOCS documents so the progress bar moves; non-finite vectors refused."""
        dim = int(self.manifest["dim"])
        parts, toks, counts = [], [], []
        for s in range(0, len(docs), _BATCH_DOCS):
            part = docs[s : s + _BATCH_DOCS]
            if not dim and tokens is None:  # no dense vectors kept (BM25 or sparse only): the model is not run
                vecs, t, c = np.zeros((sum(len(chunks[d.id]) for d in part), 0), np.float32), [], []
            else:
                vecs, t, c = self._embed(part, chunks, enc, tokens)
                if not dim:  # token vectors only: the pass's dense output is not kept
                    vecs = np.zeros((len(vecs), 0), np.float32)
            _check_finite(np.asarray(vecs), [d for d in part for _ in chunks[d.id]])
            parts.append(np.asarray(vecs, dtype=np.float32))
            toks += t
            counts += c
            advance(len(part))
        return (np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)), toks, counts

    def unchanged(self, docs: list[Document]) -> set[str]:
        """Ids among `docs` stored exactly as given (`Store.unchanged`), which `upsert` would leave as they are; cut
        with the collection's model's tokenizer (loads the model), nothing encoded or written. Read without the
        writer lock: another writer may change the answer before the caller acts on it."""
        docs = _validated(list(docs), replace=True)
        if not docs:
            return set()
        chunks = self._chunk(docs, self.encoder)
        with self._lock:  # a compaction through another thread replaces the store under it
            return self.store.unchanged(docs, chunks)

    def chunk(self, docs: list[Document]) -> dict[str, list[Chunk]]:
        """The chunks `add` would store for `docs` (ids distinct), by document id, each list in chunk order; cut
        with the collection's model's tokenizer (loads the model), nothing encoded or written. With
        `Store.unchanged` it tells which documents an upsert would leave as they are (see
        `slimvec.distributed.ingest`). Raises ConfigError for a collection keeping token vectors, IngestError for
        a repeated id."""
        docs = self._encodable(docs)
        return self._chunk(docs, self.encoder)

    def _encodable(self, docs: Iterable[Document]) -> list[Document]:
        """`docs` as a list, refused as `chunk` and `chunk_and_encode` document."""
        if self.token_config is not None:
            raise ConfigError(f"{self.path}: keeps token vectors; documents must be added (and encoded) with add")
        if isinstance(docs, (str, bytes, Document)) or not isinstance(docs, Iterable):
            raise TypeError(f"docs must be a list or iterable of slimvec.Document, not {type(docs).__name__}")
        # add's checks (types, ids, empty or non-Unicode text, metadata, repeats): a document add would refuse is
        # refused here too, in one line naming it, not cut into an empty chunk or passed to the tokenizer
        return _validated(list(docs), replace=False)

    def chunk_and_encode(self, docs: list[Document], chunks: dict[str, list[Chunk]] | None = None
                         ) -> tuple[list[Chunk], np.ndarray]:
        """The chunks and chunk vectors `add` would store for `docs` (ids distinct), computed without writing:
        chunks in document-then-chunk order, vectors float32 (len(chunks), dim). For encoding in other processes
        (`slimvec.distributed.ingest`), then `add_encoded`. chunks: the documents' chunks when already cut
        (`chunk`, by id; may hold other documents too), else they are cut here. Raises ConfigError for a
        collection keeping token vectors (multi-vector profiles), IngestError for a repeated id."""
        docs = self._encodable(docs)
        if chunks is None:
            chunks = self._chunk(docs, self.encoder)
        cut = next((d.id for d in docs if d.id not in chunks), None)
        if cut is not None:
            raise IngestError(f"chunk_and_encode: the chunks given hold none for document {cut!r}")
        flat = [c for d in docs for c in chunks[d.id]]
        dim = int(self.manifest["dim"])
        if not docs or not dim:  # nothing to encode (with no documents, no model loaded)
            return flat, np.zeros((len(flat), dim), np.float32)
        vecs, _, _ = self._embed(docs, chunks, self.encoder, None)
        return flat, np.asarray(vecs, dtype=np.float32)

    def add_encoded(self, docs: list[Document], chunks: list[Chunk], vectors: np.ndarray, replace: bool = False,
                    save: bool = True, normalize: bool = False, unchanged: Iterable[str] = ()) -> int:
        """Add documents with their chunks and chunk vectors already computed (an import from another store, or
        `chunk_and_encode` run elsewhere); one all-or-nothing call, checked like `add`. vectors: float32
        (len(chunks), dim), row i for chunks[i]; chunks in document order, each within its document's text.
        replace: upsert (a stored document with the same id is replaced); save: save the derived index files
        after the commit (a bulk load saves them once, on its last call). normalize: scale each row to unit
        length first; without it a row whose L2 norm is not 1 (within 1e-3) is refused, because every score,
        codec and index here is an inner product of unit vectors (the Encoder contract), where one long row
        would outrank everything (Qdrant's cosine collections normalise on insert in the same way).
        unchanged (with `replace` only): ids of documents of this call that the caller found stored exactly as
        given (`Store.unchanged` on `chunk`'s chunks, read without the writer lock) and did not encode: their
        chunks are in `chunks`, their vectors are not (`vectors` then holds the other chunks' rows, in their
        order). Under the writer lock each is checked again: one still stored as given is left as it is (nothing
        written, no row left dead, counted as stored); one another writer changed meanwhile is encoded here with
        the collection's model and written, so this call's version wins (logged on "slimvec.ingest").

        Raises IngestError for repeated or (unless `replace`) stored ids, chunks of unknown documents or outside
        their text or whose text is not their span's, documents without chunks, non-finite, zero or (unless `normalize`) non-unit vectors;
        ConfigError for vectors of another dimension, a collection keeping token vectors, or `unchanged` without
        `replace` or naming a document not in this call."""
        self._refuse_shard_write()
        if self.token_config is not None:
            raise ConfigError(f"{self.path}: keeps token vectors; documents must be added (and encoded) with add")
        docs = _validated(list(docs), replace=False)
        by_id = {d.id: d for d in docs}
        skip = {unchanged} if isinstance(unchanged, str) else set(unchanged or ())  # one id, as delete takes it
        if skip and not replace:
            raise ConfigError("add_encoded: `unchanged` applies to an upsert (replace=True) only")
        if skip - by_id.keys():
            raise ConfigError(f"add_encoded: `unchanged` names {sorted(skip - by_id.keys())[0]!r}, not a document "
                              "of this call")
        given = [c for c in chunks if c.doc_id not in skip] if skip else list(chunks)  # the chunks `vectors` covers
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(given), int(self.manifest["dim"])):
            raise ConfigError(f"expected {len(given)} vectors of dimension {self.manifest['dim']}, got {vectors.shape}")
        for c in chunks:
            if c.doc_id not in by_id or not 0 <= c.start <= c.end <= len(by_id[c.doc_id].text):
                raise IngestError(f"chunk {c.index} of {c.doc_id!r}: no such document in this call, or its span "
                                  "lies outside the text; nothing from this call was stored")
        for c in chunks:  # the store keeps spans, and hits show the span's text: it must be what was encoded
            if c.text != by_id[c.doc_id].text[c.start : c.end]:
                raise IngestError(f"chunk {c.index} of {c.doc_id!r}: its text is not the document's text at "
                                  f"[{c.start}, {c.end}); nothing from this call was stored")
        seen: set[tuple[str, int]] = set()
        for c in chunks:
            if (c.doc_id, c.index) in seen:
                raise IngestError(f"chunk {c.index} of {c.doc_id!r} is given twice; nothing from this call was stored")
            seen.add((c.doc_id, c.index))
        chunked = {c.doc_id for c in chunks}
        bare = next((i for i, d in enumerate(docs) if d.id not in chunked), None)
        if bare is not None:  # stored, it could never be found, and `check` would call the collection damaged
            raise IngestError(f"document {docs[bare].id!r} (position {bare}) has no chunks; nothing from this call "
                              "was stored")
        _check_finite(vectors, [by_id[c.doc_id] for c in given], "the given vectors hold")
        vectors = _unit_rows(vectors, given, normalize)
        with self._writing():
            if not replace:
                self._refuse_stored(docs, 0)
            if skip:
                docs, chunks, vectors = self._still_unchanged(docs, list(chunks), vectors, skip)
                if not docs:  # every one is stored as given: nothing to write
                    if save and self._retrievers:  # what earlier calls of a bulk load wrote through this handle
                        self._sync()
                        self._save_after_commit()
                    return len(by_id)
            self.store.commit(docs, list(chunks), vectors, replace=replace)
            self._sync()
            if save:
                self._save_after_commit()
        if replace:  # the replaced versions' rows are dead
            self._compact_if_due()
        return len(by_id)

    def _still_unchanged(self, docs: list[Document], chunks: list[Chunk], vectors: np.ndarray, skip: set[str]
                         ) -> tuple[list[Document], list[Chunk], np.ndarray]:
        """`add_encoded`'s write without the documents of `skip` still stored as given; those another writer
        changed since the caller's check are encoded now and keep their place. vectors: rows of the chunks outside
        `skip`, in order; returns (documents, chunks, vectors) to commit, row i for chunk i. The caller holds the
        writer lock (the check and the commit must see one state)."""
        by_doc: dict[str, list[Chunk]] = {}
        for c in chunks:
            by_doc.setdefault(c.doc_id, []).append(c)
        same = self.store.unchanged([d for d in docs if d.id in skip], by_doc)
        late = [d for d in docs if d.id in skip and d.id not in same]
        docs = [d for d in docs if d.id not in same]
        kept = [c for c in chunks if c.doc_id not in same]
        if not late:
            return docs, kept, vectors
        # Rare: a second writer replaced (or deleted) it between the check and this lock. Written like any changed
        # document, so the last writer wins as with `upsert`; encoded here, in this process.
        logging.getLogger("slimvec.ingest").info(
            "%s: %d document(s) changed by another writer since they were found unchanged; encoded again here: %s",
            self.path, len(late), ", ".join(repr(d.id) for d in late[:5]) + (" ..." if len(late) > 5 else ""))
        more = self._encode(late, by_doc, self.encoder, None, lambda _n: None)[0]
        start, at = 0, {}
        for d in late:  # each late document's rows in `more`, in its chunk order
            at[d.id] = start
            start += len(by_doc[d.id])
        out = np.empty((len(kept), vectors.shape[1]), np.float32)
        given, seen = 0, dict.fromkeys(at, 0)
        for i, c in enumerate(kept):
            if c.doc_id in at:
                out[i] = more[at[c.doc_id] + seen[c.doc_id]]
                seen[c.doc_id] += 1
            else:
                out[i] = vectors[given]
                given += 1
        return docs, kept, out

    def _refuse_stored(self, docs: list[Document], offset: int) -> None:
        clash = self.store.existing_ids([d.id for d in docs])
        if clash:
            i, d = next((i, d) for i, d in enumerate(docs) if d.id in clash)
            raise StoredIdError(f"id {d.id!r} (position {offset + i}) is already stored (use upsert to replace it); "
                              "nothing from this call was stored")

    def _embed(self, docs: list[Document], chunks: dict[str, list[Chunk]], enc: Encoder, tokens: TokenConfig | None
               ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Chunk vectors in document-then-chunk order: each chunk's text encoded alone ("title text", or with
        the contextual prefix), or, in chunk mode "late", pooled from one pass over its document (slimvec.late);
        with `tokens`, also each chunk's token vectors and pooled counts (else two empty lists)."""
        prof = self.manifest.get("profile") or {}
        lists = [chunks[d.id] for d in docs]
        texts = chunk_texts(docs, lists, bool(prof.get("contextual_prefix")))
        late = self.chunking.mode == "late"
        if tokens is not None:
            dense, toks, counts = encode_chunks(enc, texts, tokens)  # one pass: dense and tokens
            if not late:
                return dense, toks, counts
        elif not late:
            return enc.encode_documents(texts), [], []
        else:
            toks, counts = [], []
        # Each document gets the measured default for its kind of chunks (given sections or token chunks),
        # with the profile's set fields on top; manifests written before the defaults split keep their values.
        fields = (prof.get("late_window"), prof.get("late_overlap"), prof.get("late_weight"))
        out = np.zeros((len(texts), int(enc.dim)), np.float32)
        starts = np.concatenate([[0], np.cumsum([len(cs) for cs in lists])]).astype(int)
        for kind in (False, True):
            pick = [i for i, d in enumerate(docs) if bool(d.sections) == kind]
            if not pick:
                continue
            config = default_late_config(kind, self.manifest.get("late_sections")).with_profile(*fields)
            rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in pick]).astype(int)
            out[rows] = late_chunk_vectors([docs[i] for i in pick], [lists[i] for i in pick], enc, config,
                                           own_texts=[texts[r] for r in rows])
        return out, toks, counts

    def _chunk(self, docs: list[Document], enc: Encoder) -> dict[str, list[Chunk]]:
        cfg = self.chunking
        out = {}
        for d in docs:
            title_tokens = len(enc.token_spans(d.title)) + 1 if d.title else 0
            room = max(8, cfg.max_tokens - title_tokens)
            config = ChunkConfig(room, min(cfg.overlap, room // 2 - 1), cfg.mode)
            # Given sections (a record's own, or Markdown/HTML headings) are the chunks; else token windows.
            out[d.id] = section_chunks(d, enc, config) if d.sections else chunk_document(d, enc, config)
        return out

    def delete(self, ids: Iterable[str] | None = None, *, filter: dict[str, Any] | None = None) -> int:
        """Delete documents by id, or every document matching a metadata filter, in one transaction; returns how
        many existed (unknown ids are ignored).

        ids: a list (or any iterable) of id strings, or one id as a plain string (`delete("12")` deletes
        document "12", never "1" and "2"). filter: slimvec's filter language (`slimvec.store.filters`, as
        `search` takes it; `{"_id": {"$in": [...]}}` names ids), as Qdrant's delete by filter selector: the
        matching documents are read and deleted under the writer lock, so none committed meanwhile is missed
        half-way. Give one of the two. Raises TypeError for an id that is not a string, ConfigError for both or
        neither or an empty filter (it would delete everything: delete the ids from `scroll` if you mean that),
        FilterError for a malformed filter or one that can never match (a value's type the field never holds).
        """
        ids = delete_selection(ids, filter)
        if ids is None:
            return len(self._delete_matching(filter))  # type: ignore[arg-type]
        with self._writing():
            n = self.store.delete(ids)
            self._sync()
        self._compact_if_due()
        return n

    def _delete_matching(self, flt: dict[str, Any]) -> list[str]:
        """`delete(filter=flt)`, `flt` checked by `delete_selection`, returning the deleted ids (a sharded
        collection's router forgets their ordinals)."""
        with self._writing():
            deleted = self.store.delete_matching(flt)
            self._sync()
        if not deleted:
            self._explain_unmatched(flt)
        self._compact_if_due()
        return deleted

    def create_field_index(self, fields: str | Iterable[str]) -> list[str]:
        """Index metadata fields for filters, as Qdrant's payload indexes and LanceDB's scalar indexes: a filter's
        $eq/$in/$gt/$gte/$lt/$lte on an indexed field reads the index instead of every document's metadata JSON
        (O(matches) instead of O(documents); `benchmarks/filtered_search.py`), with the same matches.

        fields: field names as filters write them (`year`, `meta.source`, `"v1.2"`). One transaction reads every
        document once; later writes keep the index in step (SQLite triggers, also across compaction). Costs disk,
        not RAM: about 40-80 bytes per document and field. Returns the fields newly indexed (one already indexed
        is left as it is). Raises FilterError for a name filters cannot write, or `_id` (always indexed)."""
        from slimvec.store.filters import field_path, path_field

        paths = [field_path(f) for f in _field_names(fields)]
        with self._writing():
            new = self.store.create_field_index(paths)
            self._sync()
        return [path_field(p) for p in new]

    def drop_field_index(self, fields: str | Iterable[str]) -> list[str]:
        """Remove the field indexes of these fields (filters on them scan the metadata again, same matches);
        returns those that existed. Raises FilterError as `create_field_index`."""
        from slimvec.store.filters import field_path, path_field

        paths = [field_path(f) for f in _field_names(fields)]
        with self._writing():
            gone = self.store.drop_field_index(paths)
            self._sync()
        return [path_field(p) for p in gone]

    def field_indexes(self) -> list[str]:
        """The indexed metadata fields (`create_field_index`), sorted."""
        from slimvec.store.filters import path_field

        with self._lock:
            return sorted(path_field(p) for p in self.store.field_indexes())

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """How many documents are stored, or match metadata filter `filter` (Qdrant's count, Chroma's count).
        Raises FilterError as `delete` does."""
        with self._lock:
            n = self.store.count_matching(filter)
        if not n and filter:
            self._explain_unmatched(filter)
        return n

    def scroll(self, filter: dict[str, Any] | None = None, limit: int = 100,
               offset: str | None = None) -> tuple[list[Document], str | None]:
        """One page of stored documents, in document id order (code point order), with their metadata and given
        sections, as `get` returns them; the same paging as Qdrant's `scroll`.

        filter: slimvec's filter language (None: every document). limit: documents per page, >= 1. offset: the
        id to start at (inclusive): None for the first page, then the `next_offset` the previous page returned.
        Returns (documents, next_offset), next_offset None on the last page. Each page is read in one snapshot;
        documents written between pages appear on a later page if their id sorts after the offset. Raises
        ConfigError for a bad limit or offset, FilterError as `delete` does.
        """
        limit = page_size(limit)
        if offset is not None and not isinstance(offset, str):
            raise ConfigError(f"scroll: offset is a document id (a string, the next_offset of the previous page), "
                              f"got {type(offset).__name__} {offset!r}")
        if offset is not None and lone_surrogate(offset):  # SQLite cannot bind it; no stored id holds one
            raise ConfigError(f"scroll: offset {offset!r} contains invalid Unicode (a lone surrogate); give the "
                              "next_offset of the previous page")
        with self.reading():
            found = self.store.documents_matching(filter, offset, limit + 1)
        if not found and filter:
            self._explain_unmatched(filter)
        docs = [stored_document(d) for d in found[:limit]]
        return docs, (found[limit]["id"] if len(found) > limit else None)

    def _explain_unmatched(self, flt: dict[str, Any]) -> None:
        """FilterError when `flt` matched no document because a value's type or field is in none of them (the
        line a search with that filter gives), so an empty count, page or delete is not silence."""
        if self.explain_empty_filters:  # not a shard: a router explains for all its shards at once
            with self._lock:
                self.store.explain_unmatched(flt)

    # ---- searching -------------------------------------------------------------------------
    def search(self, query: str, options: SearchOptions | None = None, /, *,
               rerank: str | Reranker | None = None, **fields: Any) -> list[Hit]:
        """The top `k` documents for `query`, each scored by its best chunk, best first.

        Options are the fields of `slimvec.search.SearchOptions`, given as keywords or as one object:
        k (default 10, at most 1,000), filter, mode (default: the profile's), min_relevance (a probability or
        "auto": calibrated hits below it dropped), rerank ("none", a spec such as "dense", "bi-encoder:MODEL",
        "cross-encoder:PATH", or a Reranker object; default: the profile's), rerank_depth, fusion ("softmax", the
        default of new profiles, "rrf" or "weighted") and fusion_weights (one per retriever of the mode), with_payload (False: ids and scores
        only, as Qdrant's option of the same name), unit ("document", or "section": one hit per given section,
        carrying its section id, document id and span).

        Scores: inner products for dense modes (cosine for unit vectors, in [-1, 1]), BM25 or SPLADE scores,
        or fused scores; equal scores are ordered by the tie rule of `slimvec.scoring`.
        Raises ConfigError for an empty query or a bad option (one line naming it), FilterError for a bad filter.
        """
        return self.search_many([query], options, rerank=rerank, **fields)[0]

    def search_many(self, queries: list[str], options: SearchOptions | None = None, /, *,
                    vectors: np.ndarray | None = None, rerank: str | Reranker | None = None, encoded: bool = False,
                    model: str | None = None, **fields: Any) -> list[list[Hit]]:
        """`search` for several queries; dense query vectors are encoded in one batch (or given as `vectors`,
        float32 of shape (len(queries), dim)). A given vector of all zeros is refused (ConfigError, as
        `search_vectors` refuses it): it has no direction, and every row would score it alike. `encoded`: the
        vectors are the queries' texts encoded by the caller (a sharded collection's router, a migration), so a
        zero row is a text the model knows no token of, which finds nothing by its vector, as a text query does.
        Vectors given to a search that does not use them (a mode without the dense retriever, no dense reranker)
        are refused unless `encoded` (`search.plan.refuse_unused_vectors`). `model`: whose `vectors` they are, as
        `search_vectors` takes it (ConfigError for another model than the collection's)."""
        check_queries(queries)
        check_encoded(encoded)
        check_vectors_model(model, self.manifest["model"], "search_many")
        given = None
        if rerank is not None and not isinstance(rerank, str):
            given = rerank  # a Reranker object from Python code: not a serialisable option
        elif rerank is not None:
            fields["rerank"] = rerank
        with self._lock:  # planned against what the collection is now (another handle may have enabled an index)
            self._sync()
            plan = self._plan(options, fields, given)
        refuse_unused_vectors(plan, self.manifest.get("retrievers", ["dense"]), vectors, encoded)
        vecs, toks = vectors, None
        if vecs is not None and plan.needs_query_vectors:
            vecs = _given_vectors(vecs, len(queries), self.manifest["dim"], refuse_zeros=not encoded)
        if vecs is None and plan.needs_query_vectors:
            both = getattr(self.encoder, "encode_queries_with_tokens", None)
            if plan.needs_query_tokens and both is not None:  # dense and token vectors from one forward pass
                vecs, toks = both(list(queries))
            else:
                vecs = self.encoder.encode_queries(list(queries))
        batch = [Query(q, None, None if vecs is None else vecs[i]) for i, q in enumerate(queries)]
        for q, t in zip(batch, toks or []):
            q._tokens = np.ascontiguousarray(t, dtype=np.float32)
        # Ranked and read in one snapshot, caught up inside it: the hits' text and metadata are read from the state
        # they were ranked in (a document another process replaced meanwhile is still found, as it was). A search
        # that reads nothing from the database after catching up (ids only, no filter, reranker or sections) ranks
        # the rows in RAM alone, skipping the read transaction and a second catch-up (each a SQLite statement or
        # more: benchmarks/snapshot_cost.py).
        reads_db = plan.with_payload or plan.filter or plan.reranker is not None or plan.unit != "document"
        if plan.needs_query_vectors and vecs is not None:
            self._recent.add(vecs)
        with self._lock, self.store.snapshot() if reads_db else nullcontext():
            if reads_db:  # else the state synced above, or since by another thread's search, is ranked as it is
                self._sync()
            hits = self._runner.run(plan, batch, self._retrievers, self._rows, self._allowed(plan.filter),
                                    self._calibrators)
            self._keep_caches()
            return hits

    def _plan(self, options: SearchOptions | None, fields: dict[str, Any], given: Reranker | None) -> SearchPlan:
        """The validated plan for these options; plans of hashable keyword options (no filter, no weights list)
        are kept per option set, so repeated calls skip pydantic validation and planning (~15 us of a lone
        query's ~0.1 ms). A kept plan is used only while the manifest and calibrators it was made from are the
        collection's current objects (both are replaced, never mutated, when they change)."""
        key: tuple[Any, ...] | None = None
        if options is None and given is None:
            try:
                # The type beside each value: 1, True, 1.0 and 1+0j are one dict key, but only 1 is a valid k.
                key = tuple(sorted((name, type(value), value) for name, value in fields.items()))
                entry = self._plans.get(key)
            except TypeError:  # an unhashable value (a filter dict): validated and planned every call
                key, entry = None, None
            if entry is not None and entry[0] is self.manifest and entry[1] is self._calibrators:
                return entry[2]
        manifest, calibrators = self.manifest, self._calibrators
        profile, model_weight = _search_profile(manifest)
        plan = make_plan(profile, manifest.get("retrievers", ["dense"]), int(manifest["dim"]),
                         SearchOptions.of(options, **fields), frozenset(calibrators), given, model_weight)
        if key is not None:
            if len(self._plans) >= 64:
                self._plans.clear()
            self._plans[key] = (manifest, calibrators, plan)
        return plan

    def search_vectors(self, qvecs: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None, *,
                       model: str | None = None) -> list[list[Hit]]:
        """Dense-only document hits for already-encoded query vectors, float32 of shape (n, dim) or (dim,).

        model: whose vectors they are (as Qdrant's `using` names a vector space); None: the collection's model.
        Raises ConfigError for another model than the collection's (`check_vectors_model`), and during a
        migration (`migrate.merged.MigratingCollection.search_vectors`) when the two models' vectors have one
        dimension and `model` does not say which."""
        check_vectors_model(model, self.manifest["model"], "search_vectors")
        opts = SearchOptions.of(k=k, filter=filter, mode="dense", rerank="none")
        qvecs = np.asarray(qvecs, dtype=np.float32)
        if qvecs.ndim == 1:
            qvecs = qvecs[None, :]
        qvecs = _given_vectors(qvecs, len(qvecs), int(self.manifest["dim"]))
        plan = make_plan({}, self.manifest.get("retrievers", ["dense"]), int(self.manifest["dim"]), opts)
        with self.reading():
            self._sync()
            return self._runner.run(plan, [Query("", None, v) for v in qvecs], self._retrievers, self._rows,
                                    self._allowed(plan.filter), {})

    # ---- optional retrievers and calibration -----------------------------------------------
    def enable(self, name: str, sparse_model: str | None = None) -> None:
        """Start maintaining retriever `name` (e.g. "bm25", "sparse"), building it from the stored rows.

        `sparse_model`: for "sparse", "splade-tiny" (the default, bundled) or a local SPLADE model directory.
        """
        self._refuse_shard_write()
        updates: dict[str, Any] = {}
        if sparse_model is not None:
            if name != "sparse":
                raise ConfigError(f"sparse_model applies to the 'sparse' retriever, not {name!r}")
            from slimvec.encoders.sparse import SPLADE_TINY, load_sparse_encoder

            load_sparse_encoder(sparse_model)  # fails here, naming the directory, before anything is written
            updates["sparse_model"] = sparse_model if sparse_model == SPLADE_TINY else str(Path(sparse_model).resolve())
        with self._writing():
            names = list(self.manifest.get("retrievers", ["dense"]))
            if name in names:
                kept = self.manifest.get("sparse_model", "splade-tiny")
                if updates and updates["sparse_model"] != kept:
                    raise ConfigError(f"{self.path}: the sparse index is built with {kept!r}; a collection keeps one "
                                      "sparse model")
                return
            self.store.save_manifest({"retrievers": _retriever_names(names + [name]), **updates})
            self._generation = -1
            self._sync()
            self._save_after_commit()

    def enable_kept(self, names: list[str], sparse_model: str | None = None) -> None:
        """`enable` each retriever of `names` (those another collection keeps: an export's, a migrated one's) this
        collection does not keep yet; `sparse_model` goes to "sparse" only. Dense and token vectors are not built
        here: they come with the collection's profile, never by `enable`."""
        for name in names:
            if name not in self.manifest.get("retrievers", ["dense"]) and name not in ("dense", "multivector"):
                self.enable(name, sparse_model=sparse_model if name == "sparse" else None)

    @property
    def calibrators(self) -> dict[str, "_calibration.Calibrator"]:
        """Relevance calibrators by search mode (from calibration.json)."""
        return dict(self._calibrators)

    def check_calibrator_writable(self) -> None:
        """Raise CollectionError, before any work, where `set_calibrator` would refuse (a collection under
        migration, also through a handle opened before it started; a read-only folder): `fit_calibrator` asks
        first, so its searches are not run for nothing."""
        with self._lock:  # the store object is replaced when a compaction switches files
            self.store.check_writable()

    def set_calibrator(self, mode: str, calibrator: "_calibration.Calibrator") -> None:
        """Store `mode`'s calibrator in calibration.json (atomically) and use it from now on.

        Raises ConfigError, with nothing changed, for a mode this collection cannot run, a calibrator fitted on
        another mode, or one whose values cannot score (see `Calibrator.problem`)."""
        with self._writing():
            _calibration.checked(mode, calibrator, modes(list(self.manifest.get("retrievers", ["dense"]))))
            calibrators = {**self._calibrators, mode: calibrator}
            _calibration.save_calibrators(self.path, calibrators)  # kept in memory only once it is on disk
            self._calibrators = calibrators
            self.store.bump_generation()  # other handles (a server) re-read calibration.json at their next search

    # ---- tuning the index on the user's queries ---------------------------------------------
    def tune(self, queries: list[str] | None = None, *, vectors: Any = None) -> dict[str, Any]:
        """Calibrate the index's search knob (an IVF nprobe, an HNSW efSearch) on sample queries of your own, to
        the profile's `target_recall` Recall@10, instead of on midpoints of stored rows; every later calibration
        (after the rows double, after a compaction) uses them too. Like faiss's autotuning on a query set.

        queries: at least 10 query texts (encoded with the collection's model, query side), or `vectors`: their
        (n, dim) float32 vectors (as `search_many` takes them); of more than 1,000, a seeded random 1,000. Their
        vectors are kept in DIR/probe_queries.npz (`store.probes`); only the vectors, no text. Returns
        `{retriever name: describe()}` of each index tuned (its "calibration" names the probes; IVF lists not
        built yet, below 100,000 rows, are calibrated on the queries when they are). Raises ConfigError for fewer than 10 queries, a bad one, both or neither of
        queries and vectors, or a profile with nothing to calibrate (exact search, a fixed nprobe/ef_search).
        Calibrating takes seconds (30 s at 1M rows: exact truth for the queries, then the search at each nprobe
        tried); searches go on meanwhile, through this handle with the old calibration, and other handles take
        the new one from the saved index at their next search; writes wait.
        """
        if (queries is None) == (vectors is None):
            raise ConfigError("tune takes the queries' texts or their vectors, one of the two")
        # First: asked for more or other queries, a user gathered them only to hear that no queries would do.
        with self._lock:
            self._sync()
            tunable = [name for name, r in self._retrievers.items() if getattr(r, "tunable", False)]
        if not tunable:
            profile = (self.manifest.get("profile") or {}).get("name", "this")
            raise ConfigError(f"the {profile!r} profile has nothing to tune: tuning calibrates an HNSW efSearch or an "
                              "IVF nprobe the profile leaves to calibration (profiles hnsw-f32, binary-ivf-rescore)")
        dim = int(self.manifest["dim"])
        if queries is not None:
            check_queries(queries)
        else:
            v = np.asarray(vectors, dtype=np.float32)
            vectors = _given_vectors(v, len(v) if v.ndim == 2 else 1, dim, refuse_zeros=False)  # see below
        n = len(queries) if queries is not None else len(vectors)
        if n < probes.MIN_QUERIES:
            raise ConfigError(f"tune needs at least {probes.MIN_QUERIES} queries, got {n}")
        if queries is None:
            _check_probe_vectors(vectors)
        distinct = len(set(queries)) if queries is not None else len(np.unique(vectors, axis=0))
        if distinct < probes.MIN_QUERIES:  # ten copies of one query measure one query's recall
            raise ConfigError(f"tune needs at least {probes.MIN_QUERIES} distinct queries, got {distinct} "
                              f"({n} given; the rest repeat them)")
        if n > probes.MAX_QUERIES:  # a seeded sample: the same queries give the same calibration
            keep = np.sort(np.random.default_rng(0).choice(n, probes.MAX_QUERIES, replace=False))
            queries = None if queries is None else [queries[i] for i in keep]
            vectors = None if vectors is None else vectors[keep]
            n = probes.MAX_QUERIES
        vecs = vectors if queries is None else _given_vectors(self.encoder.encode_queries(list(queries)), n, dim,
                                                              refuse_zeros=False)
        if queries is not None:  # a zero vector named by its query
            _check_probe_vectors(vecs, queries)
        wanted = probes.of(vecs, str(self.manifest["model"]))
        self._retune(wanted, lambda: probes.save(self.path, wanted.vectors, wanted.model) is not None)
        with self._lock:
            return {name: describe(self._retrievers[name]) for name in tunable}

    def reset_tuning(self) -> bool:
        """Forget the queries `tune` stored: the index is calibrated on midpoints of stored rows again. Returns
        whether there were any."""
        return self._retune(None, lambda: probes.remove(self.path))

    def _retune(self, queries: probes.ProbeQueries | None, change: Callable[[], bool]) -> bool:
        """Calibrate every tunable index on `queries` (the probe queries `change` is about to store; None: the
        midpoints of rows, after `change` removed the file), then make `change` to the stored probe queries (it
        returns whether it changed anything), set the calibrations, save the index and show other handles the new
        generation. Runs under this handle's write mutex and the writer lock (no commit lands meanwhile) but
        calibrates outside its state lock: searches through this handle go on with the old calibration until the
        new one is set. Other handles take the saved calibration at their next search (`index.nprobe.settle`)
        instead of calibrating again. The probe file changes only after calibrating: a tune that fails or is
        killed meanwhile leaves the collection as it was, never a new file that handles open now do not see
        (they look again only at a new generation)."""
        with self._write_lock, self.store.writer():
            if queries is None and not (self.path / probes.FILE).exists():
                return False  # no stored queries to forget: nothing to calibrate again
            with self._lock:
                self._sync()  # commits landed before the writer lock: caught up before calibrating
                tuning = [r for r in self._retrievers.values() if getattr(r, "tunable", False)]
            choices = [(r, r.calibrate(self.store, queries)) for r in tuning]  # seconds; 30 s at 1M rows
            with self._lock:
                if not change():
                    return False
                for r, choice in choices:
                    r.use_calibration(choice)
                self._save_after_commit()
                self.store.bump_generation()
                self._sync()
            return True

    def _allowed(self, filter: dict[str, Any] | None) -> np.ndarray:
        """(rows,) bool mask of the rows a hit may come from: alive, and inside the filter when there is one;
        read-only (callers copy it to change it). Call under self._lock.

        A filter is evaluated by SQLite over every document's metadata JSON (O(documents): ~0.5 s at 200,000 on
        this VM), so its mask is kept for the state it was read in: the same filter again (a tenant's, a source's)
        costs a dict look-up until the next commit, by any process, or a compaction."""
        if not filter:
            return self._rows.alive
        # repr, not JSON text: a tuple where the language takes a list (refused) must not find the list's mask
        key = repr(filter)
        state = (self._generation, self.store, self._rows.alive)
        kept = self._filter_masks.get(key)
        if kept is not None and kept[0][0] == state[0] and kept[0][1] is state[1] and kept[0][2] is state[2]:
            self._filter_masks.move_to_end(key)
            return kept[1]
        mask = np.zeros_like(self._rows.alive)
        rows = self.store.rows_matching(filter, self.explain_empty_filters)
        mask[rows[rows < len(mask)]] = True  # rows another process committed since the last sync wait for the next
        mask.setflags(write=False)
        self._filter_masks[key] = (state, mask)
        self._filter_masks.move_to_end(key)
        while len(self._filter_masks) > max(1, FILTER_MASK_BYTES // max(1, mask.nbytes)):
            self._filter_masks.popitem(last=False)
        return mask

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Every store read inside sees one committed state (`Store.snapshot`), under this handle's state lock: a
        read transaction on the handle's one SQLite connection, so a write through another thread waits for it
        instead of failing ("cannot start a transaction within a transaction"). Searches through this handle
        wait too; long reads (`export`) hold it for their whole run."""
        with self._lock, self.store.snapshot():
            yield

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """This handle's write mutex, its state lock, then the collection's writer lock (the order every
        write takes them in; `compact` holds the first and the last while readers keep `_lock`)."""
        with self._write_lock, self._lock, self.store.writer():
            yield

    # ---- compaction ------------------------------------------------------------------------
    def compact(self) -> dict[str, Any]:
        """Rewrite the collection without its dead rows (chunks of deleted or replaced documents), reclaiming
        their disk and RAM; results stay the same (ids, scores and order; an HNSW graph is rebuilt, so an
        approximate search may differ slightly). Searches through this handle go on while the new generation is
        written; writes wait. See `slimvec.compaction` and `store.switch` (atomic for readers, crash-safe).

        Returns {"compacted": False when there was nothing dead, "dead_rows" dropped, "rows_before",
        "rows_after", "disk_bytes_before", "disk_bytes_after", "ram_bytes_before", "ram_bytes_after",
        "seconds"}. Raises CollectionError, with nothing changed, while another handle (a server, another
        process or object) has the collection open: the new generation can only replace files nobody reads.
        """
        t0 = time.perf_counter()
        with self._write_lock, self.store.writer():
            if not self.store.sole_handle():
                raise CollectionError(f"{self.path}: cannot compact while the collection is open elsewhere (a "
                                      "server, another process or handle); close it, or compact through it")
            with self._lock:
                self._sync()
                before = {"rows_before": self.store.committed_rows, "disk_bytes_before": self.store.disk_bytes(),
                          "ram_bytes_before": self._ram_bytes()}
                keep = live_rows(self.store)
                if len(keep) == self.store.committed_rows:
                    # Nothing dead, but a compaction killed before its switch may have left its staged copy: this
                    # call holds the writer lock (no compaction is running) and is the only handle, so it goes.
                    if (self.path / compaction.STAGE).exists() and not (self.path / switch.INTENT).exists():
                        compaction.discard(self.path)
                    return {"compacted": False, "dead_rows": 0, **before, "rows_after": before["rows_before"],
                            "disk_bytes_after": self.store.disk_bytes(),
                            "ram_bytes_after": before["ram_bytes_before"], "seconds": time.perf_counter() - t0}
                parts = [r.compacted(keep) for r in self._retrievers.values() if hasattr(r, "compacted")]
            target = compaction.write_generation(self.store, keep, parts, before["rows_before"])
            try:
                staged = Collection(Store.open(target), self._encoder)
                try:  # derived files nobody could cut down (an HNSW graph) are built here, not by the next reader
                    staged._sync()
                    staged._save_index()
                finally:
                    staged.close()
            except BaseException:
                compaction.discard(self.path)
                raise
            with self._lock:
                self.store.close()
                try:
                    switch.switch(self.path, target.parent, target,
                                  busy=f"{self.path}: cannot compact while the collection is open elsewhere")
                except BaseException:
                    # Past its intent, the switch is the next open's to roll forward (this handle stays closed:
                    # reopening here would wait for the writer lock this call holds); before it, nothing moved.
                    if not (self.path / switch.INTENT).exists():
                        compaction.discard(self.path)
                        self._reopen()
                    raise
                self._reopen()
                # still under `_lock`: these read the store's connection, which searches share
                return {"compacted": True, "dead_rows": before["rows_before"] - len(keep), **before,
                        "rows_after": self.store.committed_rows, "disk_bytes_after": self.store.disk_bytes(),
                        "ram_bytes_after": self._ram_bytes(), "seconds": time.perf_counter() - t0}

    def _compact_if_due(self) -> None:
        """After a write that left rows dead: compact when the profile's threshold is passed and this is the
        only open handle (otherwise the next write tries again). The write is committed whatever happens here, so
        a compaction stopped by a full disk (its staged copy removed, the collection as it was) is logged as a
        warning, not raised, as `_save_after_commit` does: a caller told "failed" would write again what is stored."""
        with self._lock:  # reads the connection searches share
            due = compaction.due(self.store)
        if due:
            try:
                self.compact()
            except (CollectionError, OSError, sqlite3.Error) as e:
                if isinstance(e, CollectionError) and "open elsewhere" in str(e):
                    return
                if (self.path / switch.INTENT).exists():
                    raise  # stopped past the switch's commit point: this handle is closed, the next open finishes it
                logging.getLogger("slimvec.collection").warning(
                    "%s: the write is committed, but the automatic compaction stopped (%s); the next write that "
                    "leaves rows dead tries again", self.path, getattr(e, "strerror", None) or e)

    def _reopen(self) -> None:
        """Open the store again and drop every in-memory structure built on the previous files."""
        self.store = Store.open(self.path)
        self._retrievers, self._rows, self._runner, self._generation = {}, RowMap(), Runner(self.store), -1
        self._sync()

    # ---- in-memory state -------------------------------------------------------------------
    def _sync(self) -> None:
        """Catch up with commits made since the last look (by this or another process), all read in one snapshot
        (a commit landing meanwhile is seen whole at the next sync, never in part)."""
        if self.store.generation == self._generation and self._retrievers:
            return
        with self.store.snapshot():
            self._sync_now()

    def _sync_now(self) -> None:
        gen = self.store.generation
        if gen == self._generation and self._retrievers:
            return
        if self._generation >= 0:  # another handle may have changed the manifest or calibration.json since
            self.store.reload_manifest()
            calibrators = _calibration.load_calibrators(self.path)
            if calibrators != self._calibrators:
                self._calibrators = calibrators
        names = self.manifest.get("retrievers", ["dense"])
        built = []
        for name in names:
            if name not in self._retrievers:
                if not registry.has("retriever", name):
                    raise CollectionError(f"{self.path}: collection uses the {name!r} index, unknown to this slimvec")
                self._retrievers[name] = registry.load("retriever", name)(self.store, lambda: self.encoder)
                built.append(name)
        for name in built:  # a retriever built on another one (multivector on its candidates) finds it here
            bind = getattr(self._retrievers[name], "bind", None)
            if bind is not None:
                bind(self._retrievers)
        for name in names:
            self._retrievers[name].sync(self.store)
        if self._generation < 0:
            self._rows.reset()
        self._rows.update(self.store)
        self._generation = gen

    def _keep_caches(self) -> None:
        """Write what a search built and the files lack (BM25 postings built from the token cache), if no writer is
        busy now, so the next open loads it instead of building it again; a busy writer or a read-only directory
        leaves it for later."""
        pending = [r for r in self._retrievers.values() if getattr(r, "cache_pending", False)]
        if not pending:
            return
        with switch.writer_lock(self.path, wait=False) as held:
            for r in pending if held else []:
                try:
                    r.save_cache(self.path / "index")
                except OSError:
                    pass  # a derived file, replaced atomically: the next open rebuilds what is missing

    def _save_index(self) -> None:
        for r in self._retrievers.values():
            r.save(self.path / "index")

    def _save_after_commit(self) -> None:
        """Save the derived index files after a commit. The commit stands whatever happens here, so a failed
        save (a full disk) is logged as a warning, not raised: a caller told "failed" would write again what is
        stored. Each file is replaced atomically, and what is missing catches up from the committed rows at the
        next save or open."""
        try:
            self._save_index()
        except OSError as e:
            logging.getLogger("slimvec.collection").warning(
                "%s: the write is committed, but the derived index files were not saved (%s); they catch up from "
                "the committed rows at the next write or open", self.path, e.strerror or e)

    # ---- reporting -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts, model, dimensions, bytes on disk and resident in RAM (total and per document), for multi-vector
        collections "tokens_per_doc" and "token_disk_bytes_per_doc", and
        "dead_rows" (chunk rows of deleted or replaced documents, until a compaction), "dead_share" and
        "reclaimable_disk_bytes" (what `compact` would free, estimated: see compaction.reclaimable),
        "fusion" (for a profile whose default mode fuses rankings: {"mode", "method", "weights"}, weights None for
        equal), "indexes": {retriever name: what it built} (see retrievers.base.describe), e.g.
        {"dense": {"kind": "ivf", "codec": "binary", "nlist": 4, "nprobe": 4, "fitted_rows": 300, ...}}, and
        "field_indexes" (the indexed metadata fields, `create_field_index`) when there are some."""
        with self.reading():  # counts of one commit, not of two
            self._sync()
            counts = self.store.counts()
            usage = self.store.disk_usage()
            disk = sum(usage.values())
            ram = self._ram_bytes()
            per = max(counts["documents"], 1)
            m = self.manifest
            return {
                "path": str(self.path),
                "format_version": m["format_version"],
                "model": m["model"],
                "dim": m["dim"],
                "index": m["index"],
                "retrievers": m.get("retrievers", ["dense"]),
                "chunking": m["chunking"],
                **({"query_pooling": m["query_pooling"]} if "query_pooling" in m else {}),
                **_fusion_info(*_search_profile(m)),
                **({"model_fusion_weight": m["model_fusion_weight"]} if "model_fusion_weight" in m else {}),
                **counts,
                "disk_bytes": disk,
                "ram_bytes": ram,
                "disk_bytes_per_doc": disk / per if counts["documents"] else 0.0,
                "ram_bytes_per_doc": ram / per if counts["documents"] else 0.0,
                "indexes": {name: describe(r) for name, r in self._retrievers.items()},
                **({"field_indexes": fields} if (fields := self.field_indexes()) else {}),
                **compaction.reclaimable(self.store, int(describe(self._retrievers["multivector"])
                                                         .get("token_disk_bytes", 0))
                                         if "multivector" in self._retrievers else 0, usage),
                **self._token_info(counts["documents"]),
                **self._recent_info(),
            }

    def _ram_bytes(self) -> int:
        return sum(r.ram_bytes() for r in self._retrievers.values()) + self._rows.nbytes

    def _token_info(self, documents: int) -> dict[str, Any]:
        """Multi-vector collections: stored tokens per document (alive rows) and token-file bytes per document."""
        mv = self._retrievers.get("multivector")
        if mv is None or not documents:
            return {}
        disk = describe(mv).get("token_disk_bytes", 0)
        return {"tokens_per_doc": mv.alive_tokens(self._rows.alive) / documents,  # type: ignore[attr-defined]
                "token_disk_bytes_per_doc": disk / documents}

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or None; with its given sections (rebuilt from its chunks, each
        spanning them: what migrate and import rebuild too), so upserting it back stores the same chunks. Raises
        TypeError for an id that is not a string (a number would otherwise find nothing, silently: ids are stored
        as strings)."""
        if not isinstance(doc_id, str):
            raise TypeError(f"document ids are strings, not {type(doc_id).__name__} ({doc_id!r})")
        with self._lock:  # the store object is replaced when a compaction switches files
            d = self.store.get_document(doc_id)
        # With its given sections: `upsert(replace(get(id), metadata=...))` must keep them, not re-cut the text.
        return None if d is None else stored_document(d)

    def __len__(self) -> int:
        with self._lock:
            return self.store.counts()["documents"]

    def check(self) -> list[str]:
        """Integrity problems, one line each (empty when healthy): the store's (SQLite, vector rows, checksums,
        non-finite vectors), then each derived index's (e.g. RAM codes that disagree with the stored vectors).
        Under the state lock, as every read transaction on this handle's connection: a write through another
        thread would otherwise begin its transaction inside the check's ("cannot start a transaction within a
        transaction")."""
        with self._lock:
            problems = self.store.check()
        if problems:
            return problems
        with self.reading():
            try:
                self._sync()
            except CollectionError as e:  # a derived file the catch-up reads is missing or short: that is the problem
                return [str(e)]
            for name, r in self._retrievers.items():
                check = getattr(r, "check", None)
                if check is not None:
                    problems += [f"{name} index: {p}" for p in check(self.store, self._rows.alive)]
        return problems


def check_vectors_model(model: Any, stored: str, call: str) -> None:
    """ConfigError when a caller names the model of its query vectors (`model`, None: not named) and the
    collection holds another model's vectors: they would be scored against rows of another space, silently."""
    if model is None:
        return
    if not isinstance(model, str):
        raise TypeError(f"{call}: model must be a model name (a string), not {type(model).__name__}")
    if model != stored:
        raise ConfigError(f"{call}: the query vectors are {model!r}'s, but this collection holds {stored!r}'s; "
                          f"encode the queries with {stored!r}")


def stored_document(d: dict[str, Any]) -> Document:
    """A stored document dict (`Store.get_document`, `Store.documents_from`) as a Document, its given sections
    rebuilt from its chunks (each spanning them, with their heading path), so adding it again stores the same
    chunks: `Collection.get`, and `slimvec migrate` copying a collection into the new model's."""
    sections = tuple(Section(sid, start, end, tuple(json.loads(path)) if path else ())
                     for sid, start, end, path in d["sections"])
    return Document(d["id"], d["text"], d["title"], d["metadata"], sections=sections or None)


def _router_of(path: Path) -> Path | None:
    """The sharded collection whose router manifest (shards.json) lists `path` as one of its shards, or None."""
    # Resolved: the shard opened as "001" from inside shards/, as "shards/001/../001" or through a link to it has
    # no "shards" parent as spelled, and took the writes its router must route.
    try:
        path = path.resolve()
    except (OSError, RuntimeError):  # a link loop: Store.open has already said what is wrong with the path
        return None
    router = path.parent.parent
    if path.parent.name != "shards" or not (router / "shards.json").is_file():
        return None
    try:
        listed = json.loads((router / "shards.json").read_text(encoding="utf-8")).get("shards") or []
    except (OSError, ValueError, AttributeError):
        return None  # not a router manifest this slimvec reads: opening the router says what is wrong with it
    return router if f"shards/{path.name}" in listed else None


@contextmanager
def _creating(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on the nearest existing folder above `path` (nothing is made or written there)
    while a collection is created at `path`, so `open_or_create` from two processes makes it once; a folder that
    cannot be opened is not locked."""
    above = path.absolute().parent
    while not above.is_dir() and above != above.parent:
        above = above.parent
    try:
        fd = os.open(above, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fusion_info(profile: dict[str, Any], model_weight: float | None = None) -> dict[str, Any]:
    """info()'s "fusion" entry for a stored profile whose default mode fuses rankings, else nothing; the weights
    are those its searches use: the profile's, else the model's (`model_weight`), else None (equal)."""
    mode = profile.get("mode")
    if mode not in FUSED_MODES:
        return {}
    weights = profile.get("fusion_weights")
    if weights is None:
        weights = _model_pair(profile, model_weight)
    return {"fusion": {"mode": mode, "method": stored_fusion(profile), "weights": weights}}


def _prompts(enc: Encoder) -> dict[str, Any]:
    """{"prompts": {"query", "document"}} for an encoder that prepends prompts, else nothing."""
    if not hasattr(enc, "query_prompt"):
        return {}
    return {"prompts": {"query": enc.query_prompt, "document": enc.document_prompt}}  # type: ignore[attr-defined]


def check_queries(queries: Any) -> None:
    """Query texts as every search takes them (`search_many`, `tune`, a sharded collection's): TypeError unless
    `queries` is a list or tuple; ConfigError naming the first query that is not a string, is empty or only
    invisible characters, or is not valid Unicode."""
    if isinstance(queries, str) or not isinstance(queries, (list, tuple)):
        raise TypeError(f"queries must be a list of strings, not {type(queries).__name__}")
    for q in queries:
        if not isinstance(q, str):
            raise ConfigError("query is empty" if q is None else f"query must be a string, not {type(q).__name__}")
        if problem := query_problem(q):
            raise ConfigError(problem)


def check_encoded(encoded: Any) -> None:
    """ConfigError unless `search_many`'s `encoded` is a bool: a truthy string ("no") or number would silently
    let a caller's zero vectors through as texts the model knows no token of."""
    if not isinstance(encoded, (bool, np.bool_)):
        raise ConfigError(f"encoded must be True or False, not {encoded!r} ({type(encoded).__name__})")


def delete_selection(ids: Any, filter: Any) -> list[str] | None:
    """`delete`'s arguments checked, for one collection and a sharded one alike: the ids as a list of strings (one
    id given as a plain string is that id), or None when `filter` selects the documents instead. Raises ConfigError
    for both or neither or an empty filter, TypeError for ids that are not strings."""
    if filter is not None:
        if ids is not None:
            raise ConfigError("delete: give ids or filter, not both (put the ids in the filter: "
                              '{"_id": {"$in": [...]}})')
        if isinstance(filter, dict) and not filter:
            raise ConfigError("delete: an empty filter matches every document; give a condition (to empty the "
                              "collection, delete the ids `scroll` lists)")
        return None
    if ids is None:
        raise ConfigError("delete: give the ids to delete, or filter=")
    if isinstance(ids, str):
        return [ids]
    if isinstance(ids, bytes) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a list of strings, not {type(ids).__name__}")
    ids = list(ids)
    wrong = [i for i in ids if not isinstance(i, str)]  # a list, not next(..., None): the id may be None
    if wrong:
        raise TypeError(f"ids must be strings, got {type(wrong[0]).__name__} {wrong[0]!r}")
    return ids


def page_size(limit: Any) -> int:
    """`scroll`'s limit as an int. A numpy integer (a count from pandas) is the number it holds, as search's k
    takes it; it was refused as not "a whole number >= 1" while being one."""
    if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ConfigError(f"scroll: limit must be a whole number >= 1, got {limit!r}")
    return int(limit)


def _field_names(fields: str | Iterable[str]) -> list[str]:
    """`create_field_index`'s fields as a list: one name given as a plain string is that name."""
    if isinstance(fields, str):
        return [fields]
    if isinstance(fields, bytes) or not isinstance(fields, Iterable):
        raise TypeError(f"fields must be a field name or a list of them, not {type(fields).__name__}")
    names = list(fields)
    if not names or any(not isinstance(f, str) for f in names):
        raise TypeError(f"fields must be a non-empty list of field names (strings), got {names!r}")
    return names


def _given_vectors(vectors: Any, n: int, dim: int, refuse_zeros: bool = True) -> np.ndarray:
    """`search_many`'s `vectors` as float32 (n, dim); ConfigError naming the problem when the shape is not that,
    a value is not finite (a NaN query scores nothing and used to return no hits, silently), or, with
    `refuse_zeros`, a row is all zeros: a caller's bug (an embedding call that failed to zeros), which scores every
    row 0 (the "hits" were row order, or none, silently). Vectors encoded from texts pass `refuse_zeros=False`: a
    text no token of which the model knows searches to no hits (`retrievers.base.no_direction`); `tune` names the
    query of a zero vector itself (`_check_probe_vectors`)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != int(dim):
        raise ConfigError(f"query vectors of shape {v.shape}: expected shape ({n}, {dim}), one row of dimension {dim} "
                          "per query")
    if len(v) != n:
        raise ConfigError(f"{len(v)} query vectors for {n} queries: give one per query")
    if not np.isfinite(v).all():
        raise ConfigError("query vectors must be finite (a NaN or infinity was given)")
    if refuse_zeros and len(zero := np.flatnonzero(~v.any(axis=1))):
        raise ConfigError(f"query vector {int(zero[0])} is all zeros: it has no direction to search by")
    return v


def _check_probe_vectors(vectors: np.ndarray, queries: list[str] | None = None) -> None:
    """ConfigError naming the first probe query whose vector is zero: it has no direction, every row scores it
    alike, and a calibration on it reaches no recall at any efSearch or nprobe (it would pick the largest)."""
    zero = np.flatnonzero(np.linalg.norm(vectors, axis=1) <= 1e-6)
    if len(zero):
        i = int(zero[0])
        what = f"query {queries[i][:40]!r}" if queries is not None else f"query vector {i}"
        raise ConfigError(f"{what} has a zero vector (no direction to search by): leave it out of the tuning queries")


def _retriever_names(names: list[str] | None) -> list[str]:
    """Validated retriever names without repeats, "dense" first when present."""
    names = list(dict.fromkeys(names or ["dense"]))
    unknown = [n for n in names if not registry.has("retriever", n)]
    if unknown:
        raise ConfigError(f"unknown retriever {unknown[0]!r}: choose from {', '.join(registry.names('retriever'))}")
    # dense first (its best chunk is a fused hit's snippet); retrievers bound to others (multivector) last
    return sorted(names, key=lambda n: (n == "multivector", n != "dense"))


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for d in docs:
        batch.append(d)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _validated(docs: list[Document], replace: bool, offset: int = 0, refuse_blank_sections: bool = False
               ) -> list[Document]:
    """Check types, JSON-ability, empty documents and repeated ids before anything is encoded or stored.
    refuse_blank_sections: also refuse a given section of only whitespace (`documents.blank_section_problem`): new input
    through add/upsert; documents coming back from a store (migrate, import) may hold one stored before the rule."""
    seen: dict[str, int] = {}  # id -> position in the call
    where: dict[str, int] = {}  # id -> index in `out`
    out = []
    for i, d in enumerate(docs, start=offset):
        if not isinstance(d, Document):
            raise IngestError(f"position {i}: expected a slimvec.Document, got {type(d).__name__}")
        if problem := id_problem(d.id):  # the one id rule every reader and output shares (slimvec.ids)
            raise IngestError(f"position {i}: id {d.id!r}: {problem}; nothing from this call was stored")
        if not isinstance(d.text, str) or not isinstance(d.title, str):
            raise IngestError(f"document {d.id!r} (position {i}): text and title must be strings")
        if not (has_content(d.text) or has_content(d.title)):
            raise IngestError(f"document {d.id!r} (position {i}): text and title are empty (or only invisible "
                              "characters): nothing to embed")
        # The readers' own rules (slimvec.records): a key that is not a string would come back as one, a lone
        # surrogate or NUL cannot be stored, a NaN is not JSON.
        for field, value in (("title", d.title), ("text", d.text)):
            if problem := text_problem(value):
                raise IngestError(f"document {d.id!r} (position {i}): {field}: {problem}; nothing from this call was stored")
        if refuse_blank_sections and d.sections and (problem := blank_section_problem(d.text, d.sections)):
            raise IngestError(f"document {d.id!r} (position {i}): sections: {problem}; nothing from this call was stored")
        if (meta := plain_metadata(d.metadata)) is not d.metadata:  # numpy scalars (pandas): their Python values
            d = dataclasses.replace(d, metadata=meta)
        if found := metadata_problem(d.metadata):
            key, problem = found
            what = "metadata" if problem.startswith("key: ") else "metadata is not JSON-serialisable"
            raise IngestError(f"document {d.id!r} (position {i}): {what}: "
                              f"{key + ': ' if key else ''}{problem}; nothing from this call was stored")
        if d.id in seen:
            if not replace:
                raise IngestError(f"id {d.id!r} appears twice in this call (positions {seen[d.id]} and {i}); "
                                  "nothing from this call was stored")
            out[where[d.id]] = d  # upsert: the last version wins
            continue
        seen[d.id], where[d.id] = i, len(out)
        out.append(d)
    return out


UNIT_TOLERANCE = 1e-3  # |norm - 1| allowed: float16 round trips stay within ~1e-4


def _unit_rows(vectors: np.ndarray, chunks: list[Chunk], normalize: bool) -> np.ndarray:
    """`vectors` with unit rows: scaled when `normalize`, else checked. Raises IngestError naming the first
    zero row, or (without `normalize`) the first row whose L2 norm is off 1 by more than UNIT_TOLERANCE."""
    if vectors.size == 0:
        return vectors
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        c = chunks[int(zero[0])]
        raise IngestError(f"document {c.doc_id!r} chunk {c.index}: the given vector is all zeros (no direction to "
                          "score); nothing from this call was stored")
    if normalize:
        return (vectors / norms[:, None]).astype(np.float32)
    off = np.flatnonzero(np.abs(norms - 1) > UNIT_TOLERANCE)
    if len(off):
        c = chunks[int(off[0])]
        raise IngestError(f"document {c.doc_id!r} chunk {c.index}: the given vector has L2 norm {norms[off[0]]:.4g}, "
                          f"not 1 ({len(off)} such row(s)); slimvec scores unit vectors by inner product: pass "
                          "normalize=True (CLI: --normalize) to scale them; nothing from this call was stored")
    return vectors


def _check_finite(vectors: np.ndarray, owners: list[Document], source: str = "the model gave") -> None:
    """Refuse the call when a vector holds NaN or infinity: one such row poisons a fitted codec."""
    if vectors.size == 0:
        return
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        d = owners[int(bad[0])]
        raise IngestError(f"document {d.id!r}: {source} a non-finite vector (NaN or infinity) for "
                          f"{len(bad)} chunk(s); nothing from this call was stored")


def _settings_differ(manifest: dict[str, Any], options: dict[str, Any]) -> str:
    """What `open_or_create`'s options ask that the stored collection was not made with ("" when nothing):
    the profile (by name), the index, or chunking; options left None ask nothing."""
    prof = manifest.get("profile") or {}
    chosen = options.get("profile")
    if chosen is not None:
        name = chosen if isinstance(chosen, str) else getattr(chosen, "name", None)
        if name != prof.get("name"):
            return f"profile {prof.get('name')!r}, not {name!r}"
        if isinstance(chosen, Profile) and not (registry.has("profile", chosen.name)
                                                and registry.load("profile", chosen.name) == chosen):
            # A profile file or object of the same name: the fields it sets must be the stored ones (a built-in
            # is compared by name, so a collection made before a built-in changed keeps taking it).
            if problem := _profile_fields_differ(prof, chosen, options, _model_pair(*_search_profile(manifest)),
                                                 manifest.get("chunking")):
                return f"profile {name!r} with {problem}"
    index = options.get("index")
    if index is not None and index != manifest.get("index", "exact"):
        return f"index {manifest.get('index', 'exact')!r}, not {index!r}"
    chunking = manifest.get("chunking") or {}
    for key, field in (("chunk_mode", "mode"), ("chunk_tokens", "max_tokens"), ("chunk_overlap", "overlap")):
        given = options.get(key)
        if given is not None and field in chunking and given != chunking[field]:
            return f"{key} {chunking[field]!r}, not {given!r}"
    return ""


# Checked on their own by open_or_create (model name, prompts) or not settings (name, description).
_UNCOMPARED = frozenset({"name", "description", "model", "query_prompt", "document_prompt"})


def _search_profile(manifest: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """(stored profile, model weight) as searches plan with them. A collection made by session 20's slimvec kept
    its model's weights [w, 1.0] in its profile, marked "fusion_weights_from_model": they are read as the model
    weight w, so they apply as a later collection's do, to softmax fusion of dense + BM25 only (as profile
    weights, a search's fusion="weighted" min-max fused with the weights measured for softmax)."""
    prof = manifest.get("profile") or {}
    weights = prof.get("fusion_weights")
    if manifest.get("fusion_weights_from_model") and isinstance(weights, list) and weights:
        return {**prof, "fusion_weights": None}, float(weights[0])
    return prof, manifest.get("model_fusion_weight")


def _model_pair(profile: dict[str, Any], model_weight: float | None) -> list[float] | None:
    """The fusion weights a model's `model_weight` gives a stored profile's own fused mode (None when none)."""
    return model_fusion_weights(stored_fusion(profile), FUSED_MODES.get(profile.get("mode"), ()), model_weight)


def _key(weights: Any) -> tuple[float, ...] | None:
    """Fusion weights as a hashable tuple of floats (None stays None): a list, tuple or JSON array compare alike."""
    return None if weights is None else tuple(float(w) for w in weights)


def _profile_fields_differ(stored: dict[str, Any], chosen: Profile, options: dict[str, Any],
                           model_pair: list[float] | None = None, chunking: dict[str, Any] | None = None) -> str:
    """The first field `chosen` sets whose value differs from the stored profile's ("field stored, not given"), or
    "" when none does; fields also given as options (which override the profile at creation) are skipped, and so
    are fusion_weights that are the model's own (`model_pair`) or None on one side and the model's on the other
    (both fuse with the model's weights)."""
    try:
        kept = recorded_profile(stored, chunking, source="stored profile").model_dump(mode="json")
    except ConfigError:  # a stored profile this slimvec no longer reads as one: compared by name only
        return ""
    given = chosen.model_dump(mode="json")
    if isinstance(given.get("rerank"), str):  # stored pinned (`pinned_spec`): a relative directory compares alike
        try:
            given["rerank"] = pinned_spec(given["rerank"])
        except ConfigError:
            pass  # a spec that no longer parses differs, and says so below
    if kept.get("fusion_weights") is None and model_pair is not None:
        kept["fusion_weights"] = list(model_pair)  # what its searches use, and what the message should name
    for field in sorted(chosen.model_fields_set - _UNCOMPARED):
        if field == "fusion_weights" and model_pair is not None and \
                {_key(given[field]), _key(kept.get(field))} <= {None, _key(model_pair)}:
            continue
        if options.get(field) is None and given[field] != kept.get(field):
            return f"{field} {kept.get(field)!r}, not {given[field]!r}"
    return ""
