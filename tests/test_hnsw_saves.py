"""An HNSW graph is rewritten on disk only when the rows it lacks there reach SAVE_GAP or SAVE_SHARE of those it
holds (faiss writes a graph whole: a rewrite per 10-document commit cost O(collection)); in between, the next open
inserts the missing rows from the vector file, and every commit's calibration still reaches hnsw.json."""

from __future__ import annotations

import json

import numpy as np
from test_retrievers_compressed import _clustered, _vector_collection

from slimvec import Collection, Document
from slimvec.documents import Chunk
from slimvec.index import hnsw

ROWS = _clustered(3000, 32, seed=3)


def _add(col, start, n):
    ids = [f"n{i}" for i in range(start, start + n)]
    vecs = _clustered(n, 32, seed=start)
    col.add_encoded([Document(i, f"row {i}") for i in ids], [Chunk(i, 0, 0, 3, "row") for i in ids], vecs)
    return ids, vecs


def test_small_commits_leave_the_graph_file_and_an_open_catches_up(tmp_path):
    path = tmp_path / "h"
    graph = path / "index" / hnsw.FILE
    with _vector_collection(path, ROWS, base="hnsw-f32") as col:
        first = graph.stat()
        assert json.loads((path / "index" / "hnsw.json").read_text())["rows"] == 3000
        ids, vecs = _add(col, 0, 10)
        assert (graph.stat().st_ino, graph.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten
        meta = json.loads((path / "index" / "hnsw.json").read_text())
        assert meta["rows"] == 3000 and meta["calibration"]["rows"] == 3000  # what the file holds, and its calibration
        found = [h.id for h in col.search_many(["q"], vectors=vecs[:1], k=1, mode="dense", rerank="none")[0]]
        assert found == [ids[0]]
    with Collection.open(path) as again:  # the file lacks 10 rows: inserted from the vector file
        assert again.info()["indexes"]["dense"]["rows"] == 3010 and again.check() == []
        hits = again.search_many(["q"] * 10, vectors=vecs, k=1, mode="dense", rerank="none", with_payload=False)
        assert [h[0].id for h in hits] == ids
        _add(again, 100, hnsw.SAVE_GAP - 10)  # the file now lacks SAVE_GAP rows: rewritten whole
        assert graph.stat().st_mtime_ns != first.st_mtime_ns
        assert json.loads((path / "index" / "hnsw.json").read_text())["rows"] == 3000 + hnsw.SAVE_GAP
    assert hnsw.HnswIndex.load(path / "index", 32).rows == 3000 + hnsw.SAVE_GAP  # the file holds every row


def test_a_save_rewrites_the_graph_once_the_gap_reaches_a_share_of_the_rows(tmp_path):
    index = hnsw.HnswIndex(8)
    index.add(np.random.default_rng(0).standard_normal((40_000, 8)).astype(np.float32))
    index.save(tmp_path)
    before = (tmp_path / hnsw.FILE).stat().st_mtime_ns
    index.add(np.ones((399, 8), np.float32))  # under 1% of 40,000: the file stays
    index.save(tmp_path)
    assert (tmp_path / hnsw.FILE).stat().st_mtime_ns == before
    index.add(np.ones((1, 8), np.float32))  # 400 rows = 1%: rewritten
    index.save(tmp_path)
    assert hnsw.HnswIndex.load(tmp_path, 8).rows == 40_400
    index.save(tmp_path / "other")  # another directory (a compaction's new generation): written whole there
    assert hnsw.HnswIndex.load(tmp_path / "other", 8).rows == 40_400
