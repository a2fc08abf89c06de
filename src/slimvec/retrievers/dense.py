"""Dense retrieval over float32 vectors: exact search or a faiss HNSW graph, kept in step with the vector file.

`build` is the registered "dense" retriever: it picks this exact/HNSW retriever for a float32 profile and
`CompressedDenseRetriever` (codes in RAM, optional rescoring from disk) for any other codec.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimvec.encoders.base import Encoder
from slimvec.index.base import VectorIndex
from slimvec.index.flat import ExactIndex
from slimvec.index.hnsw import HnswIndex
from slimvec.retrievers.base import Query, Retriever
from slimvec.store import Store


class DenseRetriever:
    """Dense vectors through a VectorIndex (exact or HNSW) kept in step with the vector file."""

    name = "dense"

    def __init__(self, index: VectorIndex, ef_search: int | None = None, target_recall: float = 0.95) -> None:
        """ef_search: HNSW efSearch fixed by the profile, or None to calibrate it on the rows to target_recall."""
        self.index = index
        self.ef_search, self.target_recall = ef_search, target_recall
        if isinstance(index, HnswIndex) and ef_search is not None:
            index.ef_search = ef_search

    @property
    def rows(self) -> int:
        return self.index.rows

    def sync(self, store: Store) -> None:
        """Add rows committed since the last call (a derived index ahead of the commit log is rebuilt)."""
        rows = store.committed_rows
        if self.index.rows > rows:
            self.index = _new_vector_index(store.manifest)
            if isinstance(self.index, HnswIndex) and self.ef_search is not None:
                self.index.ef_search = self.ef_search
        if self.index.rows < rows:
            self.index.add(np.asarray(store.vectors(rows)[self.index.rows : rows]))
        if self.tunable and rows:
            from slimvec.index.nprobe import settle

            probes = store.probe_queries()
            self.use_calibration(settle(self.index.calibration, self.target_recall, rows, probes,
                                        lambda: HnswIndex.saved_calibration(store.path / "index"),
                                        lambda: self.calibrate(store, probes)))

    def calibrate(self, store: Store, probes: Any) -> tuple[int, dict[str, Any]] | None:
        """(efSearch, calibration) calibrated now on `probes` (a `store.probes.ProbeQueries`, or None for
        midpoints of rows: `index.nprobe.calibrate_ef`), run on a copy of the graph's search settings so
        searches through this retriever go on meanwhile; None when there is nothing to calibrate. Apply it
        with `use_calibration`."""
        if not self.tunable or not self.index.rows:
            return None
        from slimvec.index.nprobe import calibrate_ef

        rows = self.index.rows
        choice = calibrate_ef(copy.copy(self.index), store.vectors(rows), self.target_recall, queries=probes)
        return choice.ef_search, choice.to_dict()

    def use_calibration(self, choice: tuple[int, dict[str, Any]] | None) -> None:
        """Search with a (efSearch, calibration) from `calibrate` or the saved index (None: keep the current)."""
        if choice is not None:
            self.index.ef_search, self.index.calibration = choice

    @property
    def tunable(self) -> bool:
        """An HNSW graph whose efSearch the profile leaves to calibration (on probe queries, `index.nprobe`)."""
        return isinstance(self.index, HnswIndex) and self.ef_search is None

    def search(self, query: Query, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(query.vector[None, :], k, allowed)
        return scores[0], rows[0]

    def ram_bytes(self) -> int:
        return self.index.ram_bytes()

    def save(self, directory: Path) -> None:
        self.index.save(directory)

    def describe(self) -> dict[str, Any]:
        """{"kind": "exact" | "hnsw", "rows": int}, plus "ef_search" for HNSW and, when it was calibrated,
        "calibration" ({"ef_search", "recall" (mean Recall@10 on probe queries), "target_recall", "queries",
        "rows", "probes" ("rows", or the digest of the user's queries: `Collection.tune`)})."""
        out: dict[str, Any] = {"kind": self.index.name, "rows": int(self.index.rows)}
        if isinstance(self.index, HnswIndex):
            out["ef_search"] = int(self.index.ef_search)
            if self.ef_search is None and self.index.calibration:
                out["calibration"] = dict(self.index.calibration)
        return out


def _new_vector_index(manifest: dict[str, Any]) -> VectorIndex:
    dim = int(manifest["dim"])
    return HnswIndex(dim) if manifest.get("index") == "hnsw" else ExactIndex(dim)


def build(store: Store, encoder: Callable[[], Encoder]) -> Retriever:
    """The dense retriever a collection's profile asks for (registered as "dense"; `encoder` is unused)."""
    prof = store.manifest.get("profile") or {}
    if prof.get("codec", "float32") != "float32":
        from slimvec.index.compressed import CodecIndex, CodecIVFIndex
        from slimvec.retrievers.compressed import CompressedDenseRetriever

        saved, fitted = None, 0
        codes = store.path / "index" / "codes"
        if (codes / "fit.json").exists():
            try:
                fit = json.loads((codes / "fit.json").read_text())
                loader = CodecIVFIndex if fit.get("kind") == "ivf" else CodecIndex
                saved, fitted = loader.load(codes), int(fit["fitted_rows"])
            except Exception:  # noqa: BLE001 - derived data: a damaged file is rebuilt from the vectors
                saved, fitted = None, 0
        # nprobe None: calibrated on the collection's rows (profiles saved before that field stored a number)
        ivf = (prof.get("nlist"), prof.get("nprobe")) if prof.get("index") == "ivf" else None
        return CompressedDenseRetriever(prof["codec"], bool(prof.get("rescore")), int(prof.get("oversample", 10)),
                                        int(store.manifest["dim"]), saved, fitted, ivf,
                                        float(prof.get("target_recall", 0.95)))
    index: VectorIndex | None = None
    if store.manifest.get("index") == "hnsw":
        index = HnswIndex.load(store.path / "index", int(store.manifest["dim"]))
    # A profile stored before the ef_search field lacks the key: it keeps the fixed 128 it was measured with.
    ef = prof.get("ef_search", 128) if prof else 128
    return DenseRetriever(index or _new_vector_index(store.manifest), None if ef is None else int(ef),
                          float(prof.get("target_recall", 0.95)))


