"""Search stages over a collection's rows: retrievers produce candidates, fusion merges them per document.

A `Retriever` owns one way of scoring chunk rows (dense vectors, BM25, learned sparse...). Each keeps
itself in step with the store through `sync`, so every retriever sees the same committed rows and
the same deletes (through the `allowed` mask). Retrievers register by name; a collection's manifest
lists the ones it maintains, and `mode` picks which ones a search uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from slimvec.encoders.base import Encoder
from slimvec.errors import ConfigError
from slimvec.index.base import VectorIndex
from slimvec.index.flat import ExactIndex
from slimvec.index.hnsw import HnswIndex
from slimvec.store import Store


@dataclass
class Query:
    """A query's text, with its dense vector computed once, on first use."""

    text: str
    encoder: Encoder | None = None
    _vector: np.ndarray | None = field(default=None, repr=False)

    @property
    def vector(self) -> np.ndarray:
        if self._vector is None:
            assert self.encoder is not None, "a dense query needs an encoder or a precomputed vector"
            self._vector = self.encoder.encode_queries([self.text])[0]
        return self._vector


class Retriever(Protocol):
    """Scores a collection's chunk rows for a query."""

    name: str

    @property
    def rows(self) -> int:
        """Rows this retriever has caught up with."""
        ...

    def sync(self, store: Store) -> None:
        """Take in rows committed since the last call."""
        ...

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) of one query among allowed rows, best first; -1 pads."""
        ...

    def ram_bytes(self) -> int:
        """Bytes resident in RAM for search."""
        ...

    def save(self, directory: Path) -> None:
        """Persist derived files (atomically) under `directory`."""
        ...


class DenseRetriever:
    """Dense vectors through a VectorIndex (exact or HNSW) kept in step with the vector file."""

    name = "dense"

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    @property
    def rows(self) -> int:
        return self.index.rows

    def sync(self, store: Store) -> None:
        """Add rows committed since the last call (a derived index ahead of the commit log is rebuilt)."""
        rows = store.committed_rows
        if self.index.rows > rows:
            self.index = _new_vector_index(store.manifest)
        if self.index.rows < rows:
            self.index.add(np.asarray(store.vectors(rows)[self.index.rows : rows]))

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(query.vector[None, :], k, allowed)
        return scores[0], rows[0]

    def ram_bytes(self) -> int:
        return self.index.ram_bytes()

    def save(self, directory: Path) -> None:
        self.index.save(directory)


class CompressedDenseRetriever:
    """Dense candidates from compact codes in RAM; optionally rescored with float32 rows read from disk.

    The codec is fitted on a sample of the rows present (up to `_FIT_ROWS`) and refitted, re-encoding every
    row from the float32 file, whenever the collection has doubled since the last fit, until the sample is
    full: a collection built in small batches is not stuck with a codec trained on its first batch.
    With `ivf` set (binary codes only), the codes go into inverted lists once there are enough rows to train
    them, retrained whenever the collection has grown 4x, so the list count keeps up with ~4 sqrt(rows).
    Rescoring reads only the candidate rows of the on-disk float32 file (a memmap), which is what makes the
    bi-granular design cheap in RAM.
    """

    name = "dense"

    def __init__(self, spec: str, rescore: bool, oversample: int, dim: int, index: Any = None,
                 fitted_rows: int = 0, ivf: tuple[int | None, int] | None = None) -> None:
        self.spec, self.rescore, self.oversample, self.dim = spec, rescore, oversample, dim
        self.ivf = ivf  # (nlist or None for automatic, nprobe), or None for an exact scan of the codes
        self.index = index  # CodecIndex or BinaryIVFIndex once fitted
        self.fitted_rows = fitted_rows if index is not None else 0
        self._full: np.ndarray | None = None
        self._unpacked = 0  # rows added to inverted lists since they were last compacted

    @property
    def rows(self) -> int:
        return 0 if self.index is None else self.index.rows

    def ivf_lists(self, rows: int) -> int:
        """Inverted lists to build for `rows` rows (0: too few rows, or not an ivf profile: scan exactly)."""
        if self.ivf is None:
            return 0
        nlist, _ = self.ivf
        if nlist is None:  # automatic: ~4 sqrt(rows), a power of two, and only where a scan gets slow
            nlist = 1 << int(round(np.log2(4 * np.sqrt(max(rows, 1)))))
            return nlist if rows >= max(_IVF_MIN_ROWS, _IVF_TRAIN_PER_LIST * nlist) else 0
        return nlist if rows >= _IVF_TRAIN_PER_LIST * nlist else 0

    def _stale(self, rows: int) -> bool:
        from slimvec.index.compressed import BinaryIVFIndex

        if self.index is None:
            return False
        if self.index.rows > rows or (self.fitted_rows < _FIT_ROWS and rows >= 2 * self.fitted_rows):
            return True
        lists = self.ivf_lists(rows)
        if not lists:
            return False
        return not isinstance(self.index, BinaryIVFIndex) or (self.ivf[0] is None and rows >= 4 * self.fitted_rows)

    def sync(self, store: Store) -> None:
        rows = store.committed_rows
        vectors = store.vectors(rows)
        self._full = vectors
        if self._stale(rows):
            self.index = None
        if self.index is None and rows:
            self.index = self._build(vectors, rows)
        elif self.index is not None and self.index.rows < rows:
            start = self.index.rows
            self._add(vectors, start, rows)
            self._compact_if_grown(rows - start)

    def _build(self, vectors: np.ndarray, rows: int) -> Any:
        """A fitted index holding every row, or None while there are too few rows to fit the codec."""
        from slimvec.codecs import make_codec
        from slimvec.index.compressed import BinaryIVFIndex, CodecIndex

        codec = make_codec(self.spec)
        step = max(1, rows // _FIT_ROWS)
        try:
            codec.fit(np.asarray(vectors[::step], dtype=np.float32))
        except ValueError:
            return None  # too few rows to train this codec (e.g. PQ needs 256): search stays exact until there are
        lists = self.ivf_lists(rows)
        if lists:
            index: Any = BinaryIVFIndex(codec, self.dim, lists, self.ivf[1])
            step = max(1, rows // (_IVF_SAMPLE_PER_LIST * lists))
            index.train(np.asarray(vectors[::step], dtype=np.float32))
        else:
            index = CodecIndex(codec, self.dim)
        self.index, self.fitted_rows = index, rows
        self._add(vectors, 0, rows)
        self._compact_if_grown(rows)
        return index

    def _add(self, vectors: np.ndarray, start: int, stop: int) -> None:
        for s in range(start, stop, 65536):
            self.index.add(np.asarray(vectors[s : min(stop, s + 65536)]))

    def _compact_if_grown(self, added: int) -> None:
        # Inverted lists grow by doubling: after bulk adds, rebuilding them at exact size returns the slack.
        if hasattr(self.index, "compact"):
            self._unpacked += added
            if self._unpacked * 4 >= self.index.rows:
                self.index.compact()
                self._unpacked = 0

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from slimvec.index.compressed import BinaryIVFIndex, staged_search

        q = query.vector[None, :]
        if self.index is None:
            assert self._full is not None
            scores, rows = ExactIndex.over(self._full).search(q, k, allowed)
            return scores[0], rows[0]
        mask: np.ndarray | None = allowed
        if isinstance(self.index, BinaryIVFIndex):
            n = self.index.rows
            kept = int(np.count_nonzero(allowed[:n]))
            # Under a filter, probe proportionally more lists so about as many allowed rows are scanned.
            self.index.nprobe = min(self.index.nlist, -(-self.ivf[1] * n // max(kept, 1)))
            mask = None if kept == n else allowed
        if self.rescore:
            assert self._full is not None
            scores, rows = staged_search(q, k, self.oversample, self.index, self._full, mask)
        else:
            scores, rows = self.index.search(q, k, mask)
        return scores[0], rows[0]

    def ram_bytes(self) -> int:
        # The float32 file is read on demand for a few candidate rows; it is disk, not RAM-resident state.
        if self.index is None:  # untrained: exact search over the float32 rows
            return 0 if self._full is None else int(self._full.nbytes)
        return self.index.ram_bytes()

    def save(self, directory: Path) -> None:
        from slimvec.atomic import write_json_atomic
        from slimvec.index.compressed import BinaryIVFIndex

        if self.index is not None:
            kind = "ivf" if isinstance(self.index, BinaryIVFIndex) else "flat"
            self.index.save(directory / "codes")
            # Written last: names which of the saved structures is current.
            write_json_atomic(directory / "codes" / "fit.json", {"fitted_rows": self.fitted_rows, "kind": kind})


_FIT_ROWS = 50_000
_IVF_MIN_ROWS = 100_000  # below this, an exact Hamming scan of the codes takes about a millisecond
_IVF_TRAIN_PER_LIST = 39  # faiss's minimum k-means points per centroid
_IVF_SAMPLE_PER_LIST = 40  # k-means sample size per list


def _new_vector_index(manifest: dict[str, Any]) -> VectorIndex:
    dim = int(manifest["dim"])
    return HnswIndex(dim) if manifest.get("index") == "hnsw" else ExactIndex(dim)


def _dense(store: Store, encoder: Callable[[], Encoder]) -> Retriever:
    prof = store.manifest.get("profile") or {}
    if prof.get("codec", "float32") != "float32":
        from slimvec.index.compressed import BinaryIVFIndex, CodecIndex

        saved, fitted = None, 0
        codes = store.path / "index" / "codes"
        if (codes / "fit.json").exists():
            try:
                fit = json.loads((codes / "fit.json").read_text())
                loader = BinaryIVFIndex if fit.get("kind") == "ivf" else CodecIndex
                saved, fitted = loader.load(codes), int(fit["fitted_rows"])
            except Exception:  # noqa: BLE001 - derived data: a damaged file is rebuilt from the vectors
                saved, fitted = None, 0
        ivf = (prof.get("nlist"), int(prof.get("nprobe", 16))) if prof.get("index") == "ivf" else None
        return CompressedDenseRetriever(prof["codec"], bool(prof.get("rescore")), int(prof.get("oversample", 10)),
                                        int(store.manifest["dim"]), saved, fitted, ivf)
    index: VectorIndex | None = None
    if store.manifest.get("index") == "hnsw":
        index = HnswIndex.load(store.path / "index", int(store.manifest["dim"]))
    return DenseRetriever(index or _new_vector_index(store.manifest))


# name -> factory(store, lazy encoder getter); hybrid stages register theirs here.
RETRIEVERS: dict[str, Callable[[Store, Callable[[], Encoder]], Retriever]] = {"dense": _dense}

# Search modes: which retrievers a mode runs; more than one means their document rankings are fused.
MODES: dict[str, tuple[str, ...]] = {"dense": ("dense",)}


def retrievers_for(mode: str, available: list[str]) -> tuple[str, ...]:
    """The retriever names a search `mode` needs, checked against those the collection maintains."""
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}: choose one of {', '.join(sorted(MODES))}")
    missing = [r for r in MODES[mode] if r not in available]
    if missing:
        raise ConfigError(
            f"mode {mode!r} needs the {', '.join(missing)} index, which this collection does not keep "
            f"(it keeps: {', '.join(available)})"
        )
    return MODES[mode]


def doc_ranking(
    retriever: Retriever, query: Query, k: int, allowed: np.ndarray, n_allowed: int, row_doc: np.ndarray
) -> list[tuple[int, float, int]]:
    """Top-k documents as (doc number, score of best chunk, best chunk row), widening until k distinct documents."""
    if n_allowed == 0:
        return []
    want = min(n_allowed, k * 4)
    while True:
        scores, rows = retriever.search(query, max(want, 1), allowed)
        valid = rows >= 0
        rows, scores = rows[valid], scores[valid]
        docs = row_doc[rows]
        # Rows come best first, so a document's first occurrence is its best chunk.
        _, first = np.unique(docs, return_index=True)
        first.sort()
        if len(first) >= k or want >= n_allowed:
            break
        want = min(n_allowed, want * 4)
    top = first[np.argsort(-scores[first], kind="stable")][:k]
    return list(zip(docs[top].tolist(), scores[top].tolist(), rows[top].tolist()))
