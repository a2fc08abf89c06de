"""Learned sparse retrieval: a row-aligned CSR matrix of SPLADE chunk vectors, scored by sparse dot product.

Row i of the matrix is store row i ("{title} {chunk}" encoded by the sparse model; a row deleted before it
was seen stays empty). `sync` takes only newly committed rows, read from the row files when the handle that
committed them has saved them (a server's handle never runs SPLADE again over another process's commit), else
encoded, and appends them, O(new rows): as a row-major
part (what `save` writes) and as a segment of term-major posting lists (`retrievers/postings.py`, merged to
O(log rows) segments); deletes are handled by the `allowed` mask at search time. Scoring is exact: scores =
q @ M.T, summed over the posting lists of the query's own terms, i.e. an inverted index. (Before session 19
each commit copied the whole matrix to append to it and the next search transposed it whole.) Saved under `index/sparse/` as append-only row files
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
from slimvec.retrievers.postings import Segment, add_segment, spans
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
        self._parts: list[sp.csr_matrix] = []  # (rows, vocab) row-major, one part per sync (stacked on demand)
        self._segments: list[Segment] | None = []  # term-major weights (None: built from the parts when needed)
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
        return sum(int(p.shape[0]) for p in self._parts)

    @property
    def matrix(self) -> sp.csr_matrix | None:
        """The (rows, vocab) float32 CSR matrix of every row, None before any; its parts are stacked into one
        (O(nonzeros)) when asked for (a compaction, a test), not at each commit."""
        if not self._parts:
            return None
        if len(self._parts) > 1:
            self._parts = [sp.vstack(self._parts, format="csr")]
        return self._parts[0]

    def _append(self, part: sp.csr_matrix) -> None:
        """Add rows `part` (float32 CSR, sorted indices) after the current ones, with their posting lists."""
        if self._segments is not None:
            add_segment(self._segments, Segment.of_csr(part, self.rows))
        self._parts.append(part)

    def _term_segments(self) -> list[Segment]:
        if self._segments is None:
            self._segments = []
            m = self.matrix
            if m is not None:  # one segment of every row (a loaded matrix)
                self._segments.append(Segment.of_csr(m, 0))
        return self._segments

    def sync(self, store: Store) -> None:
        """Append the rows committed since the last call (row-major and term-major): read from the saved row files
        when they hold them (`_saved_part`), else encoded."""
        committed = store.committed_rows
        if self.rows > committed:
            self._parts, self._segments, self._fit = [], [], rowfiles.new_fit()
        start = self.rows
        if start == committed:
            return
        saved = self._saved_part(store.path / "index", start, committed)
        if saved is not None:  # another handle's commit, saved with its rows: read, not encoded a second time
            self._append(saved)
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
        part.sort_indices()
        self._append(part)
        self._dirty = True

    def _saved_part(self, directory: Path, start: int, stop: int) -> sp.csr_matrix | None:
        """Rows start..stop-1 as the row files under `directory/sparse/` hold them, when those files are this
        model's and already hold them (the writing handle saves its rows after each commit; a bulk load saves
        at its end), else None. Rows are the store's own rows, so another handle's encoding of them is the one
        this handle would make (a row deleted since is masked at search time, as every deleted row)."""
        path = directory / _DIR
        meta = rowfiles.read_meta(path)
        if (meta is None or meta.get("kind") != "sparse" or meta.get("model") != self.model_name
                or int(meta.get("rows", 0)) < stop or (self._dim is not None and int(meta.get("dim", -1)) != self._dim)):
            return None
        try:
            ends = rowfiles.read_entries(path, meta, "ends", start - 1, stop - start + 1) if start else np.concatenate(
                [[0], rowfiles.read_entries(path, meta, "ends", 0, stop)])
            ends = np.asarray(ends, np.int64).ravel()
            lo, hi = int(ends[0]), int(ends[-1])
            data = rowfiles.read_entries(path, meta, "data", lo, hi - lo).ravel()
            indices = rowfiles.read_entries(path, meta, "indices", lo, hi - lo).ravel()
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a save under way or damaged files: encode, as before
        part = sp.csr_matrix((data.astype(np.float32), indices.astype(np.int32), ends - lo),
                             shape=(stop - start, int(meta["dim"])), dtype=np.float32)
        part.sort_indices()
        return part

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
        return self._scored(q)[0]

    def members(self, q: sp.csr_matrix) -> np.ndarray:
        """Boolean mask over rows: True where the row holds a term with a non-zero weight in query vector
        `q` (1, vocab) and a non-zero weight of its own."""
        return self._scored(q)[1]

    def _scored(self, q: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(`scores`, `members`) in one pass over the posting lists of the query's terms. A row lives in one
        segment, so each row's terms are added in the query's term order, as a term-by-term sum adds them."""
        out, marked = np.zeros(self.rows, dtype=np.float32), np.zeros(self.rows, dtype=bool)
        q = sp.csr_matrix(q)
        for seg, at, weight in self._query_postings(q.indices, q.data.astype(np.float32)):
            rows, values = seg.rows[at], seg.tf[at]
            np.add.at(out, rows, values * weight)
            marked[rows[(values != 0) & (weight != 0)]] = True
        return out, marked

    def _query_postings(self, terms: np.ndarray, weights: np.ndarray) -> list[tuple[Segment, np.ndarray, np.ndarray]]:
        """Per segment: (segment, positions of the query terms' postings in it, term by term, each term's
        weight repeated over its postings), gathered with a few array operations per segment rather than per
        (segment, term): a SPLADE query holds tens of terms."""
        out = []
        for seg in self._term_segments():
            inside = terms < len(seg.ptr) - 1
            t = terms[inside]
            lens = (seg.ptr[t + 1] - seg.ptr[t]).astype(np.int64)
            if lens.any():
                out.append((seg, spans(seg.ptr[t], lens), np.repeat(weights[inside], lens)))
        return out

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) among allowed rows sharing a weighted term with the query, whatever the sign
        of the dot product; -1 pads."""
        scores_out = np.full(k, -np.inf, dtype=np.float32)
        rows_out = np.full(k, -1, dtype=np.int64)
        if self.rows == 0 or not query.text.strip():
            return scores_out, rows_out
        q = self.query_vector(query.text)
        s, members = self._scored(q)
        n = min(len(s), len(allowed))
        ok = np.zeros(len(s), dtype=bool)
        ok[:n] = allowed[:n]
        # Membership, not the score's sign: a row matches when it shares a weighted term with the query
        # (rows of the terms' posting lists), and a filtered-out or deleted row is out whatever its score.
        hit = np.flatnonzero(members[: len(ok)] & ok)
        vals, pos = top_k(s[hit][None, :], k)  # hit is ascending, so the tie rule's lower position is the lower row
        found = pos[0] >= 0
        scores_out[found], rows_out[found] = vals[0][found], hit[pos[0][found]]
        return scores_out, rows_out

    def describe(self) -> dict[str, Any]:
        """{"kind": "sparse", "model", "rows", "vocabulary" (the model's, None until it is loaded), "nonzeros"
        (stored term weights)}."""
        return {"kind": "sparse", "model": self.model_name, "rows": int(self.rows), "vocabulary": self._dim,
                "nonzeros": sum(int(p.nnz) for p in self._parts)}

    def ram_bytes(self) -> int:
        """Bytes of the matrix's parts and its term-major posting lists."""
        total = sum(p.data.nbytes + p.indices.nbytes + p.indptr.nbytes for p in self._parts)
        return total + sum(s.nbytes for s in self._segments or [])

    def save(self, directory: Path) -> None:
        """Write `directory/sparse/` as row files (`index.rowfiles`): a commit appends its rows' nonzeros (values,
        term ids) and row ends, so it writes what it added, not the collection."""
        target = directory / _DIR
        if (not self._dirty and rowfiles.read_meta(target) is not None) or not self._parts:
            return

        def rows_from(start: int) -> dict[str, np.ndarray]:
            # the parts from the one holding row `start`: a commit's save reads its own part, not the matrix
            first, at, nnz = 0, 0, 0  # that part, its first row, the nonzeros before it
            while at + self._parts[first].shape[0] <= start and first < len(self._parts) - 1:
                at, nnz = at + self._parts[first].shape[0], nnz + self._parts[first].nnz
                first += 1
            m = self._parts[first] if first == len(self._parts) - 1 else sp.vstack(self._parts[first:], format="csr")
            cut = int(m.indptr[start - at])
            return {"data": m.data[cut:].astype(np.float32), "indices": m.indices[cut:].astype(np.int32),
                    "ends": m.indptr[start - at + 1 :].astype(np.int64) + nnz}

        rowfiles.save(target, self._fit, self.rows, rows_from,
                      {"kind": "sparse", "model": self.model_name, "dim": int(self._parts[0].shape[1])},
                      lambda folder: None, ragged=("data", "indices"))
        self._dirty = False

    def compacted(self, keep: np.ndarray) -> "SparseRetriever":
        """This index over rows `keep` only, renumbered 0..n-1 in order (keep: (n,) int64 ascending, the rows a
        compaction keeps): the stored SPLADE rows are copied, never re-encoded."""
        out = SparseRetriever(self._encoder_getter, self.model_name, self._dim)
        if self.matrix is not None:
            m = sp.csr_matrix(self.matrix[np.asarray(keep, np.int64)], dtype=np.float32)
            m.sort_indices()
            out._parts, out._segments = [m], None
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
        r._parts, r._segments = [m], None  # posting lists built from it at the first search
        r._fit, r._dirty = fit, rowfiles.read_meta(path) is None
        return r


def build(store: Store, encoder: Callable[[], Encoder]) -> Retriever:
    """The learned-sparse retriever (registered as "sparse") with the manifest's SPLADE model (default
    splade-tiny), loaded from its saved inverted index when there is one. `encoder` (the dense one) is unused."""
    model = str(store.manifest.get("sparse_model", SPLADE_TINY))
    getter = lambda: load_sparse_encoder(model)  # noqa: E731 - the dense encoder getter is not the sparse model
    return SparseRetriever.load(store.path / "index", getter, model) or SparseRetriever(getter, model)


