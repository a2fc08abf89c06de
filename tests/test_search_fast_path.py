"""The per-call shortcuts of a lone dense query give exactly what the general code gives.

Three shortcuts (issue 16, p50): the document ranking of a short row list computed on Python lists, the plan of
hashable keyword options kept per option set, and an HNSW graph skipping its "every row allowed?" test for a
read-only mask it already found full. Each is checked against an independent reference, including the cases
where it must not apply.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_retrievers_compressed import _clustered, _vector_collection

from slimvec.errors import ConfigError
from slimvec.index.hnsw import HnswIndex
from slimvec.retrievers.base import Query
from slimvec.search.ranking import _SMALL, doc_ranking


class _Rows:
    """A retriever returning fixed (scores, rows), whatever it is asked; counts its calls."""

    def __init__(self, scores, rows):
        self.scores, self.rows, self.calls = np.asarray(scores, np.float32), np.asarray(rows, np.int64), []

    def search(self, query, k, allowed):
        self.calls.append(k)
        return self.scores[:k], self.rows[:k]


def _reference(scores, rows, row_doc, k):
    """Best chunk per document by brute force: max score, the earliest position among equal scores."""
    best: dict[int, tuple[float, int, int]] = {}
    for pos, (s, r) in enumerate(zip(scores, rows)):
        if r < 0:
            continue
        d = int(row_doc[r])
        if d not in best or s > best[d][0]:
            best[d] = (float(s), pos, int(r))
    order = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return [(d, s, r) for d, (s, _, r) in order][:k]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [12, 40, _SMALL + 40])  # both sides of the list/array switch
def test_document_ranking_equals_brute_force_with_ties_and_several_chunks_per_document(seed, n):
    rng = np.random.default_rng(seed)
    row_doc = rng.integers(0, max(2, n // 3), 2 * n).astype(np.int32)  # about three chunks per document
    rows = rng.choice(2 * n, n, replace=False)
    scores = np.sort(np.round(rng.random(n), 1))[::-1].astype(np.float32)  # rounded: many equal scores
    rows[-2:] = -1  # padding, as faiss returns when it finds fewer rows than asked
    got = doc_ranking(_Rows(scores, rows), Query("q", None, None), 5, np.ones(2 * n, bool), n, row_doc)
    assert got == _reference(scores, rows, row_doc, 5)


def test_scores_out_of_order_are_sorted_not_trusted():
    row_doc = np.arange(6, dtype=np.int32)
    scores, rows = [0.2, 0.9, 0.5, 0.9, 0.1, 0.3], [0, 1, 2, 3, 4, 5]
    got = doc_ranking(_Rows(scores, rows), Query("q", None, None), 4, np.ones(6, bool), 6, row_doc)
    assert [(d, r) for d, _, r in got] == [(1, 1), (3, 3), (2, 2), (5, 5)]


def test_the_ranking_widens_until_it_holds_k_documents():
    row_doc = np.repeat(np.arange(30, dtype=np.int32), 10)  # ten chunks per document, in score order
    retriever = _Rows(np.linspace(1, 0, 300), np.arange(300))
    got = doc_ranking(retriever, Query("q", None, None), 5, np.ones(300, bool), 300, row_doc)
    assert [d for d, _, _ in got] == [0, 1, 2, 3, 4] and retriever.calls == [20, 80]


def test_plans_are_kept_per_option_set_and_made_again_when_the_collection_changes(tmp_path):
    rows = _clustered(300, 16, seed=1, centres=10)
    with _vector_collection(tmp_path / "c", rows, base="exact-f32") as col:
        first = col._plan(None, {"k": 5, "mode": "dense"}, None)
        assert col._plan(None, {"mode": "dense", "k": 5}, None) is first  # the same options, in any order
        assert col._plan(None, {"k": 6, "mode": "dense"}, None) is not first
        filtered = col._plan(None, {"k": 5, "filter": {"lang": "en"}}, None)
        assert filtered.filter == {"lang": "en"} and col._plan(None, {"k": 5, "filter": {"lang": "de"}},
                                                               None).filter == {"lang": "de"}
        for _ in range(2):  # a kept plan never hides a bad option: it is refused on every call
            with pytest.raises(ConfigError):
                col.search_many(["q"], vectors=rows[:1], k=5, mode="no-such-mode")
        col.store.save_manifest({"note": "changed"})  # a new manifest object: plans are made again
        assert col._plan(None, {"k": 5, "mode": "dense"}, None) is not first
        hits = col.search_many(["q"], vectors=rows[:1], k=5, mode="dense", with_payload=False)[0]
        assert [h.id for h in hits] == [f"d{i}" for i in np.argsort(-(rows @ rows[0]), kind="stable")[:5]]


def test_hnsw_skips_the_full_mask_test_only_for_a_read_only_mask():
    rows = _clustered(2000, 16, seed=2, centres=20)
    index = HnswIndex(16, ef_search=200)
    index.add(rows)
    q = rows[7:8]
    mask = np.ones(len(rows), bool)
    assert index.search(q, 1, mask)[1][0, 0] == 7  # a writeable full mask: searched, not remembered
    mask[7] = False  # changed in place: the next search must see it
    assert index.search(q, 1, mask)[1][0, 0] != 7
    frozen = np.ones(len(rows), bool)
    frozen.flags.writeable = False
    assert index.search(q, 1, frozen)[1][0, 0] == 7 and index._full_mask is frozen
    index.add(_clustered(10, 16, seed=9, centres=20))  # more rows than the mask was found full over
    narrowed = np.zeros(len(rows) + 10, bool)
    narrowed[:5] = True
    assert set(index.search(q, 3, narrowed)[1][0].tolist()) <= {0, 1, 2, 3, 4}


def test_a_long_lived_handle_sees_another_handles_calibrator_and_enabled_index(tmp_path):
    """A server keeps one handle open for days: what another handle or process changes beside the rows (a
    calibrator fitted, an index enabled) must reach it at its next search, kept plans included."""
    from slimvec import Collection
    from slimvec.search.calibration import Calibrator

    rows = _clustered(200, 16, seed=3, centres=10)
    _vector_collection(tmp_path / "c", rows, base="exact-f32").close()
    with Collection.open(tmp_path / "c") as server, Collection.open(tmp_path / "c") as other:
        ask = {"vectors": rows[:1], "k": 5, "mode": "dense", "min_relevance": "auto", "with_payload": False}
        with pytest.raises(ConfigError, match="calibrat"):
            server.search_many(["q"], **ask)
        other.set_calibrator("dense", Calibrator("dense", intercept=6.0))  # every hit relevant (p ~ 0.998)
        assert len(server.search_many(["q"], **ask)[0]) == 5
        other.set_calibrator("dense", Calibrator("dense", intercept=-6.0))  # refitted: no hit relevant
        assert server.search_many(["q"], **ask)[0] == []
        with pytest.raises(ConfigError, match="bm25"):
            server.search("row 3", k=3, mode="bm25")
        other.enable("bm25")
        seen = [(h.id, h.score) for h in server.search("row 3", k=3, mode="bm25")]
        with Collection.open(tmp_path / "c") as fresh:
            assert seen == [(h.id, h.score) for h in fresh.search("row 3", k=3, mode="bm25")] and len(seen) == 3
