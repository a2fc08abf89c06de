"""A collection during `slimvec migrate`: search through the adapter and the target, writes refused.

Dense search encodes the query with the NEW model once. Documents already re-embedded are scored natively in
the target collection (new query . new vectors); the rest are scored in the old collection through the adapter
(mapped query . old vectors), the re-embedded ones masked out there, so each document is scored once. The two
scales differ, so a native score s is put on the adapted one as a * s + b: the query's own line from the
references kept at start (line.ScoreLine, merge "per-query"), or for a migration without references the one line
fitted on the sample at start (adapters.score_map, merge "line"); the merged list is ranked by that one score.
Other modes (BM25, SPLADE, hybrid) keep answering from the old collection with the old model until the switch.
Both `search_many(vectors=...)` and `search_vectors` take either model's query vectors, named by their `model`
argument: the OLD model's (what the LangChain and LlamaIndex stores embed with until the switch) search the old
collection, whole until the switch; the NEW model's run the dense search above. Without `model`, the dimensions
must tell the two apart (`search_many` then takes the new model's, `search_vectors` the old model's, as before
`model` existed); of equal dimensions they are refused, naming the argument. Vectors of the other model's
dimension are refused naming the migration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimvec.collection import Collection, _given_vectors, check_encoded
from slimvec.documents import Hit, rescored
from slimvec.encoders.base import Encoder
from slimvec.errors import CollectionError, ConfigError
from slimvec.migrate.adapters import load_adapter
from slimvec.migrate.line import ScoreLine, reference_depth
from slimvec.migrate.runner import finish_interrupted
from slimvec.migrate.state import TARGET, migration_dir, progress, read_record
from slimvec.retrievers.base import Query
from slimvec.search.options import SearchOptions
from slimvec.search.plan import make_plan, refuse_unused_vectors
from slimvec.search.rerank import Reranker
from slimvec.store import Store

# A migration started before session 8 kept every sample pair as a reference and recorded no depth: its line
# matches the top 2.5% (at least 20) of them, as it did then.
LEGACY_SHARE, LEGACY_MIN = 0.025, 20


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
        try:
            self.target = Collection.open(migration_dir(path) / TARGET, encoder if to_new else None)
        except BaseException:  # e.g. the switch moved the target in meanwhile: the old store's lock let go now
            self.store.close()
            raise
        try:
            self._load(path)
        except BaseException:
            self.close()
            raise

    def _load(self, path: Path) -> None:
        """The migration's adapter, score map and reference line, as the record names them."""
        self.adapter = load_adapter(migration_dir(path) / self.record["adapter_file"])
        self._map = tuple(self.record.get("score_map", (1.0, 0.0)))
        self.queries = self.record.get("queries", "adapter")
        ref = self.record.get("reference_file")
        self.line: ScoreLine | None = None
        if ref:
            with np.load(migration_dir(path) / ref, allow_pickle=False) as z:
                x, y = np.asarray(z["x_new"], np.float32), np.asarray(z["y_old"], np.float32)
            depth = self.record.get("line_depth") or reference_depth(len(x), LEGACY_SHARE, LEGACY_MIN)
            self.line = ScoreLine(x, y, depth)
        self.merge = "per-query" if self.line is not None else "line"
        self._migrated: tuple[int, np.ndarray] = (0, np.zeros(0, np.int64))  # (target rowid seen, old rows)
        self._kept_mask: tuple[tuple[Any, ...], np.ndarray] | None = None  # _old_part's mask without a filter

    def _refuse(self, *_: Any, **__: Any) -> int:
        raise CollectionError(f"{self.path}: a migration to {self.record['to']!r} is under way; writes are refused "
                              f"until it finishes (`slimvec migrate {self.path} --to {self.record['to']}`)")

    add = upsert = add_encoded = delete = compact = tune = reset_tuning = _refuse  # type: ignore[assignment]
    create_field_index = drop_field_index = _refuse  # type: ignore[assignment]
    # They write the old generation's manifest or calibration.json, which the switch replaces by the target's: a
    # BM25 index enabled now would be searched until the switch, then gone without a word.
    enable = set_calibrator = check_calibrator_writable = _refuse  # type: ignore[assignment]

    def close(self) -> None:
        self.target.close()
        super().close()

    def search_many(self, queries: list[str], options: SearchOptions | None = None, /, *,
                    vectors: np.ndarray | None = None, rerank: str | Reranker | None = None, encoded: bool = False,
                    model: str | None = None, **fields: Any) -> list[list[Hit]]:
        """As Collection.search_many; dense search runs through the migration (module doc). `vectors`, when
        given, are the NEW model's query vectors, float32 (len(queries), new dim), checked as the target checks
        them (`encoded` as `Collection.search_many`); a search the old collection runs alone (fused modes, a
        reranker) cannot use them and encodes the texts with the old model. `model` names whose they are, as
        `search_vectors` takes it: the new model's (the above), or the old model's, which search the old collection
        as before the migration. Raises ConfigError, when vectors are given without `model` and the two models'
        vectors have one dimension (nothing tells whose they are: a plain collection takes its own model's, this
        one the new model's), for a model that is neither, and for vectors of the wrong dimension."""
        check_encoded(encoded)
        # a named model is checked without vectors too, as a plain or sharded collection checks it
        named = self._vectors_model(model, "search_many") if vectors is not None or model is not None else None
        if vectors is not None and named == self.manifest["model"]:
            self._check_dim(vectors, "search_many", self, f"the old model's, as model={model!r} says",
                            f"model={self.record['to']!r} takes the new model's")
            return super().search_many(queries, options, vectors=vectors, rerank=rerank, encoded=encoded, **fields)
        self._check_dim(vectors, "search_many(vectors=...)", self.target, "the NEW model's, as the migrated part "
                        "scores them", "search_vectors takes the old model's")
        given = None
        if rerank is not None and not isinstance(rerank, str):
            given = rerank  # a Reranker object: the old collection's search
        elif rerank is not None:
            fields["rerank"] = rerank
        if (isinstance(queries, str) or not isinstance(queries, (list, tuple)) or not queries
                or any(not isinstance(q, str) or not q.strip() for q in queries)):
            return super().search_many(queries, options, **fields)  # the parent's one-line errors
        with self._lock:
            self._sync()
            plan = self._plan(options, fields, given)  # kept per option set, as the parent's search keeps it
        refuse_unused_vectors(plan, self.manifest.get("retrievers", ["dense"]), vectors, encoded)
        if given is not None or plan.retrievers != ("dense",) or plan.reranker is not None:
            if vectors is not None and plan.needs_query_vectors:
                # Checked as the dense path checks them (a zero row, a wrong shape), not dropped silently: this
                # search cannot use the new model's vectors, but a caller's bad ones are still a bug to report.
                _given_vectors(vectors, len(queries), int(self.target.manifest["dim"]), refuse_zeros=not encoded)
            return super().search_many(queries, options, **({} if given is None else {"rerank": given}), **fields)
        qn = vectors if vectors is not None else self.target.encoder.encode_queries(list(queries))
        qn = np.asarray(qn, np.float32)
        # a given zero vector is refused by the target; one encoded from a text finds nothing
        native = self.target.search_many(list(queries), options, vectors=qn, encoded=encoded or vectors is None,
                                         **fields)
        if self.queries == "old-model":
            mapped = np.asarray(self.encoder.encode_queries(list(queries)), np.float32)
        else:
            mapped = self.adapter.apply(qn)
        with self._lock:  # the state synced for the plan, or later (another thread's search may have synced)
            adapted = self._runner.run(plan, [Query(q, None, mapped[i]) for i, q in enumerate(queries)],
                                       self._retrievers, self._rows, self._old_part(plan.filter), self._calibrators)
        lines = self._lines(qn, mapped)
        return [_merge(ada, nat, a, b, plan.k) for (a, b), nat, ada in zip(lines, native, adapted)]

    def search_vectors(self, qvecs: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None, *,
                       model: str | None = None) -> list[list[Hit]]:
        """As Collection.search_vectors; `model` says whose query vectors these are (as Qdrant's `using` names a
        vector space), since during a migration two models' vectors are searched:

        - the old model's (the collection's recorded model, `info()["model"]`; the LangChain and LlamaIndex stores'
          embeddings): the old collection, whole until the switch, float32 (n, old dim);
        - the new model's (the migration's target, `record["to"]`): the dense search through the migration, as
          `search_many(vectors=...)` runs it (re-embedded documents scored natively, the rest with the adapter's
          mapping of the vector; a migration recorded with `queries="old-model"` maps them by the adapter too, as
          there is no text to encode with the old model), float32 (n, new dim);
        - None: the old model's when the two dimensions differ (the dimension then tells them apart, and the new
          model's are refused naming this argument); refused when they are equal, as nothing then tells whose they
          are and scoring one model's vectors against the other's rows ranks at random.

        Raises ConfigError for those refusals, a model that is neither, and vectors of the wrong dimension."""
        old, new = self.manifest["model"], self.record["to"]
        model = self._vectors_model(model, "search_vectors", default=old)
        if model == new:
            self._check_dim(qvecs, "search_vectors", self.target, f"the NEW model's, as model={new!r} says",
                            f"model={old!r} takes the old model's")
            return self._search_new_vectors(qvecs, k, filter)
        self._check_dim(qvecs, "search_vectors", self, "the old model's, as the collection is searched until the "
                        "switch", f"search_vectors(model={new!r}) and search_many(vectors=...) take the new model's")
        return super().search_vectors(qvecs, k, filter)

    def _vectors_model(self, model: Any, call: str, default: str | None = None) -> str:
        """Whose query vectors `call` was given: `model` (the old or the new model's name), or, when None,
        `default` (None: the new model's) where the two dimensions tell them apart. Raises TypeError for a
        `model` that is not a string, ConfigError for a model that is neither, or None when both dimensions
        are equal."""
        old, new = self.manifest["model"], self.record["to"]
        if model is not None and not isinstance(model, str):
            raise TypeError(f"{call}: model must be a model name (a string), not {type(model).__name__}")
        if model is None:
            dim = int(self.manifest["dim"])
            if dim == int(self.target.manifest["dim"]):
                raise ConfigError(f"{call} during the migration from {old!r} to {new!r}: both models' vectors have "
                                  f"dimension {dim}, so nothing tells whose these are; name them: model={old!r} "
                                  f"(the old collection) or model={new!r} (through the migration)")
            return new if default is None else default
        if model not in (old, new):
            raise ConfigError(f"{call}: model {model!r} is neither the collection's ({old!r}) nor the one it is "
                              f"migrating to ({new!r})")
        return model

    def _search_new_vectors(self, qvecs: Any, k: int, filter: dict[str, Any] | None) -> list[list[Hit]]:
        """search_vectors of the NEW model's vectors: the target scores its documents natively, the old part the
        adapter's mapping of each vector, merged as `search_many` merges them (module doc)."""
        qn = np.asarray(qvecs, dtype=np.float32)
        qn = _given_vectors(qn[None, :] if qn.ndim == 1 else qn, len(qn) if qn.ndim == 2 else 1,
                            int(self.target.manifest["dim"]))
        native = self.target.search_vectors(qn, k, filter)
        mapped = self.adapter.apply(qn)
        opts = SearchOptions.of(k=k, filter=filter, mode="dense", rerank="none")
        with self._lock:
            self._sync()
            plan = make_plan({}, self.manifest.get("retrievers", ["dense"]), int(self.manifest["dim"]), opts)
            adapted = self._runner.run(plan, [Query("", None, v) for v in mapped], self._retrievers, self._rows,
                                       self._old_part(plan.filter), {})
        return [_merge(ada, nat, a, b, plan.k) for (a, b), nat, ada in zip(self._lines(qn, mapped), native, adapted)]

    def _check_dim(self, vectors: Any, call: str, part: Collection, whose: str, other: str) -> None:
        """ConfigError when given query vectors' last dimension is not `part`'s: during a migration the two calls
        take different models' vectors, so the bare shape error ("expected dimension 64") would puzzle a caller
        whose collection `info` still shows the old dimension."""
        if vectors is None:
            return
        shape = np.shape(vectors)
        dim = int(part.manifest["dim"])
        if shape and shape[-1] != dim:
            raise ConfigError(f"{call}: query vectors of dimension {shape[-1]} during the migration to "
                              f"{self.record['to']!r}: they must be {whose} (dimension {dim}); {other}")

    def _old_part(self, filter: dict[str, Any] | None) -> np.ndarray:
        """(rows,) bool mask of the old rows the old part may score: allowed (alive, in the filter) and of a
        document the target does not hold. Without a filter it is kept until either collection commits (their
        generations as last synced: the target's by its own search just before), so a lone query pays no SQLite
        look-up or mask copy for it. Call under self._lock."""
        key = (self._generation, self._rows.alive, len(self._rows.alive), self.target._generation)
        kept = self._kept_mask
        if not filter and kept is not None and kept[0][0] == key[0] and kept[0][1] is key[1] and kept[0][2:] == key[2:]:
            return kept[1]
        allowed = self._allowed(filter).copy()
        done = self._migrated_rows()
        allowed[done[done < len(allowed)]] = False
        if not filter:
            self._kept_mask = (key, allowed)
        return allowed

    def _lines(self, qn: np.ndarray, qo: np.ndarray) -> list[tuple[float, float]]:
        """(a, b) per query putting native scores on the old part's scale (module doc); qn, qo: float32
        (queries, new dim) and (queries, old dim), the query as the two parts score it."""
        if self.merge == "plain":
            return [(1.0, 0.0)] * len(qn)
        if self.merge != "per-query" or self.line is None:
            return [tuple(self._map)] * len(qn)  # type: ignore[misc]
        a, b = self.line.lines(qn, qo)
        return list(zip(a.tolist(), b.tolist()))

    def _migrated_rows(self) -> np.ndarray:
        """Old chunk rows of the documents the target holds (the sample stored at start, then the re-embedded
        ones), extended from the target rows added since the last call (the target only grows)."""
        seen, rows = self._migrated
        # Under the target's state lock, as every use of a collection's SQLite connection: another thread's search
        # reads the target through the same connection under that lock only (not this collection's), and a sqlite3
        # connection is for one thread at a time (the error of the one statement's failing is lost to the other's:
        # "returned NULL without setting an exception", a DatabaseError instead of the OperationalError caught).
        with self.target._lock:
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


def _merge(adapted: list[Hit], native: list[Hit], a: float, b: float, k: int) -> list[Hit]:
    """The top k of two best-first hit lists, a native hit's score s taken as float32(a*s + b) (a >= 0 keeps
    the native list's order); on equal scores the adapted hit first. Only the native hits kept are copied."""
    put = [float(np.float32(a * h.score + b)) for h in native]
    if a < 0:  # a line fitted at start with a negative slope (never seen): reorder by the mapped scores
        order = sorted(range(len(native)), key=lambda n: -put[n])
        native, put = [native[n] for n in order], [put[n] for n in order]
    out: list[Hit] = []
    i = j = 0
    while len(out) < k and (i < len(adapted) or j < len(native)):
        if j >= len(native) or (i < len(adapted) and adapted[i].score >= put[j]):
            out.append(adapted[i])
            i += 1
        else:
            out.append(rescored(native[j], put[j]))
            j += 1
    return out

