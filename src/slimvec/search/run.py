"""Executing a `SearchPlan`: candidates, document ranking, fusion, rerank, relevance cut-off, hits.

The caller (a Collection) has synced its retrievers and row map with the store and computed the `allowed`
row mask (alive rows, narrowed by the plan's filter); `Runner.run` does the rest, for every query of the call.

Units. Every stage after the retrievers works on "units": a row -> unit number array (-1: dead row) says
which rows one hit stands for. Unit "document" is the row map's row -> document number. Unit "section" is
row -> lowest row of the same given section of the same document (`section_units`), so a section cut into
several chunks is still one hit, and a chunk without a given section is a unit of its own. Ranking (best
chunk per unit), fusion (keyed by unit) and reranking (a unit's allowed rows) are the same code for both.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from slimvec.chunking import chunk_text
from slimvec.documents import Hit, make_hit
from slimvec.retrievers.base import Query, Retriever
from slimvec.search import calibration
from slimvec.search.fusion import fuse
from slimvec.search.plan import SearchPlan
from slimvec.search.ranking import Ranking, doc_ranking
from slimvec.search.rerank import MAX_TEXT_CHUNKS, Candidates, Reranker, rerank
from slimvec.store import Store
from slimvec.store.rowmap import RowMap


class Runner:
    """Runs plans over one collection's store; keeps the per-sync look-up tables the rerank stage needs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_doc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (row_doc, rows, docs)
        self._file: tuple[np.ndarray, np.ndarray] | None = None  # (row_doc, float32 memmap)
        self._units: tuple[np.ndarray, np.ndarray] | None = None  # (row_doc, row_unit) for unit "section"

    def run(self, plan: SearchPlan, queries: list[Query], retrievers: Mapping[str, Retriever], rows: RowMap,
            allowed: np.ndarray, calibrators: Mapping[str, calibration.Calibrator]) -> list[list[Hit]]:
        """Hits for each query, best first: at most plan.k per query (fewer after a relevance cut-off).

        allowed: (rows,) bool mask of the rows a hit may come from. Raises ConfigError when a relevance
        cut-off is asked for a mode without a calibrator.
        """
        n_allowed = rows.n_alive if allowed is rows.alive else int(np.count_nonzero(allowed))
        for name in plan.retrievers:  # retrievers that encode queries themselves (sparse) do it in one batch
            prepare = getattr(retrievers[name], "prepare", None)
            if prepare is not None:
                prepare([q.text for q in queries])
        owner = rows.row_doc if plan.unit == "document" else self.section_units(rows.row_doc)
        tops = []
        for q in queries:
            rankings = [doc_ranking(retrievers[n], q, plan.depth, allowed, n_allowed, owner)
                        for n in plan.retrievers]
            top = rankings[0] if len(rankings) == 1 else fuse(rankings, plan.first_stage, plan.fusion,
                                                              **plan.fusion_options)
            if plan.reranker is not None:
                top = self._rerank(plan.reranker, q, top, plan.k, allowed, owner, retrievers)
            tops.append(top)
        hits = self._hits(tops, plan.with_payload, rows) if plan.unit == "document" else self._section_hits(
            tops, plan.with_payload)
        if plan.calibrate:
            cal = calibrators.get(plan.mode)
            hits = [calibration.apply(cal, h, plan.min_relevance, plan.mode) for h in hits]
        return hits

    def section_units(self, row_doc: np.ndarray) -> np.ndarray:
        """(rows,) int64 unit number of each row for unit "section": the lowest row of its given section
        (same document and section id), the row itself when it has none; -1 where `row_doc` marks it dead.

        Read from the store once per sync (cached on the row map's array, which a sync replaces). Rows the
        store lists beyond `row_doc` (committed by another process since the sync) are left for the next sync.
        """
        cached = self._units
        if cached is None or cached[0] is not row_doc:
            unit = np.where(row_doc >= 0, np.arange(len(row_doc), dtype=np.int64), -1)
            later, first = self.store.section_first_rows()
            keep = (later < len(row_doc)) & (first < len(row_doc))
            later, first = later[keep], first[keep]
            keep = (row_doc[later] >= 0) & (row_doc[first] >= 0)
            unit[later[keep]] = first[keep]
            cached = self._units = (row_doc, unit)
        return cached[1]

    # ---- reranking -------------------------------------------------------------------------------
    def _rows_by_doc(self, row_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chunk rows sorted by document number, and those numbers: a document's rows by binary search."""
        cached = self._by_doc
        if cached is None or cached[0] is not row_doc:  # rebuilt once per sync, not per query
            order = np.argsort(row_doc, kind="stable")
            cached = self._by_doc = (row_doc, order, row_doc[order])
        return cached[1], cached[2]

    def _float32_rows(self, row_doc: np.ndarray) -> np.ndarray:
        """The committed float32 vector file as a memmap (only the rows a reranker reads are paged in)."""
        cached = self._file
        if cached is None or cached[0] is not row_doc:
            cached = self._file = (row_doc, self.store.vectors(len(row_doc)))
        return cached[1]

    def _rerank(self, reranker: Reranker, q: Query, top: Ranking, k: int, allowed: np.ndarray,
                row_doc: np.ndarray, retrievers: Mapping[str, Retriever]) -> Ranking:
        """Rescore first-stage documents with `reranker` over their allowed chunk rows; the top k remain."""
        if not top:
            return []
        rows_sorted, docs_sorted = self._rows_by_doc(row_doc)
        docs = np.array([d for d, _, _ in top], dtype=np.int64)
        best = np.array([r for _, _, r in top], dtype=np.int64)
        lo = np.searchsorted(docs_sorted, docs, side="left")
        lens = np.searchsorted(docs_sorted, docs, side="right") - lo
        # Every row of every candidate in one array (no Python loop per document), owner = candidate index.
        owner = np.repeat(np.arange(len(top)), lens)
        rows = rows_sorted[np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens - lo, lens)]
        keep = allowed[rows] & (rows != best[owner])
        # The first-stage best chunk first in each candidate, then the others in row (= document) order.
        owner = np.concatenate([np.arange(len(top)), owner[keep]])
        rows = np.concatenate([best, rows[keep]])
        order = np.argsort(owner, kind="stable")
        owner, rows = owner[order], rows[order]
        counts = np.bincount(owner, minlength=len(top))
        texts = None
        if reranker.needs_text:
            capped = np.arange(len(rows)) - (np.cumsum(counts) - counts)[owner] < MAX_TEXT_CHUNKS
            info = self.store.chunks_for_rows(rows[capped].tolist())
            # a row deleted by another process since the last sync is simply left out
            capped &= np.fromiter((r in info for r in rows.tolist()), dtype=bool, count=len(rows))
            owner, rows = owner[capped], rows[capped]
            counts = np.bincount(owner, minlength=len(top))
            texts = [chunk_text(info[r].title, info[r].text) for r in rows.tolist()]
        cands = Candidates(docs[counts > 0], counts[counts > 0], rows, texts)
        needs = getattr(reranker, "needs_retriever", None)
        if needs is not None:
            cands.retriever = retrievers[needs]  # present: the plan checked that the collection keeps it
        if reranker.needs_vectors and len(rows):
            uniq, inverse = np.unique(rows, return_inverse=True)  # file order: pages are read front to back
            cands.vectors = np.asarray(self._float32_rows(row_doc)[uniq], dtype=np.float32)[inverse]
        return rerank(reranker, q, cands, k)

    # ---- hits ------------------------------------------------------------------------------------
    def _hits(self, tops: list[Ranking], with_payload: bool, rows: RowMap) -> list[list[Hit]]:
        """Hits for each query's ranking; chunk and document fields in one look-up for the whole call."""
        if not with_payload:
            ids = rows.doc_ids
            return [[make_hit(ids[d], s, "", "", {}) for d, s, _ in top] for top in tops]
        info = self.store.chunks_for_rows([r for top in tops for _, _, r in top])
        # A row missing here was deleted by another handle after this search synced: its document is left out.
        return [[make_hit(info[r].doc_id, s, info[r].title, info[r].text, info[r].metadata, info[r].start, info[r].end)
                 for _, s, r in top if r in info] for top in tops]

    def _section_hits(self, tops: list[Ranking], with_payload: bool) -> list[list[Hit]]:
        """Section-level hits: each unit's best chunk row with its document id, section id and span.

        Without payload only the chunks table is read (ids, section ids, spans: no text). A row whose document
        another process deleted since the last sync is left out.
        """
        wanted = [r for top in tops for _, _, r in top]
        if not with_payload:
            where = self.store.sections_for_rows(wanted)
            return [[make_hit(where[r].doc_id, s, "", "", {}, where[r].start, where[r].end, section=where[r].section_id)
                     for _, s, r in top if r in where] for top in tops]
        info = self.store.chunks_for_rows(wanted)
        return [[make_hit(c.doc_id, s, c.title, c.text, c.metadata, c.start, c.end, section=c.section_id)
                 for _, s, r in top if (c := info.get(r)) is not None] for top in tops]
