"""A collection during `slimvec migrate`: search through the adapter and the target, writes refused.

Dense search encodes the query with the NEW model once. Documents already re-embedded are scored natively in
the target collection (new query . new vectors); the rest are scored in the old collection through the adapter
(mapped query . old vectors), the re-embedded ones masked out there, so each document is scored once. The two
scales differ, so a native score s is put on the adapted one as a * s + b, the line fitted on the sample when
the migration started (adapters.score_map); the merged list is ranked by that one score. Other modes (BM25,
SPLADE, hybrid) keep answering from the old collection with the old model until the switch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.collection import Collection
from slimvec.documents import Hit
from slimvec.encoders.base import Encoder
from slimvec.errors import CollectionError
from slimvec.migrate.adapters import load_adapter
from slimvec.migrate.runner import finish_interrupted
from slimvec.migrate.state import TARGET, migration_dir, progress, read_record
from slimvec.retrievers.base import Query
from slimvec.search.options import SearchOptions
from slimvec.search.plan import make_plan
from slimvec.search.rerank import Reranker
from slimvec.store import Store

# Head of the reference scores whose mean and spread the per-query line matches: 2.5% of the reference chunks,
# at least 20. With 2,000 references, 50 (2.5%) rather than 20 (session 5) was chosen on SciFact train and
# NFCorpus dev queries; with 5,000 the share keeps the same quantile (BENCHMARKS.md "Session 7").
REFERENCE_SHARE = 0.025
REFERENCE_MIN = 20


def reference_depth(n: int) -> int:
    """How many of a query's top reference scores (of n) the per-query line matches."""
    return min(n, max(REFERENCE_MIN, round(REFERENCE_SHARE * n)))


def open_migrating(path: Path, encoder: Encoder | None = None) -> Collection:
    """The "migrating" layout (registry kind "layout"): a MigratingCollection, or, when the record says the
    switch was interrupted, the collection after rolling it forward (the new model's)."""
    finish_interrupted(path)
    if not (migration_dir(path) / "migration.json").is_file():
        return Collection(Store.open(path), encoder)
    return MigratingCollection(path, encoder)


class MigratingCollection(Collection):
    """The old collection (reads as before) plus the target being filled; see the module doc."""

    def __init__(self, path: Path, encoder: Encoder | None = None) -> None:
        self.record = read_record(path)
        to_new = encoder is not None and encoder.name == self.record["to"]
        super().__init__(Store.open(path), None if to_new else encoder)
        self.target = Collection.open(migration_dir(path) / TARGET, encoder if to_new else None)
        self.adapter = load_adapter(migration_dir(path) / self.record["adapter_file"])
        self._map = tuple(self.record.get("score_map", (1.0, 0.0)))
        self.queries = self.record.get("queries", "adapter")
        ref = self.record.get("reference_file")
        self.reference = None
        if ref:
            with np.load(migration_dir(path) / ref, allow_pickle=False) as z:
                self.reference = (np.asarray(z["x_new"], np.float32), np.asarray(z["y_old"], np.float32))
        self.merge = "per-query" if self.reference is not None else "line"
        self._migrated: tuple[int, np.ndarray] = (0, np.zeros(0, np.int64))  # (target rowid seen, old rows)

    def _refuse(self, *_: Any, **__: Any) -> int:
        raise CollectionError(f"{self.path}: a migration to {self.record['to']!r} is under way; writes are refused "
                              f"until it finishes (`slimvec migrate {self.path} --to {self.record['to']}`)")

    add = upsert = add_encoded = delete = compact = _refuse  # type: ignore[assignment]

    def close(self) -> None:
        self.target.close()
        super().close()

    def search_many(self, queries: list[str], options: SearchOptions | None = None, /, *,
                    vectors: np.ndarray | None = None, rerank: str | Reranker | None = None,
                    **fields: Any) -> list[list[Hit]]:
        """As Collection.search_many; dense search runs through the migration (module doc). `vectors`, when
        given, are the NEW model's query vectors, float32 (len(queries), new dim)."""
        if rerank is not None and not isinstance(rerank, str):  # a Reranker object: the old collection's search
            return super().search_many(queries, options, rerank=rerank, **fields)
        if rerank is not None:
            fields["rerank"] = rerank
        opts = SearchOptions.of(options, **fields)
        plan = make_plan(self.manifest.get("profile") or {}, self.manifest.get("retrievers", ["dense"]),
                         int(self.manifest["dim"]), opts, frozenset(self._calibrators))
        if plan.retrievers != ("dense",) or plan.reranker is not None or not queries:
            return super().search_many(queries, opts)
        if isinstance(queries, str) or any(not isinstance(q, str) or not q.strip() for q in queries):
            return super().search_many(queries, opts)  # the parent's one-line errors
        qn = vectors if vectors is not None else self.target.encoder.encode_queries(list(queries))
        qn = np.asarray(qn, np.float32)
        native = self.target.search_many(list(queries), opts, vectors=qn)
        if self.queries == "old-model":
            mapped = np.asarray(self.encoder.encode_queries(list(queries)), np.float32)
        else:
            mapped = self.adapter.apply(qn)
        with self._lock:
            self._sync()
            allowed = self._allowed(plan.filter).copy()
            done = self._migrated_rows()
            allowed[done[done < len(allowed)]] = False
            adapted = self._runner.run(plan, [Query(q, None, mapped[i]) for i, q in enumerate(queries)],
                                       self._retrievers, self._rows, allowed, self._calibrators)
        lines = self._lines(qn, mapped)
        out = []
        for (a, b), nat, ada in zip(lines, native, adapted):
            merged = ada + [dataclasses.replace(h, score=float(np.float32(a * h.score + b))) for h in nat]
            merged.sort(key=lambda h: -h.score)  # stable: on equal scores the adapted hit first
            out.append(merged[: plan.k])
        return out

    def _lines(self, qn: np.ndarray, qo: np.ndarray) -> list[tuple[float, float]]:
        """(a, b) per query putting native scores on the old part's scale (module doc); qn, qo: float32
        (queries, new dim) and (queries, old dim), the query as the two parts score it."""
        if self.merge == "plain":
            return [(1.0, 0.0)] * len(qn)
        if self.merge != "per-query" or self.reference is None:
            return [tuple(self._map)] * len(qn)  # type: ignore[misc]
        x, y = self.reference
        d = reference_depth(len(x))
        sn = -np.partition(-(qn @ x.T), d - 1, axis=1)[:, :d]
        so = -np.partition(-(qo @ y.T), d - 1, axis=1)[:, :d]
        a = so.std(axis=1) / np.maximum(sn.std(axis=1), 1e-6)
        b = so.mean(axis=1) - a * sn.mean(axis=1)
        return [(float(i), float(j)) for i, j in zip(a, b)]

    def _migrated_rows(self) -> np.ndarray:
        """Old chunk rows of the documents the target holds (the sample stored at start, then the re-embedded
        ones), extended from the target rows added since the last call (the target only grows)."""
        seen, rows = self._migrated
        added = self.target.store.document_ids_from(seen)
        if added:
            found = self.store.rows_of_documents([i for _, i in added])
            self._migrated = (added[-1][0], np.concatenate([rows, found]))
        return self._migrated[1]

    def info(self) -> dict[str, Any]:
        """Collection.info of the old generation plus "migration": progress (state.progress)."""
        return {**super().info(), "migration": progress(self.path)}

    def check(self) -> list[str]:
        """The old generation's problems, then the target's (prefixed "migration target: ")."""
        return super().check() + [f"migration target: {p}" for p in self.target.check()]
