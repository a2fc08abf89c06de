"""Late-interaction search over a collection: any first stage gives candidate chunk rows, exact MaxSim over
their token vectors (read from the token file, or decoded from its codes) reranks them.

`MultiVectorRetriever` follows the `pipeline.Retriever` protocol (`rows`, `sync`, `search`, `ram_bytes`,
`save`), so a search mode `multivector` is a retriever list entry; `MaxSimReranker` follows the
`rerank.Reranker` protocol, so `maxsim` can follow any first stage. Both need the query's token vectors:
`query_tokens(query, encoder)` computes them once per query (in the same forward pass as the dense query
vector for `minilm-tokens`) and caches them on the query object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimvec.errors import CollectionError
from slimvec.multivector.maxsim import gather, maxsim_scores
from slimvec.multivector.tokenstore import TokenStore

DEFAULT_DEPTH = 100


def query_tokens(query: Any, encoder: Any) -> np.ndarray:
    """(q, dim) float32 token vectors of `query` (a pipeline.Query), computed once and kept on the query.

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

    first_stage: any object with the Retriever protocol (dense, compressed dense, BM25, MUVERA FDEs...).
    tokens: the collection's TokenStore (written by the collection at commit time, not by this class).
    encoder: a multi-vector encoder (`encode_query_tokens`). Scores are MaxSim sums (float32).
    """

    name = "multivector"

    def __init__(self, first_stage: Any, tokens: TokenStore, encoder: Any, depth: int = DEFAULT_DEPTH) -> None:
        self.first_stage, self.token_store, self.encoder, self.depth = first_stage, tokens, encoder, depth
        self._committed = 0
        self._offsets = np.zeros(1, np.int64)  # token boundaries of the committed rows, kept in RAM (8 B/row)
        self._tokens = tokens.token_rows(0)  # memmap of the committed token rows

    @property
    def rows(self) -> int:
        return min(self.first_stage.rows, self._committed)

    def sync(self, store: Any) -> None:
        """Catch the first stage up with the store; the token file must already hold every committed row."""
        self.first_stage.sync(store)
        rows = store.committed_rows
        if self.token_store.rows < rows:
            raise CollectionError(f"{self.token_store.path}: token file holds {self.token_store.rows} rows, "
                                  f"{rows} committed (run `slimvec check`; re-add the missing documents)")
        if rows != self._committed:
            self._offsets = self.token_store.offsets(rows)
            self._tokens = self.token_store.token_rows(int(self._offsets[-1]))
            self._committed = rows

    def search(self, query: Any, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores float32, rows int64) among allowed rows by MaxSim, best first; -1 / -inf pads."""
        _, cand = self.first_stage.search(query, max(k, self.depth), allowed)
        cand = np.asarray(cand, np.int64)
        cand = cand[(cand >= 0) & (cand < self._committed)]
        scores = self.score_rows(query, cand)
        order = np.lexsort((np.arange(len(cand)), -scores))[:k]
        out_s = np.full(k, -np.inf, np.float32)
        out_r = np.full(k, -1, np.int64)
        out_s[: len(order)], out_r[: len(order)] = scores[order], cand[order]
        return out_s, out_r

    def score_rows(self, query: Any, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float32 MaxSim of the query against the given chunk rows (read from disk)."""
        q = query_tokens(query, self.encoder)
        tok, off = gather(self._tokens, self._offsets, np.asarray(rows, np.int64))
        return maxsim_scores(q, tok, off, decode=self.token_store.decode)

    def ram_bytes(self) -> int:
        """The first stage's RAM, the token offsets and the codec's codebook (token vectors stay on disk)."""
        extra = 0
        if self.token_store.codec is not None:
            from slimvec.codecs.base import state_nbytes

            extra = state_nbytes(self.token_store.codec.state())
        return int(self.first_stage.ram_bytes()) + extra + int(self._offsets.nbytes)

    def save(self, directory: Path) -> None:
        """Save the first stage's derived files (the token file is written at commit time)."""
        self.first_stage.save(directory)


class MaxSimReranker:
    """`rerank.Reranker`: exact MaxSim of the query's tokens against each candidate chunk row's tokens."""

    name = "maxsim"
    needs_text = False
    needs_vectors = False

    def __init__(self, tokens: TokenStore, encoder: Any) -> None:
        self.token_store, self.encoder = tokens, encoder

    def load(self) -> None:
        """Nothing to load: the token file is read per query."""

    def score(self, query: Any, candidates: Any) -> np.ndarray:
        """(m,) float32 MaxSim per candidate row."""
        q = query_tokens(query, self.encoder)
        tok, off = gather(self.token_store.tokens(), self.token_store.offsets(), candidates.rows)
        return maxsim_scores(q, tok, off, decode=self.token_store.decode)
