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
    # 30,000 rows: the fewest round count whose 1% (300) is above SAVE_GAP (256), so the share is what decides
    index.add(np.random.default_rng(0).standard_normal((30_000, 8)).astype(np.float32))
    index.save(tmp_path)
    before = (tmp_path / hnsw.FILE).stat().st_mtime_ns
    index.add(np.ones((299, 8), np.float32))  # under 1% of 30,000 (and above SAVE_GAP): the file stays
    index.save(tmp_path)
    assert (tmp_path / hnsw.FILE).stat().st_mtime_ns == before
    index.add(np.ones((1, 8), np.float32))  # 300 rows = 1%: rewritten
    index.save(tmp_path)
    assert hnsw.HnswIndex.load(tmp_path, 8).rows == 30_300
    index.save(tmp_path / "other")  # another directory (a compaction's new generation): written whole there
    assert hnsw.HnswIndex.load(tmp_path / "other", 8).rows == 30_300


def _count_inserts(col):
    """Wrap the open handle's graph `add` to count the rows it inserts (the real insert still runs)."""
    retriever, seen = col._retrievers["dense"], []
    index_type = type(retriever.index)
    original = index_type.add

    def counting(self, vectors):
        seen.append(len(vectors))
        return original(self, vectors)

    index_type.add = counting
    return seen, lambda: setattr(index_type, "add", original)


def test_a_handle_catching_up_reads_the_graph_another_handle_saved(tmp_path):
    path = tmp_path / "h"
    _vector_collection(path, ROWS, base="hnsw-f32").close()
    with Collection.open(path) as server, Collection.open(path) as loader:
        server.search_many(["q"], vectors=ROWS[:1], k=5, with_payload=False)
        ids, vecs = _add(loader, 0, hnsw.SAVE_GAP + 50)  # the loader's save rewrites the graph file
        assert json.loads((path / "index" / "hnsw.json").read_text())["rows"] == 3000 + hnsw.SAVE_GAP + 50
        seen, restore = _count_inserts(server)
        try:
            hits = server.search_many(["q"] * 20, vectors=vecs[:20], k=1, with_payload=False)
        finally:
            restore()
        assert seen == []  # every new row came with the graph file: nothing inserted by the server
        assert [h[0].id for h in hits] == ids[:20]
        assert server.info()["indexes"]["dense"]["rows"] == 3000 + hnsw.SAVE_GAP + 50
        more, more_vecs = _add(loader, 1000, 5)  # a small commit: the file is not rewritten, the server inserts it
        seen, restore = _count_inserts(server)
        try:
            hit = server.search_many(["q"], vectors=more_vecs[:1], k=1, with_payload=False)[0][0]
        finally:
            restore()
        assert seen == [5] and hit.id == more[0]


def test_a_graph_file_that_does_not_fit_the_commits_is_not_read(tmp_path):
    """A file holding fewer rows than the gap is worth, rows beyond the committed ones, or damaged bytes is left
    alone: the handle inserts the rows itself and searches as before."""
    path = tmp_path / "h"
    _vector_collection(path, ROWS, base="hnsw-f32").close()
    with Collection.open(path) as server, Collection.open(path) as loader:
        server.search_many(["q"], vectors=ROWS[:1], k=5, with_payload=False)
        ids, vecs = _add(loader, 0, hnsw.SAVE_GAP + 50)
        meta_path = path / "index" / "hnsw.json"
        meta = json.loads(meta_path.read_text())
        (path / "index" / hnsw.FILE).write_bytes(b"not a faiss graph")  # damaged, its hnsw.json still says rows
        seen, restore = _count_inserts(server)
        try:
            hits = server.search_many(["q"] * 5, vectors=vecs[:5], k=1, with_payload=False)
        finally:
            restore()
        assert seen == [hnsw.SAVE_GAP + 50] and [h[0].id for h in hits] == ids[:5]
        meta["rows"] = 10**9  # claims more rows than are committed: not read either
        meta_path.write_text(json.dumps(meta))
        assert server._retrievers["dense"].index.saved_ahead(path / "index", 3000 + hnsw.SAVE_GAP + 400) is None
