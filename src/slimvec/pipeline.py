"""Search stages over a collection's rows: retrievers produce candidates, fusion merges them per document.

A `Retriever` owns one way of scoring chunk rows (dense vectors, BM25, learned sparse...). Each keeps
itself in step with the store through `sync`, so every retriever sees the same committed rows and
the same deletes (through the `allowed` mask). Retrievers register by name; a collection's manifest
lists the ones it maintains, and `mode` picks which ones a search uses.
"""

from __future__ import annotations

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


def _new_vector_index(manifest: dict[str, Any]) -> VectorIndex:
    dim = int(manifest["dim"])
    return HnswIndex(dim) if manifest.get("index") == "hnsw" else ExactIndex(dim)


def _dense(store: Store, encoder: Callable[[], Encoder]) -> Retriever:
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
        best: dict[int, tuple[float, int]] = {}
        for s, r in zip(scores, rows):
            if r >= 0:
                best.setdefault(int(row_doc[r]), (float(s), int(r)))
        if len(best) >= k or want >= n_allowed:
            break
        want = min(n_allowed, want * 4)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
    return [(d, s, r) for d, (s, r) in ranked]
