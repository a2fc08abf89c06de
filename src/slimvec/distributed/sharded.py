"""A sharded collection: one ordinary slimvec collection per shard behind the Collection API.

Writes are routed by document id (`router.shard_of`) and commit per shard; searches scatter to every shard
(in this process, or to one Ray actor per shard) and merge the per-shard top k (`merge.merge_hits`). Fused
modes merge each part's per-shard rankings first and fuse once, with the registered fuser, so fusion sees the
same global rankings as in one collection.

BM25 scores with corpus-wide statistics: before a search that runs BM25 the router sums the shards' own
statistics (N, total length, document frequencies; cached until a shard's rows change) and hands the total to
every shard (`retrievers/bm25_global.py`), so BM25 scores equal one collection's.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.chunking import chunk_text
from slimvec.collection import (
    Collection,
    _field_names,
    _fusion_info,
    _given_vectors,
    _search_profile,
    _validated,
    check_encoded,
    check_queries,
    check_vectors_model,
    delete_selection,
    page_size,
)
from slimvec.distributed.merge import merge_hits, merge_rows
from slimvec.distributed.router import (
    FORMAT_VERSION,
    ROUTER_FILE,
    ROUTING,
    read_router,
    shard_dirs,
    shard_of,
    write_router,
)
from slimvec.distributed.shards import LocalShard, StaleBm25Stats
from slimvec.documents import Document, Hit, make_hit, rescored
from slimvec.encoders.base import Encoder
from slimvec.errors import CollectionError, ConfigError, FilterError, IngestError, SlimvecError, StoredIdError
from slimvec.ids import lone_surrogate
from slimvec.retrievers.base import Query
from slimvec.retrievers.bm25_global import Bm25Stats
from slimvec.search import calibration
from slimvec.search.fusion import fuse
from slimvec.search.options import SearchOptions
from slimvec.search.plan import SearchPlan, make_plan, modes, refuse_unused_vectors
from slimvec.search.recent import KeepsQueries, RecentQueries
from slimvec.search.rerank import Candidates, Reranker, rerank
from slimvec.store.filters import compile_filter, field_path, filter_type_mismatch
from slimvec.store.ordinals import OrdinalTable
from slimvec.store.store import MANIFEST, Store

MAX_SHARDS = 1024  # far more than any cluster this targets; a typo (100000) would make 100,000 collections
ORDINALS_FILE = "ordinals.db"
_ROW_BITS = 24  # reranked rows are numbered (commit ordinal << _ROW_BITS) + position among the document's rows
_UNKNOWN_ORDINAL = 2**38  # a document with no ordinal loses every tie (as in merge.py)


def create_sharded(path: str | Path, shards: int, profile: str | None = None, model: str | None = None,
                   encoder: Encoder | None = None, ray: bool = False, address: str | None = None,
                   **options: Any) -> "ShardedCollection":
    """Create an empty sharded collection: `shards` ordinary collections under `path`/shards/ and the router
    manifest `path`/shards.json (written last: a directory without it is no collection).

    profile, model, encoder and `options` are those of `Collection.create`, shared by every shard; ray/address:
    as `ShardedCollection`. Raises ConfigError for shards < 1, CollectionError when `path` is not empty.
    """
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ConfigError(f"shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    root = Path(path)
    if root.exists() and any(root.iterdir()):
        if not unfinished_create(root):
            raise CollectionError(f"{root}: directory is not empty; a sharded collection needs an empty directory")
        # A create that was killed before its router manifest: its shard collections are empty (documents are
        # written only through a finished one), so they are made again, with this call's settings.
        shutil.rmtree(root / "shards")
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    dirs = shard_dirs(shards)
    first = None
    try:
        for d in dirs:
            col = Collection.create(root / d, model=model, profile=profile, encoder=encoder, **options)
            if first is None:
                first = col.manifest
                encoder = col.encoder  # load the model once for every shard
            col.close()
    except Exception:
        # Settings the first shard refuses (an unknown index, a reranker that cannot load) leave nothing behind, as
        # a plain collection's create does; a later failure is what `unfinished_create` makes again.
        if first is None:
            shutil.rmtree(root / "shards", ignore_errors=True)
            if made:
                shutil.rmtree(root, ignore_errors=True)
        raise
    assert first is not None
    write_router(root, {"format_version": FORMAT_VERSION, "routing": ROUTING, "shards": dirs,
                        "model": first["model"], "dim": first["dim"], "retrievers": first["retrievers"],
                        "profile": first["profile"],
                        **({"model_fusion_weight": first["model_fusion_weight"]} if "model_fusion_weight" in first
                           else {})})
    return ShardedCollection(root, encoder=None if ray or address else encoder, ray=ray, address=address)


def unfinished_create(path: str | Path) -> bool:
    """Whether `path` holds what an interrupted `create_sharded` leaves: no router manifest, nothing but a
    `shards/` folder of shard directories, each either half-made (no collection manifest yet) or a collection
    holding no document. Only such a directory is made again by `create_sharded`; anything else is refused."""
    root = Path(path)
    if (root / ROUTER_FILE).exists() or sorted(p.name for p in root.iterdir()) != ["shards"]:
        return False
    dirs = list((root / "shards").iterdir())
    if not all(d.is_dir() and len(d.name) == 3 and d.name.isdigit() for d in dirs):
        return False
    for d in dirs:
        if not (d / "manifest.json").is_file():
            continue  # Collection.create writes the manifest last: nothing was ever stored here
        try:
            store = Store.open(d)
        except CollectionError:
            return False
        try:
            if any(store.counts().values()):  # a document, a chunk, or a row ever committed
                return False
        finally:
            store.close()
    return True


def open_sharded(path: str | Path, encoder: Encoder | None = None, ray: bool = False,
                 address: str | None = None) -> "ShardedCollection":
    """Open a sharded collection (what `Collection.open` returns for a directory holding shards.json)."""
    return ShardedCollection(Path(path), encoder=encoder, ray=ray, address=address)


class ShardedCollection(KeepsQueries):
    """The Collection API (add, upsert, delete, get, search, search_many, info, check) over N shard collections.

    ray=False: shards are opened in this process and called one after the other. ray=True (or an `address`):
    one Ray actor per shard holds it open (`slimvec.distributed.actors`); a local Ray instance is started when
    none is running and no address is given. Results are the same either way.
    """

    def __init__(self, path: Path, encoder: Encoder | None = None, ray: bool = False,
                 address: str | None = None) -> None:
        self.path = Path(path)
        self.router = read_router(self.path)
        # The query encoder is taken from shard 0's collection (`encoder`), which pools queries as its manifest
        # says (a late collection of a [CLS] model: token mean); the given object may pool otherwise.
        self._given = encoder
        self._encoder: Encoder | None = None
        dirs = [self.path / d for d in self.router["shards"]]
        missing = [str(d) for d in dirs if not (d / "manifest.json").is_file()]
        if missing:
            raise CollectionError(f"{self.path / ROUTER_FILE}: shard {missing[0]} holds no collection")
        self._ray = bool(ray or address)
        if self._ray:
            from slimvec.distributed.actors import RayShard, connect

            connect(address)
            self.shards: list[Any] = [RayShard(i, d) for i, d in enumerate(dirs)]
            for s in self.shards:  # fail here, naming the shard, if one cannot open
                s.result(s.submit("ready"))
        else:
            self.shards = [LocalShard(i, d, encoder) for i, d in enumerate(dirs)]
        # A router written by session 20's slimvec copied the model's weights into its profile without the mark its
        # shards' manifests carry ("fusion_weights_from_model"): taken from shard 0 (opened above, so readable), so
        # searches plan them as a plain collection's (`collection._search_profile`).
        marked = json.loads((dirs[0] / MANIFEST).read_text(encoding="utf-8")).get("fusion_weights_from_model")
        self._profile, self._model_weight = _search_profile(
            {**self.router, "fusion_weights_from_model": bool(marked) and "model_fusion_weight" not in self.router})
        self.ordinals = OrdinalTable(self.path / ORDINALS_FILE)
        self._calibrators = calibration.load_calibrators(self.path)
        self._calibration_seen = _file_key(self.path / calibration.FILE)
        self._recent = RecentQueries()  # query vectors kept to tune on (keep_queries), none by default
        # Writes and BM25 searches take it: the statistics a search hands the shards must be the ones their rows
        # have when it runs (the shards refuse to score with out-of-date ones).
        self._lock = threading.RLock()
        self._bm25_keys: list[str] | None = None  # each shard's stats_key when the total below was summed
        self._bm25_total: Bm25Stats | None = None
        # The ordinal counter when the shards last counted their live rows for BM25 (see `_bm25_global`).
        self._bm25_refreshed = self.ordinals.issued()
        # Read handles on the stores of Ray shards on this node, for the payloads of final hits (`_read_here`).
        self._readers: dict[int, Store] = {}
        self._readers_lock = threading.RLock()

    # ---- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release every shard (Ray actors are ended) and the ordinal table."""
        self._close_readers()
        for s in self.shards:
            s.close()
        self.ordinals.close()

    def __enter__(self) -> "ShardedCollection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def manifest(self) -> dict[str, Any]:
        """The router manifest: format version, routing rule, shard directories, model, dim, retrievers, profile."""
        return dict(self.router)

    @property
    def encoder(self) -> Encoder:
        """The shards' model, loaded here on first use to encode queries once for every shard."""
        if self._encoder is None:
            first = self.shards[0]
            if isinstance(first, LocalShard):
                self._encoder = first.core.col.encoder
            else:
                # shard 0's model, the collection closed again: a handle kept open would stop its compaction
                with Collection.open(self.path / self.router["shards"][0], self._given) as first_col:
                    self._encoder = first_col.encoder
        return self._encoder

    def shard_for(self, doc_id: str) -> int:
        """The shard that owns `doc_id`."""
        return shard_of(doc_id, len(self.shards))

    # ---- writing -----------------------------------------------------------------------------
    def add(self, docs: Iterable[Document], progress: bool = False) -> int:
        """Add new documents; returns how many were stored.

        The whole call is checked first on every shard (types, empty texts, repeated ids, ids already stored in
        their shard), then each shard commits its part in one transaction, shard by shard. A shard that still
        refuses its part (the model gives a non-finite vector) raises IngestError naming it; the parts earlier
        shards committed stay (each shard is crash-safe on its own; a call is not atomic across shards).
        """
        return self._write(docs, replace=False)

    def upsert(self, docs: Iterable[Document], progress: bool = False) -> int:
        """Add documents, replacing stored ones with the same id (in their owning shard); as `add` otherwise."""
        return self._write(docs, replace=True)

    def _write(self, docs: Iterable[Document], replace: bool) -> int:
        with self._lock:
            return self._write_parts(docs, replace)

    def _after_adding_write(self) -> None:
        """Every shard takes the rows deleted so far out of its BM25 statistics now (`Bm25Retriever.refresh_live`),
        as one collection's sync does after any write, so the corpus-wide sum the next search makes counts the
        rows one collection would, a shard that got no part of this call included."""
        if "bm25" in self.router["retrievers"]:
            self._gather("bm25_refresh")
            self._bm25_refreshed = self.ordinals.issued()

    def _write_parts(self, docs: Iterable[Document], replace: bool) -> int:
        if isinstance(docs, (str, bytes, Document)) or not isinstance(docs, Iterable):
            raise TypeError(f"docs must be a list or iterable of slimvec.Document, not {type(docs).__name__}")
        given = list(docs)
        checked = _validated(given, replace)
        if not checked:
            return 0
        parts: dict[int, list[Document]] = {}
        for d in checked:
            parts.setdefault(self.shard_for(d.id), []).append(d)
        if not replace:
            pending = {s: self.shards[s].submit("stored", [d.id for d in part]) for s, part in parts.items()}
            clash = set().union(*(self.shards[s].result(p) for s, p in pending.items()))
            if clash:
                i, d = next((i, d) for i, d in enumerate(given) if d.id in clash)
                raise StoredIdError(f"id {d.id!r} (position {i}) is already stored (shard {self.shard_for(d.id)}; "
                                  "use upsert to replace it); nothing from this call was stored")
        same: set[str] = set()
        if replace:
            # A document an upsert leaves as it is keeps its rows in its shard, so it keeps its ordinal too: a new
            # one moved it behind every later document in ties (one collection keeps its place), and the shard's
            # own row order then disagreed with the ordinals. Asked before the commits, without the writer lock:
            # another writer changing one of them meanwhile may leave its ties off until its next write.
            pending = {s: self.shards[s].submit("unchanged", part) for s, part in parts.items()}
            same = set().union(*(self.shards[s].result(p) for s, p in pending.items()))
        # Ordinals before the commits: a stored document always has one (see store/ordinals.py).
        self.ordinals.assign([d.id for d in checked if d.id not in same])
        done = 0
        try:
            for s in sorted(parts):
                try:
                    done += self.shards[s].result(self.shards[s].submit("write", parts[s], replace))
                except IngestError as e:
                    raise IngestError(f"shard {s} ({self.router['shards'][s]}) refused its part: {e} "
                                      f"({done} documents of this call were committed in earlier shards)") from None
        finally:
            self._after_adding_write()
        return done

    def delete(self, ids: Iterable[str] | None = None, *, filter: dict[str, Any] | None = None) -> int:
        """Delete documents by id (each in its owning shard), or those matching `filter` in every shard; returns
        how many existed. Unknown ids are ignored. As `Collection.delete`, except that a filter delete commits
        shard by shard (each shard whole), not in one transaction across shards."""
        ids = delete_selection(ids, filter)
        if ids is None:
            compile_filter(filter)  # malformed: refused before any shard deletes
            with self._lock:  # as a delete by ids (below): BM25 searches through other threads wait for it
                deleted = [i for part in self._deleting([(s, "delete_matching", (filter,)) for s in
                                                         range(len(self.shards))]) for i in part]
            if not deleted:
                self._explain_filter(filter)
            return len(deleted)
        ids = [i for i in ids if not lone_surrogate(i)]  # no shard can hold such an id: nothing to delete
        parts: dict[int, list[str]] = {}
        for i in ids:
            parts.setdefault(self.shard_for(i), []).append(i)
        # Under the lock writes and BM25 searches take: a delete changes its shards' BM25 statistics, and a search
        # through another thread that had handed them the corpus-wide sum before was refused by the shard ("BM25
        # corpus-wide statistics are out of date for this shard ... search through the router").
        with self._lock:
            n = sum(self._deleting([(s, "delete", (part,)) for s, part in sorted(parts.items())],
                                   lambda s, got: parts[s]))
        return n

    def _deleting(self, calls: list[tuple[int, str, tuple[Any, ...]]],
                  ids_of: Any = lambda s, got: got) -> list[Any]:
        """Each (shard, method, args) delete, all sent before any result is awaited; their results in the order
        given. Every shard is asked even when one fails: each commits whole or not at all on its own, so a failing
        shard (its disk full, its write lock held) must not stop the others, nor may its error's "nothing was
        written" stand for the whole call while other shards did delete. The ordinals of the ids deleted are
        forgotten; a failure is raised as the first failing shard's error class, naming it and what the other
        shards deleted. `ids_of(shard, result)`: the ids a shard's result deleted."""
        results, failed = self._ask_each(calls)
        self.ordinals.forget([i for s, got in results.items() for i in ids_of(s, got)])
        if failed:
            s, e = min(failed, key=lambda f: f[0])
            done = sum(len(r) if isinstance(r, list) else int(r) for r in results.values())
            if not isinstance(e, SlimvecError):
                raise e
            others = (f"the other shards deleted {done} documents (each shard commits on its own; run the delete "
                      "again to finish)" if results else "no other shard deleted anything")
            failing = ", ".join(f"{f} ({self.router['shards'][f]})" for f, _ in sorted(failed, key=lambda f: f[0]))
            raise type(e)(f"shard {failing} could not delete: {e}; {others}") from None
        return [results[s] for s, _, _ in calls]

    def _ask_each(self, calls: list[tuple[int, str, tuple[Any, ...]]]
                  ) -> tuple[dict[int, Any], list[tuple[int, Exception]]]:
        """Each (shard, method, args) call, all sent before any result is awaited, every shard asked even when one
        fails (each commits on its own); returns ({shard: result}, [(shard, error)]) for the caller to report."""
        pending: dict[int, Any] = {}
        results: dict[int, Any] = {}
        failed: list[tuple[int, Exception]] = []
        for s, method, args in calls:
            try:  # a LocalShard runs the call in submit: its error is raised here
                pending[s] = self.shards[s].submit(method, *args)
            except Exception as e:  # noqa: BLE001 - the caller raises it, once every shard has answered
                failed.append((s, e))
        for s, p in pending.items():
            try:
                results[s] = self.shards[s].result(p)
            except Exception as e:  # noqa: BLE001 - as above
                failed.append((s, e))
        return results, failed

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id (asked of its owning shard), or None. Raises TypeError for an id that
        is not a string, as `Collection.get`."""
        if not isinstance(doc_id, str):
            raise TypeError(f"document ids are strings, not {type(doc_id).__name__} ({doc_id!r})")
        s = self.shards[self.shard_for(doc_id)]
        return s.result(s.submit("get", doc_id))

    def __len__(self) -> int:
        return sum(self._gather("count"))

    def create_field_index(self, fields: str | Iterable[str]) -> list[str]:
        """`Collection.create_field_index` in every shard (each in one transaction); the fields newly indexed.

        Every shard is asked even when one fails (its write lock held, its disk full): each commits on its own, so
        the error names the failing shards, the shards that have the index now, and the command that finishes the
        job or takes it off them again."""
        names = _field_names(fields)  # as one collection checks them: bytes or a number is not iterated or matched
        for f in names:
            field_path(f)  # a name filters cannot write: refused before any shard changes
        made, failed = self._ask_each([(s, "field_index", (names, False)) for s in range(len(self.shards))])
        if failed:
            failed.sort(key=lambda f: f[0])
            e = failed[0][1]
            shown = " ".join(f"'{n}'" for n in names)
            failing = ", ".join(f"{s} ({self.router['shards'][s]})" for s, _ in failed)
            have = ", ".join(f"{s} ({self.router['shards'][s]})" for s in sorted(made))
            new = " ".join(f"'{n}'" for n in sorted(set().union(*made.values())))
            now = (f"shards {have} have the index now (each shard commits on its own): run `slimvec field-index "
                   f"{self.path} {shown}` (create_field_index) again once the cause is fixed to finish"
                   + (f", or `slimvec field-index {self.path} {new} --drop` to take off what this call made" if new
                      else "") if made else "no shard made the index")
            msg = f"field index {', '.join(names)}: shard {failing} could not make it: {e}; {now}"
            if isinstance(e, SlimvecError):
                raise type(e)(msg) from None
            raise CollectionError(msg) from e
        return sorted(set().union(*made.values()))

    def drop_field_index(self, fields: str | Iterable[str]) -> list[str]:
        """`Collection.drop_field_index` in every shard; the fields that were indexed."""
        names = _field_names(fields)
        return sorted(set().union(*self._gather("field_index", names, True)))

    def field_indexes(self) -> list[str]:
        """The fields indexed in every shard (`Collection.field_indexes`)."""
        return sorted(set.intersection(*(set(f) for f in self._gather("field_indexes"))))

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """Documents stored in every shard, or matching `filter` (`Collection.count`)."""
        n = sum(self._gather("count", filter))
        if not n and filter:
            self._explain_filter(filter)
        return n

    def scroll(self, filter: dict[str, Any] | None = None, limit: int = 100,
               offset: str | None = None) -> tuple[list[Document], str | None]:
        """`Collection.scroll` over every shard: each shard's page from `offset`, merged in id order (a shard's
        own order, so the pages equal one collection's holding the same documents)."""
        limit = page_size(limit)
        pages = self._gather("scroll", filter, limit + 1, offset)
        found = sorted((d for docs, _ in pages for d in docs), key=lambda d: d.id)
        if not found and filter:
            self._explain_filter(filter)
        return found[:limit], (found[limit].id if len(found) > limit else None)

    # ---- searching ---------------------------------------------------------------------------
    def search(self, query: str, options: SearchOptions | None = None, /, *,
               rerank: str | Reranker | None = None, **fields: Any) -> list[Hit]:
        """The top `k` documents for `query` over every shard; options and scores as `Collection.search`."""
        return self.search_many([query], options, rerank=rerank, **fields)[0]

    def search_vectors(self, qvecs: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None, *,
                       model: str | None = None) -> list[list[Hit]]:
        """Dense-only document hits for already-encoded query vectors, float32 of shape (n, dim) or (dim,), over
        every shard: `Collection.search_vectors` (the LangChain and LlamaIndex stores search by vector with it),
        `model` as there."""
        check_vectors_model(model, self.router["model"], "search_vectors")
        v = np.asarray(qvecs, dtype=np.float32)
        v = v[None, :] if v.ndim == 1 else v
        # A dense search without a reranker reads no query text; search_many takes one per vector all the same.
        return self.search_many(["(vector)"] * len(v), vectors=v, k=k, filter=filter, mode="dense", rerank="none")

    def search_many(self, queries: list[str], options: SearchOptions | None = None, /, *,
                    vectors: np.ndarray | None = None, rerank: str | Reranker | None = None, encoded: bool = False,
                    model: str | None = None, **fields: Any) -> list[list[Hit]]:
        """`search` for several queries; dense query vectors are encoded once here (or given as `vectors`, float32
        of shape (len(queries), dim)) and sent to every shard. `encoded` and `model` as `Collection.search_many`:
        the vectors are the query texts encoded by the caller, so a zero row finds nothing instead of being refused.

        Raises ConfigError as `Collection.search_many`, and for what is not sharded (`_refuse_unsharded`).
        """
        if isinstance(queries, str) or not isinstance(queries, (list, tuple)):
            raise TypeError(f"queries must be a list of strings, not {type(queries).__name__}")
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ConfigError("query is empty")
        check_encoded(encoded)
        check_vectors_model(model, self.router["model"], "search_many")
        given = None
        if rerank is not None and not isinstance(rerank, str):
            given = rerank  # a Reranker object: it runs here, at the router
        elif rerank is not None:
            fields["rerank"] = rerank
        opts = SearchOptions.of(options, **fields)
        calibrators = self._current_calibrators()
        plan = make_plan(self._profile, self.router["retrievers"], int(self.router["dim"]), opts,
                         frozenset(calibrators), given, self._model_weight)
        _refuse_unsharded(plan, opts)
        refuse_unused_vectors(plan, self.router["retrievers"], vectors, encoded)
        if vectors is not None and plan.needs_query_vectors:  # checked here, a zero one refused: shards take them
            vectors = _given_vectors(vectors, len(queries), int(self.router["dim"]),  # as encoded texts
                                     refuse_zeros=not encoded)
        if vectors is None and plan.needs_query_vectors and not plan.needs_query_tokens:
            vectors = self.encoder.encode_queries(list(queries))
        if "bm25" in plan.retrievers:
            with self._lock:
                try:
                    first = self._run(plan, opts, list(queries), vectors, self._bm25_global())
                except StaleBm25Stats:  # a shard's actor restarted since: hand the statistics over again, once
                    first = self._run(plan, opts, list(queries), vectors, self._bm25_global())
        else:
            first = self._run(plan, opts, list(queries), vectors)
        if plan.needs_query_vectors and vectors is not None:  # checked by the shards that searched with them
            self._recent.add(np.asarray(vectors, np.float32))
        if opts.filter and not all(first):
            self._explain_filter(opts.filter)
        hits = first if plan.reranker is None else self._reranked(plan, list(queries), first, vectors)
        if plan.calibrate:  # on the merged top k, as one collection calibrates its own
            cal = calibrators.get(plan.mode)
            hits = [calibration.apply(cal, h, plan.min_relevance, plan.mode) for h in hits]
        return hits

    def _explain_filter(self, flt: dict[str, Any]) -> None:
        """FilterError, as one collection raises it, when `flt` matches no document of any shard because a value's
        type or field is in none of them (each shard alone cannot tell: the field may live in another shard)."""
        states = self._gather("filter_state", flt)
        if any(matches for _, matches in states) or not any(held for held, _ in states):
            return
        msg = filter_type_mismatch(flt, lambda path: set().union(*self._gather("metadata_types", path)))
        if msg:
            raise FilterError(msg)

    # ---- relevance calibration (calibration.json in the router directory) -------------------------
    @property
    def calibrators(self) -> dict[str, calibration.Calibrator]:
        """Relevance calibrators by search mode (fitted on this collection's scores, which equal one collection's);
        a property, as `Collection.calibrators` is (`slimvec calibrate --report-split` reads it so)."""
        return dict(self._current_calibrators())

    def _current_calibrators(self) -> dict[str, calibration.Calibrator]:
        """The router's calibrators as calibration.json holds them now: one collection re-reads the file at the
        generation another handle's set_calibrator bumps; a router has no generation, so it looks at the file (a
        server kept searching without a calibration fitted by `slimvec calibrate` after it opened)."""
        key = _file_key(self.path / calibration.FILE)
        if key != self._calibration_seen:
            with self._lock:
                self._calibrators = calibration.load_calibrators(self.path)
                self._calibration_seen = key
        return self._calibrators

    def check_calibrator_writable(self) -> None:
        """As Collection's: the router's calibration.json is always writable."""

    def set_calibrator(self, mode: str, calibrator: calibration.Calibrator) -> None:
        """Store `mode`'s calibrator in the router's calibration.json (atomically) and use it from now on; the
        checks and errors of `Collection.set_calibrator`."""
        with self._lock:
            calibration.checked(mode, calibrator, modes(list(self.router["retrievers"])))
            calibrators = {**self._calibrators, mode: calibrator}
            calibration.save_calibrators(self.path, calibrators)
            self._calibrators = calibrators
            self._calibration_seen = _file_key(self.path / calibration.FILE)

    def _bm25_global(self) -> str:
        """Hand every shard the corpus-wide BM25 statistics (summed again only when a shard's rows changed);
        returns their key, which the searches then carry."""
        issued = self.ordinals.issued()
        if issued != self._bm25_refreshed:  # another process (a server, the CLI) added documents since
            self._gather("bm25_refresh")
            self._bm25_refreshed = issued
        states = self._gather("bm25_state")
        keys = [own for own, _ in states]
        if keys != self._bm25_keys or self._bm25_total is None:
            self._bm25_total = Bm25Stats.total(self._gather("bm25_stats"))
            self._bm25_keys = keys
        key = "|".join(keys)
        pending = [(s, s.submit("bm25_use", self._bm25_total, key, keys[i]))
                   for i, s in enumerate(self.shards) if states[i][1] != key]
        for s, p in pending:
            s.result(p)
        return key

    def _run(self, plan: SearchPlan, opts: SearchOptions, queries: list[str],
             vectors: np.ndarray | None, bm25_key: str | None = None) -> list[list[Hit]]:
        """The first stage: each query's global top plan.first_stage (the top k when nothing reranks)."""
        # A reranker reads each candidate's best chunk, named by its span: the first stage keeps the payload.
        payload = opts.with_payload or plan.reranker is not None
        base = {"filter": opts.filter, "with_payload": payload, "unit": opts.unit, "rerank": "none"}
        k = plan.first_stage
        if len(plan.retrievers) == 1:
            options = {**base, "mode": plan.mode, "k": k}
            if opts.unit == "document" and plan.reranker is None:
                hits = self._run_rows(list(queries), options, vectors, bm25_key, k, opts.with_payload)
                if hits is not None:
                    return hits
            per_shard = self._gather("search_many", list(queries), options, vectors, bm25_key)
            ords = self.ordinals.get(h.id for hits in per_shard for q in hits for h in q)
            return [merge_hits([hits[i] for hits in per_shard], k, ords) for i in range(len(queries))]
        return self._fused(plan, list(queries), base, vectors, bm25_key)

    def _run_rows(self, queries: list[str], options: dict[str, Any], vectors: np.ndarray | None,
                  bm25_key: str | None, k: int, with_payload: bool) -> list[list[Hit]] | None:
        """The top k in two rounds: every shard's top k as (id, score, best-chunk row), no payload; the merge;
        then the payloads of the final k only, from the shards that hold them (one call each, all sent before
        any answer is read). None when a shard changed between the rounds: the caller searches with payload."""
        got = self._gather("search_rows", queries, options, vectors, bm25_key)
        if any(g is None for g in got):
            return None
        ords = self.ordinals.get([doc_id for _, per_query in got for hits in per_query for doc_id, _, _ in hits])
        tops = [merge_rows([per_query[i] for _, per_query in got], k, ords) for i in range(len(queries))]
        if not with_payload:
            return [[Hit(doc_id, score, "", "", {}) for _, doc_id, score, _ in top] for top in tops]
        wanted: dict[int, set[int]] = {}
        for top in tops:
            for s, _, _, row in top:
                wanted.setdefault(s, set()).add(row)
        chunks = self._payloads({s: (got[s][0], sorted(rows)) for s, rows in wanted.items()})
        if chunks is None:
            return None
        return [[_payload_hit(chunks[s][row], score) for s, _, score, row in top] for top in tops]

    def _reranked(self, plan: SearchPlan, queries: list[str], first: list[list[Hit]],
                  vectors: np.ndarray | None) -> list[list[Hit]]:
        """Rerank each query's global first stage once, here, with what one collection's rerank stage reads
        (each candidate's allowed chunk rows, texts and vectors, asked of its shard): the same candidates in
        the same order, so the same scores. Rows are renumbered in one collection's row order (commit ordinal,
        then the shard's row order within a document), which `rerank` uses to break ties."""
        reranker = plan.reranker
        assert reranker is not None
        wanted: dict[int, dict[tuple[str, int, int], None]] = {}
        for hits in first:
            for h in hits:
                wanted.setdefault(self.shard_for(h.id), {})[(h.id, h.chunk_start, h.chunk_end)] = None
        pending = {s: self.shards[s].submit("rerank_rows", list(items), plan.filter, reranker.needs_text,
                                            reranker.needs_vectors) for s, items in wanted.items()}
        got: dict[tuple[str, int, int], dict[str, Any]] = {}
        for s, items in wanted.items():
            got.update(zip(items, self.shards[s].result(pending[s])))
        ords = self.ordinals.get(h.id for hits in first for h in hits)
        out = []
        for i, (q, hits) in enumerate(zip(queries, first)):
            docs, counts, rows, texts, vecs, chunks = [], [], [], [], [], {}
            for n, h in enumerate(hits):
                c = got[(h.id, h.chunk_start, h.chunk_end)]
                if not c["rows"]:
                    continue
                within = {r: j for j, r in enumerate(sorted(c["rows"]))}
                base = ords.get(h.id, _UNKNOWN_ORDINAL) << _ROW_BITS
                docs.append(n)
                counts.append(len(c["rows"]))
                for r, chunk in zip(c["rows"], c["chunks"]):
                    rows.append(base + within[r])
                    chunks[rows[-1]] = chunk
                    texts.append(chunk_text(chunk.title, chunk.text))
                if reranker.needs_vectors:
                    vecs.append(c["vectors"])
            cands = Candidates(np.array(docs, dtype=np.int64), np.array(counts, dtype=np.int64),
                               np.array(rows, dtype=np.int64), texts if reranker.needs_text else None)
            if reranker.needs_vectors and rows:
                cands.vectors = np.concatenate(vecs)
            query = Query(q, None, None if vectors is None else vectors[i])
            top = rerank(reranker, query, cands, plan.k)
            out.append([_reranked_hit(hits[d], score, chunks[r], plan.with_payload) for d, score, r in top])
        return out

    def _fused(self, plan: SearchPlan, queries: list[str], base: dict[str, Any],
               vectors: np.ndarray | None, bm25_key: str | None = None) -> list[list[Hit]]:
        """Each part's global ranking (merged from the shards at the plan's depth), then one fusion per query."""
        parts = []
        for name in plan.retrievers:
            per_shard = self._gather("search_many", queries, {**base, "mode": name, "k": plan.depth}, vectors,
                                     bm25_key if name == "bm25" else None)
            ords = self.ordinals.get(h.id for hits in per_shard for q in hits for h in q)
            parts.append([merge_hits([hits[i] for hits in per_shard], plan.depth, ords) for i in range(len(queries))])
        out = []
        for i in range(len(queries)):
            number: dict[str, int] = {}
            first_hit: dict[int, Hit] = {}  # the snippet comes from the first part that holds the document
            rankings = []
            for part in parts:
                ranking = []
                for h in part[i]:
                    n = number.setdefault(h.id, len(number))
                    first_hit.setdefault(n, h)
                    ranking.append((n, h.score, n))
                rankings.append(ranking)
            top = fuse(rankings, plan.first_stage, plan.fusion or "rrf", **plan.fusion_options)
            out.append([rescored(first_hit[n], s, relevance=None) for n, s, _ in top])
        return out

    def _gather(self, method: str, *args: Any) -> list[Any]:
        """Call `method` on every shard (all submitted before any result is awaited), results in shard order."""
        if self._ray:
            from slimvec.distributed.actors import gather

            return gather(self.shards, method, *args)
        return [s.result(s.submit(method, *args)) for s in self.shards]

    def _payloads(self, wanted: dict[int, tuple[int, list[int]]]) -> dict[int, dict[int, Any]] | None:
        """Stored chunks of the rows wanted from each shard (generation, rows). A Ray shard on this node is read
        here, from its files (`_read_here`), which spares the shard's process a second wake-up per query; any
        other shard is asked (`ShardCore.payloads`), all at once. None when a shard has changed since."""
        out: dict[int, dict[int, Any]] = {}
        ask = []
        for s, (generation, rows) in wanted.items():
            got = self._read_here(s, generation, rows) if self._ray else None
            if got is None:
                ask.append(s)
            else:
                out[s] = got
        answers = self._each([(s, "payloads", wanted[s]) for s in ask])
        if any(a is None for a in answers):
            return None
        out.update(zip(ask, answers))
        return out

    def _read_here(self, s: int, generation: int, rows: list[int]) -> dict[int, Any] | None:
        """The rows' stored chunks read from shard `s`'s store by this process, when the shard's actor runs on
        this node and the store is still at `generation`; else None. The store is opened on first use, and again
        once when its generation differs (a compaction replaced its files under the old handle)."""
        if not isinstance(self.shards[s]._endpoint, tuple):  # no local socket: another node, or not known yet
            return None
        with self._readers_lock:
            for attempt in range(2):
                store = self._readers.get(s)
                if store is None:
                    store = self._readers[s] = Store.open(self.path / self.router["shards"][s])
                if store.generation == generation:
                    got = store.chunks_for_rows(rows)
                    return got if len(got) == len(rows) else None
                if attempt == 0:
                    self._close_readers([s])
        return None

    def _close_readers(self, which: Iterable[int] | None = None) -> None:
        """Close this process's read handles on shard stores (all by default): a compaction needs none open."""
        with self._readers_lock:
            for s in list(self._readers if which is None else which):
                store = self._readers.pop(s, None)
                if store is not None:
                    store.close()

    def _each(self, calls: list[tuple[int, str, tuple[Any, ...]]]) -> list[Any]:
        """One call per (shard number, method, args), all submitted before any result is awaited; results in
        the order given."""
        if self._ray:
            from slimvec.distributed.actors import scatter

            return scatter([(self.shards[s], method, args) for s, method, args in calls])
        return [self.shards[s].result(self.shards[s].submit(method, *args)) for s, method, args in calls]

    # ---- reporting ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Totals over the shards (documents, chunks, disk and RAM bytes, per document) and "shards": each
        shard's own `Collection.info()`, its "path" relative to the router directory."""
        shards = self._gather("info")
        docs = sum(int(s.get("documents", 0)) for s in shards)
        disk = sum(int(s["disk_bytes"]) for s in shards) + _file_bytes(self.path)
        ram = sum(int(s["ram_bytes"]) for s in shards)
        counts = {key: sum(int(s[key]) for s in shards) for key in shards[0]
                  if key in ("documents", "chunks", "rows", "dead_rows", "reclaimable_disk_bytes")
                  and all(key in s for s in shards)}
        if "dead_rows" in counts and "rows" in counts:  # what `compact` would drop, as one collection shows it
            counts["dead_share"] = round(counts["dead_rows"] / counts["rows"], 4) if counts["rows"] else 0.0
        # How queries are encoded is the collection's (shard 0's manifest; every shard is made alike), shown at
        # the top level as a plain collection shows it.
        pooled = {"query_pooling": shards[0]["query_pooling"]} if "query_pooling" in shards[0] else {}
        # The fusion searches use is the router's profile (the weights a static model set included), shown where
        # a plain collection shows it.
        return {"path": str(self.path), "format_version": self.router["format_version"], "sharded": True,
                "routing": self.router["routing"], "model": self.router["model"], "dim": self.router["dim"],
                "retrievers": self.router["retrievers"], **pooled, **_fusion_info(self._profile, self._model_weight),
                **counts, "disk_bytes": disk, "ram_bytes": ram,
                "disk_bytes_per_doc": disk / docs if docs else 0.0, "ram_bytes_per_doc": ram / docs if docs else 0.0,
                **self._recent_info(),
                **({"field_indexes": fields} if (fields := sorted(set.intersection(
                    *(set(s.get("field_indexes", [])) for s in shards)))) else {}),
                "shards": [{"shard": i, **s, "path": self.router["shards"][i]} for i, s in enumerate(shards)]}

    def counts(self) -> dict[str, int]:
        """Documents, live chunks and committed vector rows summed over the shards (`Store.counts` of each)."""
        per = self._gather("counts")
        return {key: sum(c[key] for c in per) for key in per[0]}

    def compact(self) -> dict[str, Any]:
        """Compact every shard (`Collection.compact`); returns the summed report and "shards": each shard's own.
        "seconds" is the wall-clock time of the whole call (in-process shards compact one after another, Ray
        shards all at once); each shard's report keeps its own. Raises CollectionError naming the shard that is
        open elsewhere (the shards before it in the answer order may be compacted already: each is its own
        collection, whole either way)."""
        t0 = time.perf_counter()
        self._close_readers()  # a shard compacts only when no other handle has it open
        reports = self._gather("compact")
        total = {key: sum(r[key] for r in reports) for key in reports[0] if key not in ("compacted", "seconds")}
        return {"compacted": any(r["compacted"] for r in reports), **total,
                "seconds": time.perf_counter() - t0, "shards": reports}

    # ---- tuning the shards' indexes on the user's queries ---------------------------------------
    def tune(self, queries: list[str] | None = None, *, vectors: Any = None) -> dict[str, Any]:
        """`Collection.tune` on every shard with the same queries, encoded once here: {"shards": [each shard's
        {retriever name: describe()}]}. Raises ConfigError as `Collection.tune` does (from the first shard that
        refuses; the shards before it are tuned, each a collection of its own)."""
        if (queries is None) == (vectors is None):
            raise ConfigError("tune takes the queries' texts or their vectors, one of the two")
        if queries is not None:
            check_queries(queries)
            vectors = self.encoder.encode_queries(list(queries))
        return {"shards": self._gather("tune", np.asarray(vectors, dtype=np.float32))}

    def reset_tuning(self) -> bool:
        """`Collection.reset_tuning` on every shard; whether any had stored queries."""
        return any(self._gather("reset_tuning"))

    def check(self) -> list[str]:
        """Each shard's integrity problems (each line prefixed with the shard), and documents stored in a shard
        that does not own them; empty when healthy."""
        problems = []
        for i, found in enumerate(self._gather("check")):
            problems += [f"shard {i} ({self.router['shards'][i]}): {p}" for p in found]
        # A document in a shard that does not own it (written into the shard's directory as a collection of its
        # own, or copied there) is found by search but never by get or delete, and the same id added through the
        # router lands in its owner: two documents of one id.
        for i, held in enumerate(self._gather("owners", len(self.shards))):
            for owner, (n, first) in sorted(held.items()):
                if owner != i:
                    problems.append(f"shard {i} ({self.router['shards'][i]}): {n} document(s) owned by shard {owner} "
                                    f"are stored here ({', '.join(map(repr, first))}{', ...' if n > len(first) else ''}"
                                    "), where get and delete never look: written into the shard's directory, not "
                                    "through the sharded collection; delete them there")
        return problems


def _refuse_unsharded(plan: SearchPlan, opts: SearchOptions) -> None:
    """One-line ConfigError for the parts of a search that do not give one-collection answers on shards."""
    needs = getattr(plan.reranker, "needs_retriever", None)
    if needs is not None:
        raise ConfigError(f"reranker {plan.reranker.name!r} reads the {needs} index, which the shards hold; "
                          "reranking with it is not supported on sharded collections yet")
    if plan.reranker is not None and opts.unit == "section":
        raise ConfigError("reranking with unit='section' is not supported on sharded collections yet")
    if opts.unit == "section" and len(plan.retrievers) > 1:
        raise ConfigError(f"unit='section' with the fused mode {plan.mode!r} is not supported on sharded "
                          "collections yet")


def _reranked_hit(first: Hit, score: float, chunk: Any, with_payload: bool) -> Hit:
    """The hit one collection's rerank stage gives: the reranker's score, its best chunk as the snippet."""
    if not with_payload:
        return Hit(first.id, score, "", "", {})
    return Hit(first.id, score, chunk.title, chunk.text, chunk.metadata, chunk.start, chunk.end)


def _payload_hit(chunk: Any, score: float) -> Hit:
    """The hit one collection gives for a document whose best chunk is `chunk` (a `StoredChunk`)."""
    return make_hit(chunk.doc_id, score, chunk.title, chunk.text, chunk.metadata, chunk.start, chunk.end)


def _file_bytes(path: Path) -> int:
    """Bytes of the router's own files (manifest, ordinal table and its WAL)."""
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


__all__: Sequence[str] = ["ShardedCollection", "create_sharded", "open_sharded"]


def _file_key(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from the next (each save replaces it: a new inode), or None when absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
