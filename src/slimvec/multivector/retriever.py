"""Late-interaction search over a collection: any first stage gives candidate chunk rows, exact MaxSim over
their token vectors (read from the token file, or decoded from its codes) reranks them.

`MultiVectorRetriever` is the registered "multivector" retriever (`build`): the collection binds it to the
retriever its profile names as `candidates` (dense codes, BM25, ...), so a search mode `multivector` is
"candidates, then MaxSim". `MaxSimReranker` is the registered "maxsim" reranker: it scores any first stage's
candidates with the same token file. Both need the query's token vectors: `query_tokens(query, encoder)`
computes them once per query (in the same forward pass as the dense query vector for `minilm-tokens`) and
caches them on the query object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.errors import CollectionError, ConfigError
from slimvec.multivector.maxsim import gather, maxsim_rows, maxsim_scores
from slimvec.multivector.tokenstore import TokenStore

DEFAULT_DEPTH = 100
TOKENS_DIR = "tokens"  # the token file's directory inside a collection


def keeps_tokens(manifest: dict[str, Any]) -> bool:
    """Whether a collection with this manifest stores token vectors (writes and compaction copy them): only MaxSim
    (the "multivector" retriever, never added later by `enable`) reads them. A MUVERA profile without it encodes
    tokens for its FDEs and stores none."""
    return "multivector" in manifest.get("retrievers", ["dense"])


def query_tokens(query: Any, encoder: Any) -> np.ndarray:
    """(q, dim) float32 token vectors of `query` (a retrievers.base.Query), computed once and kept on the query.

    When the encoder offers `encode_queries_with_tokens` and the query has no dense vector yet, both come
    from one forward pass and the dense vector is stored on the query too.
    """
    cached = getattr(query, "_tokens", None)
    if cached is not None:
        return cached
    both = getattr(encoder, "encode_queries_with_tokens", None)
    if both is not None and getattr(query, "_vector", None) is None:
        dense, toks = both([query.text])
        query._vector = dense[0]
        tokens = toks[0]
    else:
        tokens = encoder.encode_query_tokens([query.text])[0]
    query._tokens = np.ascontiguousarray(tokens, dtype=np.float32)
    return query._tokens


class MultiVectorRetriever:
    """First-stage candidates (`depth` chunk rows) reranked by exact MaxSim over the token file.

    first_stage: any object with the Retriever protocol (dense, compressed dense, BM25...), or None until
    `bind` picks the collection's retriever named `candidates`. tokens: the collection's TokenStore, or the
    path of its directory (opened once rows are committed; the collection writes it at commit time, this
    class only reads). encoder: a multi-vector encoder (`encode_query_tokens`), or a function returning one
    (loaded on first use). Scores are MaxSim sums (float32).
    """

    name = "multivector"

    def __init__(self, first_stage: Any, tokens: TokenStore | Path, encoder: Any, depth: int = DEFAULT_DEPTH,
                 candidates: str = "dense", rescore: int = 0) -> None:
        self.first_stage, self.depth, self.candidates, self.rescore = first_stage, depth, candidates, rescore
        self.float_store: TokenStore | None = None  # float16 copy of coded tokens (rescore > 0)
        self.token_store = tokens if isinstance(tokens, TokenStore) else None
        self._path = tokens.path if isinstance(tokens, TokenStore) else Path(tokens)
        self._encoder = encoder if hasattr(encoder, "encode_query_tokens") else None
        self._get_encoder: Callable[[], Any] | None = None if self._encoder is not None else encoder
        self._broken: str | None = None  # why the token file cannot serve the committed rows (set by sync)
        self._bound = False  # True once the first stage is the collection's own retriever (synced, saved there)
        self._committed = 0
        self._offsets = np.zeros(1, np.int64)  # token boundaries of the committed rows, kept in RAM (8 B/row)
        self._tokens = np.zeros((0, 0), np.float16)  # memmap of the committed token rows
        self._floats = np.zeros((0, 0), np.float16)  # memmap of their float16 copy (rescore > 0)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            assert self._get_encoder is not None
            self._encoder = self._get_encoder()
        return self._encoder

    def bind(self, retrievers: Mapping[str, Any]) -> None:
        """Use the collection's retriever named `candidates` as the first stage (the collection syncs it)."""
        if self.candidates not in retrievers or retrievers[self.candidates] is self:
            raise ConfigError(f"multivector candidates {self.candidates!r} is not a retriever of this collection "
                              f"(it keeps: {', '.join(retrievers)})")
        self.first_stage = retrievers[self.candidates]
        self._bound = True

    @property
    def rows(self) -> int:
        return min(self.first_stage.rows, self._committed) if self.first_stage is not None else self._committed

    def sync(self, store: Any) -> None:
        """Catch up with the store's committed rows (the first stage too, unless the collection syncs it).

        A token file missing committed rows (damage: the write path appends tokens before the commit point) is
        recorded, not raised here, so `check` can report it; searching then raises CollectionError."""
        if self.first_stage is not None and not self._bound:
            self.first_stage.sync(store)
        rows = store.committed_rows
        self._broken = None
        if self.token_store is None:
            if not (self._path / "meta.json").exists():
                if rows:
                    self._broken = f"{self._path}: token file missing, {rows} rows committed (run `slimvec check`)"
                return
            self.token_store = TokenStore.open(self._path)
        if self.rescore and self.float_store is None:
            self.float_store = TokenStore.open(self._path / "float16")
        short = [ts for ts in (self.token_store, self.float_store) if ts is not None and ts.rows < rows]
        if short:
            self._broken = (f"{short[0].path}: token file holds {short[0].rows} rows, {rows} "
                            "committed (run `slimvec check`; re-add the missing documents)")
            return
        if self.token_store.rows < rows:
            self._broken = (f"{self.token_store.path}: token file holds {self.token_store.rows} rows, {rows} "
                            "committed (run `slimvec check`; re-add the missing documents)")
            return
        if rows != self._committed:
            self._offsets = self.token_store.offsets(rows)
            self._tokens = self.token_store.token_rows(int(self._offsets[-1]))
            if self.float_store is not None:
                self._floats = self.float_store.token_rows(int(self._offsets[-1]))
            self._committed = rows

    def search(self, query: Any, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores float32, rows int64) among allowed rows by MaxSim, best first; -1 / -inf pads."""
        if self._broken:
            raise CollectionError(self._broken)
        query_tokens(query, self.encoder)  # first: one forward pass gives the first stage its dense vector too
        _, cand = self.first_stage.search(query, max(k, self.depth), allowed)
        cand = np.asarray(cand, np.int64)
        cand = cand[(cand >= 0) & (cand < self._committed)]
        scores = self._score(query, cand, self._tokens, self.token_store.decode if self.token_store else None)
        if self.float_store is not None and len(cand):
            # Codes pick the best `rescore` rows; float16 tokens score those exactly and rank them first.
            top = np.lexsort((cand, -scores))[: max(self.rescore, k)]
            rest = np.setdiff1d(np.arange(len(cand)), top)
            exact = self._score(query, cand[top], self._floats, None)
            lowest = exact.min() if len(exact) else 0.0
            scores = scores.astype(np.float32)
            scores[top] = exact
            # below every rescored row, in code order
            scores[rest] = np.minimum(scores[rest], np.nextafter(np.float32(lowest), np.float32(-np.inf)))
        order = np.lexsort((cand, -scores))[:k]  # the tie rule of slimvec.scoring: equal scores, lower row first
        out_s = np.full(k, -np.inf, np.float32)
        out_r = np.full(k, -1, np.int64)
        out_s[: len(order)], out_r[: len(order)] = scores[order], cand[order]
        return out_s, out_r

    def score_rows(self, query: Any, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float32 MaxSim of the query against the given chunk rows (read from disk; the float16
        copy when the collection keeps one beside its token codes)."""
        if self.float_store is not None:
            return self._score(query, rows, self._floats, None)
        return self._score(query, rows, self._tokens, self.token_store.decode if self.token_store else None)

    def _score(self, query: Any, rows: np.ndarray, tokens: np.ndarray, decode: Any) -> np.ndarray:
        if self._broken:
            raise CollectionError(self._broken)
        q = query_tokens(query, self.encoder)
        rows = np.asarray(rows, np.int64)
        if not len(rows) or self.token_store is None:
            return np.zeros(len(rows), np.float32)
        if decode is None:  # float16/float32 rows: scored in place, no float32 copy of the candidates
            return maxsim_rows(q, tokens, self._offsets, rows)
        decode_into = getattr(self.token_store.codec, "decode_into", None)
        if decode_into is not None:  # codes decoded per worker into its reused float32 block
            return maxsim_rows(q, tokens, self._offsets, rows, decode_into)
        tok, off = gather(tokens, self._offsets, rows)
        return maxsim_scores(q, tok, off, decode=decode)

    def ram_bytes(self) -> int:
        """The token offsets and the token codec's codebook (token vectors stay on disk); a first stage bound
        from the collection is counted as its own retriever, a private one here."""
        extra = 0
        if self.token_store is not None and self.token_store.codec is not None:
            from slimvec.codecs.base import state_nbytes

            extra = state_nbytes(self.token_store.codec.state())
        if self.first_stage is not None and not self._bound:
            extra += int(self.first_stage.ram_bytes())
        return extra + int(self._offsets.nbytes)

    def save(self, directory: Path) -> None:
        """Save a private first stage's derived files (the token file is written at commit time)."""
        if self.first_stage is not None and not self._bound:
            self.first_stage.save(directory)

    def describe(self) -> dict[str, Any]:
        """{"kind": "maxsim", "rows", "candidates", "depth", "tokens", "tokens_per_row", "token_storage",
        "pool_factor", "pool_method", "token_rescore", "token_disk_bytes"}: what the token file holds."""
        ts = self.token_store
        n_tok = int(self._offsets[-1])
        return {"kind": "maxsim", "rows": int(self._committed), "candidates": self.candidates, "depth": self.depth,
                "tokens": n_tok, "tokens_per_row": n_tok / self._committed if self._committed else 0.0,
                "token_storage": None if ts is None else (ts.meta.get("codec") or ts.storage),
                "pool_factor": None if ts is None else ts.meta.get("pool_factor"),
                "pool_method": (ts.meta.get("pool_method", "ward")  # files older than the field pooled with "ward"
                                if ts is not None and float(ts.meta.get("pool_factor") or 1) > 1 else None),
                "token_rescore": self.rescore,
                "token_disk_bytes": 0 if ts is None else ts.disk_bytes()}

    def alive_tokens(self, alive: np.ndarray) -> int:
        """Stored tokens of the alive rows (`alive`: (rows,) bool mask): what `info` reports per document."""
        lens = np.diff(self._offsets)
        return int(lens[np.asarray(alive[: len(lens)], bool)].sum())

    def check(self, store: Any, alive: np.ndarray) -> list[str]:
        """Problems of the token file's committed rows (sizes, offsets, crc32 per append batch)."""
        rows = store.committed_rows
        if self.token_store is None:
            return [f"token file missing, {rows} rows committed"] if rows else []
        problems = self.token_store.check(rows)
        if self.float_store is not None:
            problems += [f"float16 tokens: {p}" for p in self.float_store.check(rows)]
        return problems


def build(store: Any, encoder: Callable[[], Any]) -> MultiVectorRetriever:
    """The registered "multivector" retriever of a collection: its token file, its profile's `candidates`
    (bound by the collection) and `maxsim_depth`."""
    prof = store.manifest.get("profile") or {}
    return MultiVectorRetriever(None, store.path / TOKENS_DIR, encoder, depth=int(prof.get("maxsim_depth", DEFAULT_DEPTH)),
                                candidates=str(prof.get("candidates", "dense")), rescore=int(prof.get("token_rescore", 0)))


class MaxSimReranker:
    """`rerank.Reranker` "maxsim": exact MaxSim of the query's tokens against each candidate chunk row's tokens.

    Used standalone with a TokenStore and an encoder, or as the registered reranker, which reads the token file
    through the collection's multivector retriever (`needs_retriever`), so it follows any first stage.
    """

    name = "maxsim"
    needs_text = False
    needs_vectors = False
    needs_retriever = "multivector"

    def __init__(self, tokens: TokenStore | None = None, encoder: Any = None) -> None:
        self.token_store, self.encoder = tokens, encoder

    def load(self) -> None:
        """Nothing to load: the token file is read per query."""

    def score(self, query: Any, candidates: Any) -> np.ndarray:
        """(m,) float32 MaxSim per candidate row."""
        if candidates.retriever is not None:
            return candidates.retriever.score_rows(query, candidates.rows)
        if self.token_store is None:
            raise ConfigError("the maxsim reranker needs a collection that keeps token vectors (multivector)")
        q = query_tokens(query, self.encoder)
        decode = self.token_store.decode
        if decode is None:
            return maxsim_rows(q, self.token_store.tokens(), self.token_store.offsets(), candidates.rows)
        tok, off = gather(self.token_store.tokens(), self.token_store.offsets(), candidates.rows)
        return maxsim_scores(q, tok, off, decode=decode)


def _maxsim_kind() -> Any:
    from slimvec.search.rerank import RerankerKind

    return RerankerKind(lambda _: MaxSimReranker(), False, "MaxSim over the collection's token vectors (multivector)")


MAXSIM = _maxsim_kind()
