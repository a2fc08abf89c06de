"""Learned sparse retrieval: a row-aligned CSR matrix of SPLADE chunk vectors, scored by sparse dot product.

Row i of the matrix is store row i ("{title} {chunk}" encoded by the sparse model; a row deleted before it
was seen stays empty). `sync` encodes only newly committed rows and appends them; deletes are handled by
the `allowed` mask at search time. Scoring is exact: scores = q @ M.T, computed through a cached
term-major copy of M (M.T as CSR, rebuilt lazily after a sync), so a query touches only the posting
lists of its own terms, i.e. an inverted index. Saved under `index/sparse/` as append-only row files
(`index.rowfiles`: each row's nonzero values and term ids, and its end), so a commit writes its own rows;
folders saved before that (`matrix.npz` and `meta.json`) load and are rewritten. The sparse model is the manifest's
"sparse_model" (default "splade-tiny").
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from slimvec.chunking import chunk_text
from slimvec.encoders.base import Encoder
from slimvec.encoders.sparse import SPLADE_TINY, load_sparse_encoder
from slimvec.index import rowfiles
from slimvec.index.base import top_k
from slimvec.retrievers.base import Query, Retriever
from slimvec.store import Store

_DIR = "sparse"
_FORMAT = 1
_QUERY_CACHE = 1024


class SparseRetriever:
    """Exact sparse dot-product search over SPLADE vectors of chunk rows."""

    name = "sparse"

    def __init__(self, encoder: Callable[[], Any], model_name: str, dim: int | None = None) -> None:
        self._encoder_getter = encoder
        self._encoder: Any = None
        self.model_name = model_name
        self._dim = dim
        self.matrix: sp.csr_matrix | None = None  # (rows, vocab)
        self._postings: sp.csr_matrix | None = None  # matrix.T as CSR: one row per term
        self._queries: OrderedDict[str, sp.csr_matrix] = OrderedDict()
        self._dirty = True
        self._fit = rowfiles.new_fit()  # names the matrix on disk; new when it is started again

    @property
    def encoder(self) -> Any:
        """The sparse model, loaded on first use."""
        if self._encoder is None:
            self._encoder = self._encoder_getter()
            self._dim = int(self._encoder.dim)
        return self._encoder

    @property
    def rows(self) -> int:
        """Rows this retriever has caught up with."""
        return 0 if self.matrix is None else int(self.matrix.shape[0])

    def sync(self, store: Store) -> None:
        """Encode rows committed since the last call and append them to the matrix."""
        committed = store.committed_rows
        if self.rows > committed:
            self.matrix, self._fit = None, rowfiles.new_fit()
        start = self.rows
        if start == committed:
            return
        new = list(range(start, committed))
        chunks = store.chunks_for_rows(new)
        live = [r for r in new if r in chunks]
        texts = [chunk_text(chunks[r].title, chunks[r].text) for r in live]
        enc = self.encoder
        dim = int(enc.dim)
        part = sp.csr_matrix((len(new), dim), dtype=np.float32)
        if texts:
            vecs = sp.csr_matrix(enc.encode_documents(texts), dtype=np.float32)
            pos = np.asarray(live, dtype=np.int64) - start
            # scatter the encoded rows to their positions; deleted rows stay empty
            scatter = sp.csr_matrix((np.ones(len(live), np.float32), (pos, np.arange(len(live)))),
                                    shape=(len(new), len(live)))
            part = sp.csr_matrix(scatter @ vecs, dtype=np.float32)
        self.matrix = part if self.matrix is None else sp.vstack([self.matrix, part], format="csr")
        self.matrix.sort_indices()
        self._postings = None
        self._dirty = True

    def query_vector(self, text: str) -> sp.csr_matrix:
        """The query's sparse vector (1, vocab), cached for repeated searches of the same text."""
        q = self._queries.get(text)
        if q is None:
            q = sp.csr_matrix(self.encoder.encode_queries([text]), dtype=np.float32)
            self._queries[text] = q
            if len(self._queries) > _QUERY_CACHE:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(text)
        return q

    def prepare(self, texts: list[str]) -> None:
        """Encode the not yet cached query texts in one batch (called before a batch of searches)."""
        todo = list(dict.fromkeys(t for t in texts if t.strip() and t not in self._queries))[:_QUERY_CACHE]
        if len(todo) < 2:
            return
        vecs = sp.csr_matrix(self.encoder.encode_queries(todo), dtype=np.float32)
        for i, t in enumerate(todo):
            self._queries[t] = vecs[i]
        while len(self._queries) > _QUERY_CACHE:
            self._queries.popitem(last=False)

    def scores(self, q: sp.csr_matrix) -> np.ndarray:
        """Dot products of one query vector with every row: (q @ M.T), dense float32 of length rows."""
        if self.matrix is None:
            return np.zeros(0, dtype=np.float32)
        if self._postings is None:
            self._postings = self.matrix.T.tocsr()
        q = sp.csr_matrix(q)
        terms, weights = q.indices, q.data
        sub = self._postings[terms]
        return np.asarray(sub.T @ weights, dtype=np.float32).ravel()

    def members(self, q: sp.csr_matrix) -> np.ndarray:
        """Boolean mask over rows: True where the row holds a term with a non-zero weight in query vector
        `q` (1, vocab) and a non-zero weight of its own."""
        if self.matrix is None:
            return np.zeros(0, dtype=bool)
        if self._postings is None:
            self._postings = self.matrix.T.tocsr()
        q = sp.csr_matrix(q)
        sub = self._postings[q.indices[q.data != 0]]
        marked = np.zeros(self.rows, dtype=bool)
        marked[sub.indices[sub.data != 0]] = True
        return marked

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) among allowed rows sharing a weighted term with the query, whatever the sign
        of the dot product; -1 pads."""
        scores_out = np.full(k, -np.inf, dtype=np.float32)
        rows_out = np.full(k, -1, dtype=np.int64)
        if self.matrix is None or self.rows == 0 or not query.text.strip():
            return scores_out, rows_out
        q = self.query_vector(query.text)
        s = self.scores(q)
        n = min(len(s), len(allowed))
        ok = np.zeros(len(s), dtype=bool)
        ok[:n] = allowed[:n]
        # Membership, not the score's sign: a row matches when it shares a weighted term with the query
        # (rows of the terms' posting lists), and a filtered-out or deleted row is out whatever its score.
        hit = np.flatnonzero(self.members(q)[: len(ok)] & ok)
        vals, pos = top_k(s[hit][None, :], k)  # hit is ascending, so the tie rule's lower position is the lower row
        found = pos[0] >= 0
        scores_out[found], rows_out[found] = vals[0][found], hit[pos[0][found]]
        return scores_out, rows_out

    def describe(self) -> dict[str, Any]:
        """{"kind": "sparse", "model", "rows", "vocabulary" (the model's, None until it is loaded), "nonzeros"
        (stored term weights)}."""
        return {"kind": "sparse", "model": self.model_name, "rows": int(self.rows), "vocabulary": self._dim,
                "nonzeros": 0 if self.matrix is None else int(self.matrix.nnz)}

    def ram_bytes(self) -> int:
        """Bytes of the matrix and its term-major copy."""
        total = 0
        for m in (self.matrix, self._postings):
            if m is not None:
                total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        return total

    def save(self, directory: Path) -> None:
        """Write `directory/sparse/` as row files (`index.rowfiles`): a commit appends its rows' nonzeros (values,
        term ids) and row ends, so it writes what it added, not the collection."""
        target = directory / _DIR
        if (not self._dirty and rowfiles.read_meta(target) is not None) or self.matrix is None:
            return
        m = self.matrix

        def rows_from(start: int) -> dict[str, np.ndarray]:
            at = int(m.indptr[start])
            return {"data": m.data[at:].astype(np.float32), "indices": m.indices[at:].astype(np.int32),
                    "ends": m.indptr[start + 1 :].astype(np.int64)}

        rowfiles.save(target, self._fit, self.rows, rows_from,
                      {"kind": "sparse", "model": self.model_name, "dim": int(m.shape[1])}, lambda folder: None,
                      ragged=("data", "indices"))
        self._dirty = False

    def compacted(self, keep: np.ndarray) -> "SparseRetriever":
        """This index over rows `keep` only, renumbered 0..n-1 in order (keep: (n,) int64 ascending, the rows a
        compaction keeps): the stored SPLADE rows are copied, never re-encoded."""
        out = SparseRetriever(self._encoder_getter, self.model_name, self._dim)
        if self.matrix is not None:
            out.matrix = sp.csr_matrix(self.matrix[np.asarray(keep, np.int64)], dtype=np.float32)
            out.matrix.sort_indices()
        return out

    @classmethod
    def load(cls, directory: Path, encoder: Callable[[], Any], model_name: str) -> "SparseRetriever | None":
        """The matrix saved under `directory/sparse/` for `model_name` (row files, or the matrix.npz of collections
        saved before them), or None when absent or unusable."""
        path = directory / _DIR
        try:
            if rowfiles.read_meta(path) is None:
                meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
                if meta.get("format") != _FORMAT or meta.get("model") != model_name:
                    return None
                m = sp.load_npz(path / "matrix.npz").tocsr().astype(np.float32)
                if m.shape[0] != int(meta["rows"]):
                    return None
                fit = rowfiles.new_fit()  # rewritten as row files at the next save
            else:
                meta, arrays = rowfiles.load(path)
                if meta.get("kind") != "sparse" or meta.get("model") != model_name:
                    return None
                indptr = np.concatenate([[0], arrays["ends"]]).astype(np.int64)
                m = sp.csr_matrix((arrays["data"], arrays["indices"], indptr), shape=(meta["rows"], meta["dim"]),
                                  dtype=np.float32)
                fit = meta["fit"]
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            return None
        r = cls(encoder, model_name, int(m.shape[1]))
        r.matrix, r._fit, r._dirty = m, fit, rowfiles.read_meta(path) is None
        return r


def build(store: Store, encoder: Callable[[], Encoder]) -> Retriever:
    """The learned-sparse retriever (registered as "sparse") with the manifest's SPLADE model (default
    splade-tiny), loaded from its saved inverted index when there is one. `encoder` (the dense one) is unused."""
    model = str(store.manifest.get("sparse_model", SPLADE_TINY))
    getter = lambda: load_sparse_encoder(model)  # noqa: E731 - the dense encoder getter is not the sparse model
    return SparseRetriever.load(store.path / "index", getter, model) or SparseRetriever(getter, model)


