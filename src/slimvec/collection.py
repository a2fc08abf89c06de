"""The public facade: create or open a collection, add, upsert, delete, search, info."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.chunking import ChunkConfig, chunk_document, chunk_text
from slimvec.documents import Chunk, Document, Hit
from slimvec.encoders.base import Encoder
from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder
from slimvec.errors import CollectionError, ConfigError, IngestError
from slimvec.index.filters import compile_filter
from slimvec.pipeline import RETRIEVERS, Query, Retriever, doc_ranking, retrievers_for
from slimvec.profiles import Profile, load_profile, profile_from_dict
from slimvec.progress import progress_bar
from slimvec.rerank import DEFAULT_DEPTH, MAX_DEPTH, MAX_TEXT_CHUNKS, Candidates, Reranker, load_reranker, rerank
from slimvec.store import Store
from slimvec import calibration as _calibration
from slimvec.fusion import fuse as _fuse_rankings
from slimvec.fusion import fusion_depth

# Imported for their registrations: the "bm25" and "sparse" retrievers and search modes.
import slimvec.index.bm25  # noqa: E402,F401
import slimvec.index.inverted  # noqa: E402,F401

INDEX_KINDS = ("exact", "hnsw", "ivf")
MAX_K = 10_000
_BATCH_DOCS = 512  # documents per commit when adding from an iterator


class Collection:
    """A persistent, searchable set of documents in one directory."""

    def __init__(self, store: Store, encoder: Encoder | None = None) -> None:
        self.store = store
        self.path = store.path
        self._encoder = encoder
        self._lock = threading.RLock()
        self._retrievers: dict[str, Retriever] = {}
        self._alive = np.zeros(0, dtype=bool)
        self._row_doc = np.zeros(0, dtype=np.int32)  # row -> document number (-1: deleted)
        self._doc_ids: list[str] = []  # document number -> id (numbers are never reused in a process)
        self._numbers: dict[str, int] = {}
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
        unknown = [r for r in prof.retrievers if r not in RETRIEVERS]
        if unknown:
            raise ConfigError(f"unknown retriever {unknown[0]!r}: choose from {', '.join(sorted(RETRIEVERS))}")
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
    def search(self, query: str, k: int = 10, filter: dict[str, Any] | None = None, mode: str = "dense",
               min_relevance: float | str | None = None, rerank: str | Reranker | None = None,
               rerank_depth: int | None = None, with_payload: bool = True, fusion: str | None = None,
               fusion_weights: list[float] | None = None) -> list[Hit]:
        """The top `k` documents for `query`, each scored by its best chunk (calibrated hits below min_relevance, a probability or "auto", dropped).

        `fusion` ("rrf" or "weighted") and `fusion_weights` (one per retriever of the mode) override the
        profile's way of merging a hybrid mode's rankings.
        `with_payload=False` returns ids and scores only (title, snippet and metadata left empty), skipping the
        document look-ups, as Qdrant's option of the same name does.

        `rerank`: None uses the profile's reranker (if any), "none" turns it off, a spec such as "dense",
        "bi-encoder:MODEL" or "cross-encoder:PATH" (or a Reranker object) overrides it; the reranker rescores
        the first stage's top max(k, rerank_depth) documents (default: the profile's depth, 50).
        """
        return self.search_many([query], k=k, filter=filter, mode=mode, min_relevance=min_relevance,
                                rerank=rerank, rerank_depth=rerank_depth, with_payload=with_payload,
                                fusion=fusion, fusion_weights=fusion_weights)[0]

    def search_many(
        self, queries: list[str], k: int = 10, filter: dict[str, Any] | None = None, mode: str = "dense",
        min_relevance: float | str | None = None, vectors: np.ndarray | None = None,
        rerank: str | Reranker | None = None, rerank_depth: int | None = None, with_payload: bool = True,
        fusion: str | None = None, fusion_weights: list[float] | None = None,
    ) -> list[list[Hit]]:
        """`search` for several queries; dense query vectors are encoded in one batch (or given as `vectors`)."""
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ConfigError("query is empty")
        _check_k(k)
        names = retrievers_for(mode, self.manifest.get("retrievers", ["dense"]))
        reranker, depth = self._reranker_for(rerank, rerank_depth)
        fuse = self._fusion_for(names, fusion, fusion_weights)
        if min_relevance is not None and (fusion is not None or fusion_weights is not None) and len(names) > 1:
            raise ConfigError("min_relevance is calibrated on the profile's fusion; it cannot be combined with a "
                              "fusion override")
        if reranker is not None and min_relevance is not None:
            raise ConfigError(f"min_relevance is calibrated on first-stage {mode!r} scores and cannot be combined with "
                              f"reranking ({reranker.name}); pass rerank='none' to use it")
        vecs = vectors
        if vecs is None and ("dense" in names or (reranker is not None and reranker.needs_vectors)):
            vecs = self.encoder.encode_queries(list(queries))
        return self._run([Query(q, None, None if vecs is None else vecs[i]) for i, q in enumerate(queries)],
                         k, filter, names, mode, min_relevance, reranker, depth, with_payload, fuse)

    def search_vectors(self, qvecs: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None) -> list[list[Hit]]:
        """Dense-only document hits for already-encoded query vectors of the collection's dimension."""
        _check_k(k)
        qvecs = np.asarray(qvecs, dtype=np.float32)
        if qvecs.ndim == 1:
            qvecs = qvecs[None, :]
        if qvecs.ndim != 2 or qvecs.shape[1] != int(self.manifest["dim"]):
            raise ConfigError(f"query vectors have dimension {qvecs.shape[-1]}, collection holds {self.manifest['dim']}")
        return self._run([Query("", None, v) for v in qvecs], k, filter, ("dense",))

    def _run(self, queries: list[Query], k: int, filter: dict[str, Any] | None, names: tuple[str, ...],
             mode: str | None = None, min_relevance: float | str | None = None, reranker: Reranker | None = None,
             rerank_depth: int = DEFAULT_DEPTH, with_payload: bool = True,
             fuse: dict[str, Any] | None = None) -> list[list[Hit]]:
        # With a reranker the first stage fetches max(k, depth) documents and the reranker keeps k of them.
        first = k if reranker is None else max(k, rerank_depth)
        with self._lock:
            self._sync()
            allowed = self._allowed(filter)
            n_allowed = int(allowed.sum())
            tops = []
            for n in names:  # retrievers that encode queries themselves (sparse) do it in one batch
                prepare = getattr(self._retrievers[n], "prepare", None)
                if prepare is not None:
                    prepare([q.text for q in queries])
            for q in queries:
                depth = fusion_depth(first, len(names))
                rankings = [doc_ranking(self._retrievers[n], q, depth, allowed, n_allowed, self._row_doc) for n in names]
                top = rankings[0] if len(rankings) == 1 else _fuse_rankings(rankings, first, **(fuse or {}))
                if reranker is not None:
                    top = self._rerank(reranker, q, top, k, allowed)
                tops.append(top)
            results = self._hits(tops, with_payload)
            # Calibrators are fitted on first-stage scores: reranked scores get no relevance.
            if reranker is None and mode is not None and (min_relevance is not None or mode in self._calibrators):
                results = [_calibration.apply(self._calibrators.get(mode), h, min_relevance, mode) for h in results]
            return results

    # ---- reranking -------------------------------------------------------------------------
    _rerank_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (row_doc it was built from, rows, docs)
    _rerank_file: tuple[np.ndarray, np.ndarray] | None = None  # (row_doc it was opened for, float32 memmap)

    def _reranker_for(self, spec: str | Reranker | None, depth: int | None) -> tuple[Reranker | None, int]:
        """The reranker and depth a search uses: the arguments, else the profile's; "none" turns reranking off."""
        prof = self.manifest.get("profile") or {}
        chosen = prof.get("rerank") if spec is None else spec
        depth = int(prof.get("rerank_depth", DEFAULT_DEPTH)) if depth is None else depth
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
            raise ConfigError(f"rerank_depth must be an integer between 1 and {MAX_DEPTH}, got {depth!r}")
        if chosen is None:
            return None, depth
        reranker = load_reranker(chosen) if isinstance(chosen, str) else chosen
        if reranker is not None and reranker.needs_vectors and not int(self.manifest["dim"]):
            raise ConfigError(f"reranker {reranker.name!r} needs dense vectors; this collection keeps none "
                              f"(retrievers: {', '.join(self.manifest.get('retrievers', []))})")
        return reranker, depth

    def _rows_by_doc(self) -> tuple[np.ndarray, np.ndarray]:
        """Chunk rows sorted by document number, and those numbers: a document's rows by binary search."""
        cached = self._rerank_rows
        if cached is None or cached[0] is not self._row_doc:  # rebuilt once per sync, not per query
            order = np.argsort(self._row_doc, kind="stable")
            cached = self._rerank_rows = (self._row_doc, order, self._row_doc[order])
        return cached[1], cached[2]

    def _float32_rows(self) -> np.ndarray:
        """The committed float32 vector file as a memmap (only the rows a reranker reads are paged in)."""
        cached = self._rerank_file
        if cached is None or cached[0] is not self._row_doc:
            cached = self._rerank_file = (self._row_doc, self.store.vectors(len(self._row_doc)))
        return cached[1]

    def _rerank(self, reranker: Reranker, q: Query, top: list[tuple[int, float, int]], k: int,
                allowed: np.ndarray) -> list[tuple[int, float, int]]:
        """Rescore first-stage documents with `reranker` over their allowed chunk rows; the top k remain."""
        if not top:
            return []
        rows_sorted, docs_sorted = self._rows_by_doc()
        docs = np.array([d for d, _, _ in top], dtype=np.int64)
        best = np.array([r for _, _, r in top], dtype=np.int64)
        lo = np.searchsorted(docs_sorted, docs, side="left")
        lens = np.searchsorted(docs_sorted, docs, side="right") - lo
        # Every row of every candidate in one array (no Python loop per document), owner = candidate index.
        owner = np.repeat(np.arange(len(top)), lens)
        rows = rows_sorted[np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens - lo, lens)]
        keep = allowed[rows] & (rows != best[owner])
        # The first-stage best chunk first in each candidate, then the others in row (= document) order.
        owner = np.concatenate([np.arange(len(top)), owner[keep]])
        rows = np.concatenate([best, rows[keep]])
        order = np.argsort(owner, kind="stable")
        owner, rows = owner[order], rows[order]
        counts = np.bincount(owner, minlength=len(top))
        texts = None
        if reranker.needs_text:
            capped = np.arange(len(rows)) - (np.cumsum(counts) - counts)[owner] < MAX_TEXT_CHUNKS
            info = self.store.chunks_for_rows(rows[capped].tolist())
            # a row deleted by another process since the last sync is simply left out
            capped &= np.fromiter((r in info for r in rows.tolist()), dtype=bool, count=len(rows))
            owner, rows = owner[capped], rows[capped]
            counts = np.bincount(owner, minlength=len(top))
            texts = [chunk_text(info[r].title, info[r].text) for r in rows.tolist()]
        cands = Candidates(docs[counts > 0], counts[counts > 0], rows, texts)
        if reranker.needs_vectors and len(rows):
            uniq, inverse = np.unique(rows, return_inverse=True)  # file order: pages are read front to back
            cands.vectors = np.asarray(self._float32_rows()[uniq], dtype=np.float32)[inverse]
        return rerank(reranker, q, cands, k)

    def _fusion_for(self, names: tuple[str, ...], method: str | None,
                    weights: list[float] | None) -> dict[str, Any]:
        """Options for `fusion.fuse`: the arguments, else the profile's (default: reciprocal rank fusion)."""
        prof = self.manifest.get("profile") or {}
        method = method or prof.get("fusion", "rrf")
        if method not in ("rrf", "weighted"):
            raise ConfigError(f"unknown fusion {method!r}: choose rrf or weighted")
        if method == "rrf":
            if weights:
                raise ConfigError("fusion weights apply to fusion='weighted', not rrf")
            return {"method": "rrf"}
        weights = weights if weights is not None else prof.get("fusion_weights")
        if weights is not None and len(names) > 1 and len(weights) != len(names):
            raise ConfigError(f"{len(weights)} fusion weights for the {len(names)} retrievers of this mode "
                              f"({', '.join(names)})")
        return {"method": "weighted", "weights": None if weights is None else [float(w) for w in weights]}

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

    def _hits(self, tops: list[list[tuple[int, float, int]]], with_payload: bool = True) -> list[list[Hit]]:
        """Hits for each query's (doc number, score, row) ranking; chunk and document fields in one look-up."""
        if not with_payload:
            ids = self._doc_ids
            return [[Hit(ids[d], s, "", "", {}) for d, s, _ in top] for top in tops]
        info = self.store.chunks_for_rows([r for top in tops for _, _, r in top])
        out = []
        for top in tops:
            hits = []
            for _, s, r in top:
                c = info[r]
                hits.append(Hit(c.doc_id, s, c.title, c.text, c.metadata, c.start, c.end))
            out.append(hits)
        return out

    def _allowed(self, filter: dict[str, Any] | None) -> np.ndarray:
        if not filter:
            return self._alive
        where, params = compile_filter(filter)
        mask = np.zeros_like(self._alive)
        mask[self.store.filtered_rows(where, params)] = True
        return mask

    # ---- in-memory state -------------------------------------------------------------------
    def _sync(self) -> None:
        """Catch up with commits made since the last look (by this or another process)."""
        gen = self.store.generation
        if gen == self._generation and self._retrievers:
            return
        for name in self.manifest.get("retrievers", ["dense"]):
            if name not in self._retrievers:
                if name not in RETRIEVERS:
                    raise CollectionError(f"{self.path}: collection uses the {name!r} index, unknown to this slimvec")
                self._retrievers[name] = RETRIEVERS[name](self.store, lambda: self.encoder)
            self._retrievers[name].sync(self.store)
        self._row_doc = self._row_map(self.store.committed_rows)
        self._alive = self._row_doc >= 0
        self._generation = gen

    def _row_map(self, rows: int) -> np.ndarray:
        """Row -> document number for `rows` committed rows, reading only what changed since the last sync.

        Rows are append-only and never reused, so known rows keep their document; new rows are read, and
        known rows are re-listed (row numbers only) only when some were deleted. A full read happens once.
        """
        db, old = self.store.db, len(self._row_doc)
        row_doc = np.full(rows, -1, dtype=np.int32)
        if self._generation < 0 or rows < old:
            self._numbers: dict[str, int] = {}
            self._doc_ids, old = [], 0
        elif old:
            (alive,) = db.execute("SELECT count(*) FROM chunks WHERE row < ?", (old,)).fetchone()
            row_doc[:old] = self._row_doc
            if alive != int(np.count_nonzero(self._alive)):
                kept = np.zeros(old, dtype=bool)
                kept[np.fromiter((r for (r,) in db.execute("SELECT row FROM chunks WHERE row < ?", (old,))),
                                 dtype=np.int64)] = True
                row_doc[:old][~kept] = -1
        numbers, ids = self._numbers, self._doc_ids
        for row, doc_id in db.execute("SELECT row, doc_id FROM chunks WHERE row >= ?", (old,)):
            n = numbers.get(doc_id)
            if n is None:
                n = numbers[doc_id] = len(ids)
                ids.append(doc_id)
            row_doc[row] = n
        return row_doc

    def _save_index(self) -> None:
        for r in self._retrievers.values():
            r.save(self.path / "index")

    # ---- reporting -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts, model, dimensions, and bytes on disk and resident in RAM (total and per document)."""
        with self._lock:
            self._sync()
            counts = self.store.counts()
            disk = self.store.disk_bytes()
            ram = sum(r.ram_bytes() for r in self._retrievers.values()) + self._alive.nbytes + self._row_doc.nbytes
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
    unknown = [n for n in names if n not in RETRIEVERS]
    if unknown:
        raise ConfigError(f"unknown retriever {unknown[0]!r}: choose from {', '.join(sorted(RETRIEVERS))}")
    return sorted(names, key=lambda n: n != "dense")


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")


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
