"""One shard: an ordinary Collection behind the small interface the router calls (in-process or in a Ray actor).

`ShardCore` holds the open collection. The router calls it directly for a local run (`LocalShard`) or through a
Ray actor of the same class (`slimvec.distributed.actors`), so both paths run the same code.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimvec.collection import Collection
from slimvec.distributed.router import shard_of
from slimvec.documents import Document, Hit
from slimvec.encoders.base import Encoder
from slimvec.errors import CollectionError
from slimvec.retrievers.bm25_global import Bm25Stats
from slimvec.search.ranking import Ranking
from slimvec.search.run import Runner
from slimvec.store.rowmap import RowMap
from slimvec.store.store import StoredChunk

# One query's hits without payload, best first: (document id, score, the row of its best chunk).
RowHits = list[tuple[str, float, int]]


class StaleBm25Stats(CollectionError):
    """A shard was asked to score BM25 with corpus-wide statistics it does not hold (a restarted actor)."""


class _RowRunner(Runner):
    """The collection's runner, which also keeps, for a thread that asks (`wanted.on`), each query's best-chunk
    rows of the hits it returns: what `ShardCore.search_rows` hands the router instead of payloads."""

    def __init__(self, store: Any, wanted: threading.local) -> None:
        super().__init__(store)
        self.wanted = wanted

    def _hits(self, tops: list[Ranking], with_payload: bool, rows: RowMap) -> list[list[Hit]]:
        if getattr(self.wanted, "on", False):
            self.wanted.rows = [[r for _, _, r in top] for top in tops]
            with_payload = False
        return super()._hits(tops, with_payload, rows)


class ShardCore:
    """An open shard collection; every method is one call the router makes."""

    def __init__(self, path: str, encoder: Encoder | None = None) -> None:
        self.path = path
        self.col = Collection.open(Path(path), encoder)
        self.col.explain_empty_filters = False  # the router explains a filter that matches nothing in any shard
        self.col.routed_by = None  # opened by its router: the writes it sends are routed
        self._wanted = threading.local()  # per calling thread: whether search_rows runs, and the rows it got

    def ready(self) -> str:
        """The shard's path (a cheap call that proves the shard is open)."""
        return self.path

    def stored(self, ids: list[str]) -> list[str]:
        """Those of `ids` the shard already holds."""
        # Reads of the shard's store take its collection's lock, as its own reads do: a compaction through another
        # thread (the router's `compact`) closes that store and opens the next one under it.
        with self.col._lock:
            return sorted(self.col.store.existing_ids(ids))

    def unchanged(self, docs: list[Document]) -> list[str]:
        """Those of `docs` the shard stores exactly as given (an upsert leaves them as they are)."""
        return sorted(self.col.unchanged(docs))

    def write(self, docs: list[Document], replace: bool) -> int:
        """`add` (replace False) or `upsert` the shard's part of one call, committed as one transaction."""
        return self.col.upsert(docs) if replace else self.col.add(docs)

    def delete(self, ids: list[str]) -> int:
        """Delete by id; how many existed."""
        return self.col.delete(ids)

    def search_many(self, queries: list[str], options: dict[str, Any], vectors: np.ndarray | None,
                    bm25_key: str | None = None) -> list[list[Hit]]:
        """The shard's hits for each query (`Collection.search_many` with the given option fields). With
        `bm25_key`, BM25 must score with the corpus-wide statistics of that key (given by `bm25_use`): a shard
        that no longer holds them (its actor was restarted) raises StaleBm25Stats instead of scoring with its own."""
        if bm25_key is not None:
            with self.col._lock:
                held = self._bm25(lambda r: r.global_key)
                if held != bm25_key:
                    raise StaleBm25Stats(f"shard {self.path} holds BM25 statistics {held!r}, not {bm25_key!r}")
                return self.col.search_many(queries, vectors=vectors, encoded=True, **options)
        # encoded: the router checked vectors the user gave (a zero one is refused there); a zero row here is a
        # query text the model knows no token of, which finds nothing
        return self.col.search_many(queries, vectors=vectors, encoded=True, **options)

    def search_rows(self, queries: list[str], options: dict[str, Any], vectors: np.ndarray | None,
                    bm25_key: str | None = None) -> tuple[int, list[RowHits]] | None:
        """`search_many` without payload, each hit with the row of its best chunk (unit "document" only):
        (the store generation the rows belong to, per query [(document id, score, row)] best first). The router
        merges these and asks `payloads` for the rows of its final top k only, so a shard reads no text for
        hits that do not make the global top k. None when the rows could not be taken (the collection replaced
        its runner meanwhile, a compaction): the router then searches with payload."""
        col = self.col
        with col._lock:  # the search and the generation its rows belong to, together
            if not isinstance(col._runner, _RowRunner):  # a compaction's reopen makes a new plain one
                col._runner = _RowRunner(col.store, self._wanted)
            self._wanted.on, self._wanted.rows = True, None
            try:
                hits = self.search_many(queries, {**options, "with_payload": False}, vectors, bm25_key)
            finally:
                self._wanted.on = False
            rows, generation = self._wanted.rows, col._generation
        if rows is None or [len(r) for r in rows] != [len(h) for h in hits]:
            return None
        return generation, [[(h.id, h.score, r) for h, r in zip(hs, rs)] for hs, rs in zip(hits, rows)]

    def payloads(self, generation: int, rows: list[int]) -> dict[int, StoredChunk] | None:
        """The stored chunk (document fields, chunk text and span) of each row `search_rows` gave; None when the
        shard has changed since (another generation: a write or compaction may have moved or dropped a row)."""
        col = self.col
        with col._lock:
            if col.store.generation != generation:
                return None
            got = col.store.chunks_for_rows(rows)
        return got if len(got) == len(set(rows)) else None

    # BM25 corpus-wide statistics (see retrievers/bm25_global.py): the router sums every shard's own and hands
    # the total back before a BM25 search, so each shard scores as one collection holding every document would.
    def _bm25(self, fn: Callable[[Any], Any]) -> Any:
        col = self.col
        with col._lock:  # the collection's own lock: its searches rebuild the same retriever
            col._sync()
            return fn(col._retrievers["bm25"])

    def bm25_state(self) -> tuple[str, str | None]:
        """(key of the shard's own statistics, key of the corpus-wide statistics it scores with or None)."""
        return self._bm25(lambda r: (r.stats_key(), r.global_key))

    def bm25_stats(self) -> Bm25Stats:
        """The shard's own BM25 statistics (N, total length, document frequencies)."""
        return self._bm25(lambda r: r.local_stats())

    def bm25_use(self, stats: Bm25Stats, key: str, summed_from: str) -> None:
        """Score BM25 with the corpus-wide `stats` from now on (see `Bm25Retriever.use_global`)."""
        self._bm25(lambda r: r.use_global(stats, key, summed_from))

    def bm25_refresh(self) -> None:
        """Take the rows deleted since out of the shard's BM25 statistics (`Bm25Retriever.refresh_live`), as one
        collection's sync does after any write, and save the index (a reopened shard finds its dead rows from the
        store at its first sync, so it counts the same)."""
        col = self.col
        # The locks in the order every write of the collection takes them (`Collection._writing`): a tune or
        # compaction holds the write mutex and the writer lock while it works outside the state lock, then takes
        # the state lock; holding that lock while waiting for the writer lock here would deadlock with it.
        with col._writing():  # as the collection's own writes save their derived files
            col._sync()
            retriever = col._retrievers["bm25"]
            retriever.refresh_live(col.store)
            retriever.save(col.path / "index")

    def rerank_rows(self, items: list[tuple[str, int, int]], filter: dict[str, Any] | None, texts: bool,
                    vectors: bool) -> list[dict[str, Any]]:
        """What one collection's rerank stage reads for each candidate (document id, span of its first-stage best
        chunk): its allowed chunk rows, the best chunk first, then the rest in row order (the first
        MAX_TEXT_CHUNKS when `texts`), each row's stored chunk (`StoredChunk`), and with `vectors` their float32
        rows ((n, dim)). A document gone since is returned with no rows."""
        from slimvec.search.rerank import MAX_TEXT_CHUNKS

        col = self.col
        with col._lock:
            col._sync()
            allowed = col._allowed(filter)
            out = []
            for doc_id, start, end in items:
                chunks = [(r, a, b) for r, a, b in col.store.chunks_of(doc_id) if r < len(allowed) and allowed[r]]
                best = [r for r, a, b in chunks if (a, b) == (start, end)][:1]
                rows = best + [r for r, _, _ in chunks if r not in best]
                if texts:
                    rows = rows[:MAX_TEXT_CHUNKS]
                info = col.store.chunks_for_rows(rows)
                rows = [r for r in rows if r in info]
                got: dict[str, Any] = {"rows": rows, "chunks": [info[r] for r in rows]}
                if vectors and rows:
                    got["vectors"] = np.asarray(col.store.vectors(len(allowed))[rows], dtype=np.float32)
                out.append(got)
            return out

    def filter_state(self, filter: dict[str, Any]) -> tuple[bool, bool]:
        """(whether the shard holds documents, whether `filter` matches any of them)."""
        with self.col._lock:
            store = self.col.store
            held = store.holds_documents()
            return held, held and bool(len(store.rows_matching(filter, explain=False)))

    def metadata_types(self, path: str) -> set[str]:
        """`Store.metadata_types` of the shard."""
        with self.col._lock:
            return self.col.store.metadata_types(path)

    def get(self, doc_id: str) -> Document | None:
        """The stored document, or None."""
        return self.col.get(doc_id)

    def info(self) -> dict[str, Any]:
        """`Collection.info` of the shard."""
        return self.col.info()

    def check(self) -> list[str]:
        """`Collection.check` of the shard."""
        return self.col.check()

    def owners(self, shards: int) -> dict[int, tuple[int, list[str]]]:
        """The documents stored here by the shard that owns them (`router.shard_of` over `shards` shards): {owner:
        (how many, the first 3 ids in insertion order)}, so the router can tell documents a shard should not hold."""
        out: dict[int, tuple[int, list[str]]] = {}
        with self.col._lock:  # see `stored`
            ids = [doc_id for _, doc_id in self.col.store.document_ids_from(0)]
        for doc_id in ids:
            owner = shard_of(doc_id, shards)  # a BLAKE2b digest per stored document: once each
            n, first = out.get(owner, (0, []))
            out[owner] = (n + 1, first if len(first) >= 3 else first + [doc_id])
        return out

    def compact(self) -> dict[str, Any]:
        """`Collection.compact` of the shard (its handle here is the one that must be alone)."""
        return self.col.compact()

    def tune(self, vectors: np.ndarray) -> dict[str, Any]:
        """`Collection.tune` of the shard on query vectors encoded by the router."""
        return self.col.tune(vectors=vectors)

    def reset_tuning(self) -> bool:
        """`Collection.reset_tuning` of the shard."""
        return self.col.reset_tuning()

    def counts(self) -> dict[str, int]:
        """The shard store's documents, live chunks and committed vector rows (`Store.counts`)."""
        with self.col._lock:  # see `stored`
            return self.col.store.counts()

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """Documents stored, or matching `filter` (`Collection.count`)."""
        return self.col.count(filter)

    def scroll(self, filter: dict[str, Any] | None, limit: int,
               offset: str | None) -> tuple[list[Document], str | None]:
        """`Collection.scroll`'s page of this shard."""
        return self.col.scroll(filter, limit, offset)

    def field_index(self, fields: list[str], drop: bool) -> list[str]:
        """Create (or with `drop`, remove) the shard's field indexes; the fields newly indexed (or removed)."""
        return self.col.drop_field_index(fields) if drop else self.col.create_field_index(fields)

    def field_indexes(self) -> list[str]:
        """The shard's indexed metadata fields."""
        return self.col.field_indexes()

    def delete_matching(self, filter: dict[str, Any]) -> list[str]:
        """Delete the documents matching `filter`; their ids (the router forgets their ordinals)."""
        return self.col._delete_matching(filter)

    def close(self) -> None:
        """Release the shard's database connection."""
        self.col.close()


class LocalShard:
    """A shard called in this process (no Ray): `call(name, *args)` runs `ShardCore.name`."""

    def __init__(self, index: int, path: Path, encoder: Encoder | None = None) -> None:
        self.index, self.path = index, path
        self.core = ShardCore(str(path), encoder)

    def submit(self, method: str, *args: Any) -> Any:
        """Run the call now; its result is what `result` returns."""
        return getattr(self.core, method)(*args)

    def result(self, pending: Any) -> Any:
        """The result of a `submit`."""
        return pending

    def close(self) -> None:
        """Release the shard."""
        self.core.close()
