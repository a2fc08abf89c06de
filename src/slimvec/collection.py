"""The public facade: create or open a collection, add, upsert, delete, search, info."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from slimvec import registry
from slimvec.chunking import ChunkConfig, chunk_document, chunk_text
from slimvec.documents import Chunk, Document, Hit
from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder
from slimvec.errors import CollectionError, ConfigError, IngestError
from slimvec.profiles import Profile, load_profile, profile_from_dict
from slimvec.progress import progress_bar
from slimvec.retrievers.base import Query, Retriever, describe
from slimvec.search import calibration as _calibration
from slimvec.search.options import SearchOptions
from slimvec.search.plan import make_plan
from slimvec.search.rerank import Reranker
from slimvec.search.run import Runner
from slimvec.store import Store
from slimvec.store.rowmap import RowMap

INDEX_KINDS = ("exact", "hnsw", "ivf")
_BATCH_DOCS = 512  # documents per commit when adding from an iterator


class Collection:
    """A persistent, searchable set of documents in one directory."""

    def __init__(self, store: Store, encoder: Encoder | None = None) -> None:
        self.store = store
        self.path = store.path
        self._encoder = encoder
        self._lock = threading.RLock()
        self._retrievers: dict[str, Retriever] = {}
        self._rows = RowMap()  # row -> document number, kept in step with the store
        self._runner = Runner(store)
        self._generation = -1
        self._calibrators = _calibration.load_calibrators(self.path)
        if encoder is not None:
            self._check_encoder(encoder)

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
        profile: str | Profile | None = None,
        retrievers: list[str] | None = None,
        encoder: Encoder | None = None,
    ) -> "Collection":
        """Create an empty collection at `path`; explicit options override the profile's (default exact-f32)."""
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        overrides = {k: v for k, v in {"model": model, "index": index, "chunk_tokens": chunk_tokens,
                                       "chunk_overlap": chunk_overlap, "chunk_mode": chunk_mode,
                                       "retrievers": tuple(retrievers) if retrievers else None}.items() if v is not None}
        if overrides:
            prof = profile_from_dict({**prof.model_dump(), **overrides}, source="options")
        if prof.index not in INDEX_KINDS:
            raise ConfigError(f"unknown index {prof.index!r}: choose one of {', '.join(INDEX_KINDS)}")
        _retriever_names(list(prof.retrievers))  # unknown names fail here, before anything is written
        enc = encoder or load_encoder(prof.model or DEFAULT_MODEL)
        limit = enc.max_tokens
        tokens = prof.chunk_tokens or limit
        if tokens > limit:
            raise ConfigError(f"chunk tokens {tokens} exceed the model's maximum of {limit}")
        chunking = ChunkConfig(max_tokens=tokens, overlap=min(prof.chunk_overlap, tokens // 2 - 1), mode=prof.chunk_mode)
        manifest = {
            "model": enc.name,
            "kind": enc.kind,
            "dim": int(enc.dim) if prof.dense else 0,
            "index": prof.index,
            "retrievers": list(prof.retrievers),
            "profile": prof.model_dump(mode="json"),
            "chunking": {"max_tokens": chunking.max_tokens, "overlap": chunking.overlap, "mode": chunking.mode},
        }
        if prof.bm25:
            manifest["bm25"] = prof.bm25
        store = Store.create(Path(path), manifest)
        return cls(store, enc)

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None) -> "Collection":
        """Open an existing collection; its model loads on first use."""
        return cls(Store.open(Path(path)), encoder)

    @classmethod
    def open_or_create(cls, path: str | Path, model: str | None = None, **options: Any) -> "Collection":
        """Open `path` if it holds a collection (refusing a different model), else create it."""
        p = Path(path)
        if (p / "manifest.json").exists():
            col = cls.open(p)
            if model is not None:
                col._check_encoder(load_encoder(model))
            return col
        return cls.create(p, model=model, **options)

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
        return self.store.manifest

    @property
    def encoder(self) -> Encoder:
        """The collection's model, loaded on first use."""
        if self._encoder is None:
            self._encoder = load_encoder(self.manifest["model"])
            self._check_encoder(self._encoder)
        return self._encoder

    @property
    def chunking(self) -> ChunkConfig:
        return ChunkConfig(**self.manifest["chunking"])

    def _check_encoder(self, enc: Encoder) -> None:
        m = self.manifest
        if enc.name != m["model"]:
            raise CollectionError(
                f"{self.path}: collection was built with model {m['model']!r}, not {enc.name!r}; "
                "models cannot be mixed in one collection"
            )
        if int(m["dim"]) and int(enc.dim) != int(m["dim"]):
            raise CollectionError(f"{self.path}: model gives {enc.dim}-d vectors, collection holds {m['dim']}-d")

    # ---- writing ---------------------------------------------------------------------------
    def add(self, docs: Iterable[Document], progress: bool = False) -> int:
        """Add new documents; an id already stored is an error and nothing from that batch is stored."""
        return self._write(docs, replace=False, progress=progress)

    def upsert(self, docs: Iterable[Document], progress: bool = False) -> int:
        """Add documents, replacing any stored document (and its chunks) with the same id."""
        return self._write(docs, replace=True, progress=progress)

    def _write(self, docs: Iterable[Document], replace: bool, progress: bool) -> int:
        total = 0
        known = len(docs) if isinstance(docs, (list, tuple)) else 0
        with progress_bar("indexing documents", known, enabled=progress) as advance:
            for batch in _batches(docs, _BATCH_DOCS):
                total += self._write_batch(batch, replace, progress=False)
                advance(len(batch))
        return total

    def _write_batch(self, docs: list[Document], replace: bool, progress: bool) -> int:
        docs = _validated(docs, replace)
        if not docs:
            return 0
        enc = self.encoder
        chunks = self._chunk(docs, enc)
        texts = [chunk_text(d.title, c.text) for d in docs for c in chunks[d.id]]
        dim = int(self.manifest["dim"])
        vectors = enc.encode_documents(texts, progress=progress) if dim else np.zeros((len(texts), 0), np.float32)
        flat = [c for d in docs for c in chunks[d.id]]
        with self._lock, self.store.writer():
            if not replace:
                clash = self.store.existing_ids([d.id for d in docs])
                if clash:
                    raise IngestError(f"document id {sorted(clash)[0]!r} is already stored (use upsert to replace it)")
            self.store.commit(docs, flat, vectors, replace=replace)
            self._sync()
            self._save_index()
        return len(docs)

    def _chunk(self, docs: list[Document], enc: Encoder) -> dict[str, list[Chunk]]:
        cfg = self.chunking
        out = {}
        for d in docs:
            title_tokens = len(enc.token_spans(d.title)) + 1 if d.title else 0
            room = max(8, cfg.max_tokens - title_tokens)
            out[d.id] = chunk_document(d, enc, ChunkConfig(room, min(cfg.overlap, room // 2 - 1), cfg.mode))
        return out

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed. Unknown ids are ignored."""
        ids = [str(i) for i in ids]
        with self._lock, self.store.writer():
            n = self.store.delete(ids)
            self._sync()
        return n

    # ---- searching -------------------------------------------------------------------------
    def search(self, query: str, options: SearchOptions | None = None, /, *,
               rerank: str | Reranker | None = None, **fields: Any) -> list[Hit]:
        """The top `k` documents for `query`, each scored by its best chunk, best first.

        Options are the fields of `slimvec.search.SearchOptions`, given as keywords or as one object:
        k (default 10, at most 1,000), filter, mode (default: the profile's), min_relevance (a probability or
        "auto": calibrated hits below it dropped), rerank ("none", a spec such as "dense", "bi-encoder:MODEL",
        "cross-encoder:PATH", or a Reranker object; default: the profile's), rerank_depth, fusion ("rrf" or
        "weighted") and fusion_weights (one per retriever of the mode), with_payload (False: ids and scores
        only, as Qdrant's option of the same name).

        Scores: inner products for dense modes (cosine for unit vectors, in [-1, 1]), BM25 or SPLADE scores,
        or fused scores; equal scores are ordered by the tie rule of `slimvec.scoring`.
        Raises ConfigError for an empty query or a bad option (one line naming it), FilterError for a bad filter.
        """
        return self.search_many([query], options, rerank=rerank, **fields)[0]

    def search_many(self, queries: list[str], options: SearchOptions | None = None, /, *,
                    vectors: np.ndarray | None = None, rerank: str | Reranker | None = None,
                    **fields: Any) -> list[list[Hit]]:
        """`search` for several queries; dense query vectors are encoded in one batch (or given as `vectors`,
        float32 of shape (len(queries), dim))."""
        if isinstance(queries, str) or not isinstance(queries, (list, tuple)):
            raise TypeError(f"queries must be a list of strings, not {type(queries).__name__}")
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ConfigError("query is empty")
        given = None
        if rerank is not None and not isinstance(rerank, str):
            given = rerank  # a Reranker object from Python code: not a serialisable option
        elif rerank is not None:
            fields["rerank"] = rerank
        opts = SearchOptions.of(options, **fields)
        plan = make_plan(self.manifest.get("profile") or {}, self.manifest.get("retrievers", ["dense"]),
                         int(self.manifest["dim"]), opts, frozenset(self._calibrators), given)
        vecs = vectors
        if vecs is None and plan.needs_query_vectors:
            vecs = self.encoder.encode_queries(list(queries))
        batch = [Query(q, None, None if vecs is None else vecs[i]) for i, q in enumerate(queries)]
        with self._lock:
            self._sync()
            return self._runner.run(plan, batch, self._retrievers, self._rows, self._allowed(plan.filter),
                                    self._calibrators)

    def search_vectors(self, qvecs: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None) -> list[list[Hit]]:
        """Dense-only document hits for already-encoded query vectors, float32 of shape (n, dim) or (dim,)."""
        opts = SearchOptions.of(k=k, filter=filter, mode="dense", rerank="none")
        qvecs = np.asarray(qvecs, dtype=np.float32)
        if qvecs.ndim == 1:
            qvecs = qvecs[None, :]
        if qvecs.ndim != 2 or qvecs.shape[1] != int(self.manifest["dim"]):
            raise ConfigError(f"query vectors have dimension {qvecs.shape[-1]}, collection holds {self.manifest['dim']}")
        plan = make_plan({}, self.manifest.get("retrievers", ["dense"]), int(self.manifest["dim"]), opts)
        with self._lock:
            self._sync()
            return self._runner.run(plan, [Query("", None, v) for v in qvecs], self._retrievers, self._rows,
                                    self._allowed(plan.filter), {})

    # ---- optional retrievers and calibration -----------------------------------------------
    def enable(self, name: str, sparse_model: str | None = None) -> None:
        """Start maintaining retriever `name` (e.g. "bm25", "sparse"), building it from the stored rows.

        `sparse_model`: for "sparse", "splade-tiny" (the default, bundled) or a local SPLADE model directory.
        """
        updates: dict[str, Any] = {}
        if sparse_model is not None:
            if name != "sparse":
                raise ConfigError(f"sparse_model applies to the 'sparse' retriever, not {name!r}")
            from slimvec.encoders.sparse import SPLADE_TINY, load_sparse_encoder

            load_sparse_encoder(sparse_model)  # fails here, naming the directory, before anything is written
            updates["sparse_model"] = sparse_model if sparse_model == SPLADE_TINY else str(Path(sparse_model).resolve())
        with self._lock, self.store.writer():
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
            self._save_index()

    @property
    def calibrators(self) -> dict[str, "_calibration.Calibrator"]:
        """Relevance calibrators by search mode (from calibration.json)."""
        return dict(self._calibrators)

    def set_calibrator(self, mode: str, calibrator: "_calibration.Calibrator") -> None:
        """Store `mode`'s calibrator in calibration.json (atomically) and use it from now on."""
        with self._lock:
            self._calibrators = {**self._calibrators, mode: calibrator}
            _calibration.save_calibrators(self.path, self._calibrators)

    def _allowed(self, filter: dict[str, Any] | None) -> np.ndarray:
        """(rows,) bool mask of the rows a hit may come from: alive, and inside the filter when there is one."""
        if not filter:
            return self._rows.alive
        mask = np.zeros_like(self._rows.alive)
        mask[self.store.rows_matching(filter)] = True
        return mask

    # ---- in-memory state -------------------------------------------------------------------
    def _sync(self) -> None:
        """Catch up with commits made since the last look (by this or another process)."""
        gen = self.store.generation
        if gen == self._generation and self._retrievers:
            return
        for name in self.manifest.get("retrievers", ["dense"]):
            if name not in self._retrievers:
                if not registry.has("retriever", name):
                    raise CollectionError(f"{self.path}: collection uses the {name!r} index, unknown to this slimvec")
                self._retrievers[name] = registry.load("retriever", name)(self.store, lambda: self.encoder)
            self._retrievers[name].sync(self.store)
        if self._generation < 0:
            self._rows.reset()
        self._rows.update(self.store)
        self._generation = gen

    def _save_index(self) -> None:
        for r in self._retrievers.values():
            r.save(self.path / "index")

    # ---- reporting -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts, model, dimensions, bytes on disk and resident in RAM (total and per document), and
        "indexes": {retriever name: what it built} (see retrievers.base.describe), e.g.
        {"dense": {"kind": "ivf", "codec": "binary", "nlist": 4, "nprobe": 4, "fitted_rows": 300, ...}}."""
        with self._lock:
            self._sync()
            counts = self.store.counts()
            disk = self.store.disk_bytes()
            ram = sum(r.ram_bytes() for r in self._retrievers.values()) + self._rows.nbytes
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
                **counts,
                "disk_bytes": disk,
                "ram_bytes": ram,
                "disk_bytes_per_doc": disk / per if counts["documents"] else 0.0,
                "ram_bytes_per_doc": ram / per if counts["documents"] else 0.0,
                "indexes": {name: describe(r) for name, r in self._retrievers.items()},
            }

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or None."""
        d = self.store.get_document(doc_id)
        return None if d is None else Document(d["id"], d["text"], d["title"], d["metadata"])

    def __len__(self) -> int:
        return self.store.counts()["documents"]

    def check(self) -> list[str]:
        """Integrity problems (empty when healthy)."""
        return self.store.check()


def _retriever_names(names: list[str] | None) -> list[str]:
    """Validated retriever names without repeats, "dense" first when present."""
    names = list(dict.fromkeys(names or ["dense"]))
    unknown = [n for n in names if not registry.has("retriever", n)]
    if unknown:
        raise ConfigError(f"unknown retriever {unknown[0]!r}: choose from {', '.join(registry.names('retriever'))}")
    return sorted(names, key=lambda n: n != "dense")


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for d in docs:
        batch.append(d)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _validated(docs: list[Document], replace: bool) -> list[Document]:
    """Check types, JSON-ability and duplicate ids before anything is encoded or stored."""
    seen: dict[str, int] = {}
    out = []
    for i, d in enumerate(docs):
        if not isinstance(d, Document):
            raise IngestError(f"item {i}: expected a slimvec.Document, got {type(d).__name__}")
        try:
            json.dumps(d.metadata, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise IngestError(f"document {d.id!r}: metadata is not JSON-serialisable ({e})") from None
        if d.id in seen:
            if not replace:
                raise IngestError(f"document id {d.id!r} appears twice in one batch (items {seen[d.id]} and {i})")
            out[seen[d.id]] = d  # upsert: the last version wins
            continue
        seen[d.id] = len(out)
        out.append(d)
    return out
