"""The retriever interface: one way of scoring a collection's chunk rows, kept in step with the store.

A `Retriever` owns one way of scoring chunk rows (dense vectors, BM25, learned sparse...). Each keeps itself
in step with the store through `sync`, so every retriever sees the same committed rows and the same deletes
(through the `allowed` mask). Retrievers are registered by name in `slimvec.registry` (kind "retriever"); a
collection's manifest lists the ones it maintains, and a search mode picks which ones a search runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from slimvec.encoders.base import Encoder
from slimvec.store import Store

# What the registry's "retriever" entries are: build(store, lazy encoder getter) -> Retriever.
RetrieverFactory = Callable[[Store, Callable[[], Encoder]], "Retriever"]


@dataclass
class Query:
    """A query's text, with its dense vector computed once, on first use."""

    text: str
    encoder: Encoder | None = None
    _vector: np.ndarray | None = field(default=None, repr=False)
    _tokens: np.ndarray | None = field(default=None, repr=False)  # (q, dim) token vectors, for MaxSim stages

    @property
    def vector(self) -> np.ndarray:
        """(dim,) float32 query vector of the collection's model (L2-normalised by every bundled encoder)."""
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
        """Take in rows committed since the last call; a derived file ahead of the store is rebuilt."""
        ...

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of one query among the allowed rows, best first (ties: lower row, see `slimvec.scoring`).

        allowed: (rows,) bool mask. Returns (k,) float32 scores (higher is better; -inf pads) and (k,) int64
        rows (-1 pads). A row outside `allowed` is never returned, whatever its score.
        """
        ...

    def ram_bytes(self) -> int:
        """Bytes resident in RAM for search (what `info()` reports; the on-disk vector file is not counted)."""
        ...

    def save(self, directory: Path) -> None:
        """Persist derived files (atomically) under `directory`."""
        ...

    # Optional: `describe() -> dict[str, Any]`, what the retriever built, as JSON-ready values: at least
    # "kind" (the structure searched) and "rows" (rows caught up with), plus its own parameters (nlist,
    # nprobe, fitted_rows, vocabulary...). `Collection.info()["indexes"]` reports it per retriever; one
    # without it is described by `describe` below.


def describe(retriever: Retriever) -> dict[str, Any]:
    """`retriever.describe()`, or {"kind": its name, "rows": its rows} for a retriever without one."""
    own = getattr(retriever, "describe", None)
    if own is not None:
        return dict(own())
    return {"kind": retriever.name, "rows": int(retriever.rows)}




def no_direction() -> tuple[np.ndarray, np.ndarray]:
    """No hits: a dense retriever's answer to a query whose vector is all zeros (a static model knows none of its
    tokens, e.g. an emoji), which scores every row 0; ranked, they were the first k rows, returned as hits (BM25
    finds nothing for a query of no known terms either)."""
    return np.zeros(0, np.float32), np.zeros(0, np.int64)
