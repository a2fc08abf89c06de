"""A handle kept open catches up with another handle's commits from what that handle saved, instead of fitting
codes or lists again under its state lock (retrievers/compressed.py `_take_saved`): the same answers as a handle
opened afresh, and no fit of its own."""

from __future__ import annotations

import math
from contextlib import contextmanager

from test_retrievers_compressed import _clustered, _vector_collection

from slimvec import Collection, Document
from slimvec.documents import Chunk
from slimvec.retrievers.compressed import CompressedDenseRetriever

DIM = 32


def _add(col, start, vecs):
    ids = [f"n{i}" for i in range(start, start + len(vecs))]
    col.add_encoded([Document(i, f"row {i}") for i in ids], [Chunk(i, 0, 0, 3, "row") for i in ids], vecs)
    return ids


def _counting_builds(monkeypatch):
    builds = []
    original = CompressedDenseRetriever._build

    def counting(self, vectors, rows):
        builds.append(rows)
        return original(self, vectors, rows)

    monkeypatch.setattr(CompressedDenseRetriever, "_build", counting)
    return builds


@contextmanager
def _grown_by_another_handle(tmp_path):
    """(path, queries, server, loader): a 3,000-row binary-ivf-rescore collection the server searched once, then
    3,500 rows added through the loader, which refit the codes (the rows more than doubled) and saved them."""
    path, rows = tmp_path / "c", _clustered(3000, DIM, seed=1, centres=40)
    _vector_collection(path, rows, base="binary-ivf-rescore").close()
    queries = _clustered(20, DIM, seed=9, centres=40)
    with Collection.open(path) as server, Collection.open(path) as loader:
        server.search_many(["q"], vectors=queries[:1], k=5, with_payload=False)
        assert server._retrievers["dense"].fitted_rows == 3000
        _add(loader, 0, _clustered(3500, DIM, seed=2, centres=40))
        assert loader._retrievers["dense"].fitted_rows == 6500
        yield path, queries, server, loader


def _ids(col, queries):
    hits = col.search_many(["q"] * len(queries), vectors=queries, k=10, with_payload=False)
    return [[h.id for h in row] for row in hits]


def test_a_refit_another_handle_saved_is_read_not_made_again(tmp_path, monkeypatch):
    with _grown_by_another_handle(tmp_path) as (path, queries, server, _):
        builds = _counting_builds(monkeypatch)
        got = _ids(server, queries)
        assert builds == []  # the server read the loader's codes: no fit of its own
        assert server._retrievers["dense"].fitted_rows == 6500
        assert server.info()["indexes"]["dense"]["rows"] == 6500
    with Collection.open(path) as fresh:
        assert _ids(fresh, queries) == got


def test_saved_codes_that_do_not_fit_the_commits_are_not_read(tmp_path, monkeypatch):
    """Damaged saved codes leave the handle fitting as before, on every committed row."""
    with _grown_by_another_handle(tmp_path) as (path, queries, server, _):
        fit = path / "index" / "codes" / "fit.json"
        saved = fit.read_text()
        fit.write_text("{not json")
        builds = _counting_builds(monkeypatch)
        got = _ids(server, queries)
        assert builds == [6500]  # fitted here, on every committed row
        fit.write_text(saved)
    with Collection.open(path) as fresh:
        assert _ids(fresh, queries) == got


def test_a_lone_writer_refitting_does_not_read_its_own_older_codes(tmp_path, monkeypatch):
    """The saved row count is read first: codes holding no more rows than the handle's own (its own last save)
    are not loaded only to be refused, under the state lock, at every refit."""
    import slimvec.retrievers.compressed as compressed

    path = tmp_path / "c"
    with _vector_collection(path, _clustered(3000, DIM, seed=1, centres=40), base="binary-ivf-rescore") as col:
        loads = []
        original = compressed.load_saved
        monkeypatch.setattr(compressed, "load_saved", lambda codes: loads.append(codes) or original(codes))
        _add(col, 0, _clustered(3500, DIM, seed=2, centres=40))  # rows more than doubled: this handle refits
        assert col._retrievers["dense"].fitted_rows == 6500 and loads == []


def test_a_served_bm25_index_appends_another_handles_commits_and_scores_as_a_fresh_build(tmp_path, scifact_docs,
                                                                                          monkeypatch):
    """BM25 kept a matrix of precomputed scores that every commit invalidated; a served handle rebuilt it whole at
    its next search. Now it appends each commit's postings (no build from the token cache), in O(log) segments,
    and its scores equal, bitwise, those of a collection built afresh from the same documents; a handle opened
    afterwards loads the saved postings."""
    from fakes import FakeEncoder

    from slimvec.retrievers.bm25_postings import Postings
    from slimvec.retrievers.postings import MERGE_RATIO

    builds, original = [], Postings.of_cache

    def counting(*args, **kwargs):
        builds.append(1)
        return original(*args, **kwargs)

    docs, queries = scifact_docs[:160], ["cancer cells", "protein expression in mice", "vitamin d deficiency"]
    path = tmp_path / "c"
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add(docs[:40])
    monkeypatch.setattr(Postings, "of_cache", counting)
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as server, \
            Collection.open(path, encoder=FakeEncoder(dim=8)) as writer:
        server.search(queries[0], k=10)
        for start in range(40, 160, 6):  # commits of 6 documents, some of them replacing earlier ones
            writer.add(docs[start : start + 6])
            writer.upsert([Document(docs[start - 30].id, docs[start - 30].text + " replaced", docs[start - 30].title)])
            served = {q: [(h.id, h.score) for h in server.search(q, k=10)] for q in queries}
        segments = server._retrievers["bm25"]._postings.segments
        entries = sum(s.entries for s in segments)
        assert len(segments) <= 1 + math.log(entries, MERGE_RATIO)
    assert builds == []
    final = {d.id: d for d in docs}
    for start in range(40, 160, 6):
        d = docs[start - 30]
        final[d.id] = Document(d.id, d.text + " replaced", d.title)
    with Collection.create(tmp_path / "fresh", profile="bm25", encoder=FakeEncoder(dim=8)) as fresh:
        fresh.add(list(final.values()))
        assert {q: [(h.id, h.score) for h in fresh.search(q, k=10)] for q in queries} == served
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:
        assert {q: [(h.id, h.score) for h in again.search(q, k=10)] for q in queries} == served
    assert builds == []
