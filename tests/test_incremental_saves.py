"""BM25 and SPLADE indexes saved append-only (issue 16 item 2): a commit writes its own rows, and the files of a
collection built in many commits equal those of one built in a single commit. Real SciFact slices, real
bm25s and SPLADE-tiny; the hashed bag-of-words FakeEncoder only for the dense side, which these tests ignore."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection
from slimvec.index import rowfiles


def _build(path, docs, retrievers, batches):
    col = Collection.create(path, profile="exact-f32", retrievers=retrievers, encoder=FakeEncoder(64))
    for part in np.array_split(np.arange(len(docs)), batches):
        col.add([docs[i] for i in part])
    return col


def _arrays(folder):
    meta, arrays = rowfiles.load(folder)
    return meta, {name: a for name, a in arrays.items()}


# SPLADE-tiny: ~0.25 s a document, encoded twice here; 12 in 6 commits of 2 make the same claim as 18 (the files
# of many commits equal one commit's whatever the commits' size)
@pytest.mark.parametrize("name, count", [("bm25", 120), ("sparse", 12)])
def test_many_commits_write_the_files_of_one(tmp_path, scifact_docs, name, count):
    docs = scifact_docs[:count]
    many = _build(tmp_path / "many", docs, ["dense", name], batches=6)
    one = _build(tmp_path / "one", docs, ["dense", name], batches=1)
    m_meta, m_arrays = _arrays(tmp_path / "many" / "index" / name)
    o_meta, o_arrays = _arrays(tmp_path / "one" / "index" / name)
    assert m_meta["rows"] == o_meta["rows"] == one.store.committed_rows and set(m_arrays) == set(o_arrays)
    for key in m_arrays:
        if key == "data":  # SPLADE's float output depends in its last bits on the batch a text is padded in
            assert np.allclose(m_arrays[key], o_arrays[key], rtol=1e-4, atol=1e-5)
        else:
            assert m_arrays[key].tobytes() == o_arrays[key].tobytes(), key
    if name == "sparse":
        return
    queries = ["cancer cells immune response", "vitamin D and bone density"]
    for col in (many, one):
        col.close()
    with Collection.open(tmp_path / "many", encoder=FakeEncoder(64)) as a, \
            Collection.open(tmp_path / "one", encoder=FakeEncoder(64)) as b:
        for q in queries:
            assert [(h.id, h.score) for h in a.search(q, k=10, mode=name)] == \
                   [(h.id, h.score) for h in b.search(q, k=10, mode=name)]


@pytest.mark.parametrize("name, count", [("bm25", 200), ("sparse", 30)])
def test_a_small_commit_appends_instead_of_rewriting(tmp_path, scifact_docs, name, count):
    col = _build(tmp_path / "col", scifact_docs[:count], ["dense", name], batches=1)
    folder = tmp_path / "col" / "index" / name
    big = "tokens.bin" if name == "bm25" else "data.bin"
    before = {p.name: (p.stat().st_ino, p.stat().st_size) for p in folder.iterdir() if p.suffix == ".bin"}
    col.add(scifact_docs[count : count + 1])
    after = {p.name: (p.stat().st_ino, p.stat().st_size) for p in folder.iterdir() if p.suffix == ".bin"}
    assert after[big][0] == before[big][0]  # the same file, appended to: not a new copy of the collection
    assert 0 < after[big][1] - before[big][1] < before[big][1] // 20
    meta = rowfiles.read_meta(folder)
    assert (meta["rows"] if name == "sparse" else meta["store_rows"]) == col.store.committed_rows
    col.close()


def test_a_delete_then_add_rewrites_the_bm25_cache_without_the_dead_rows(tmp_path, scifact_docs):
    col = _build(tmp_path / "col", scifact_docs[:60], ["dense", "bm25"], batches=1)
    col.delete([d.id for d in scifact_docs[:20]])
    col.add(scifact_docs[60:70])
    col.search("cells", k=5, mode="bm25")  # the matrix is rebuilt from the live rows
    col._save_index()
    fresh = _build(tmp_path / "fresh", scifact_docs[20:70], ["dense", "bm25"], batches=1)
    for q in ("cancer cells", "protein folding in yeast"):
        assert [(h.id, h.score) for h in col.search(q, k=10, mode="bm25")] == \
               [(h.id, h.score) for h in fresh.search(q, k=10, mode="bm25")]
    col.close()
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as again:
        assert [(h.id, h.score) for h in again.search("cancer cells", k=10, mode="bm25")] == \
               [(h.id, h.score) for h in fresh.search("cancer cells", k=10, mode="bm25")]
    fresh.close()


def test_a_bm25_folder_saved_before_row_files_loads_and_is_rewritten(tmp_path, scifact_docs):
    col = _build(tmp_path / "col", scifact_docs[:50], ["dense", "bm25"], batches=1)
    expected = [(h.id, h.score) for h in col.search("cancer cells", k=10, mode="bm25")]
    r = col._retrievers["bm25"]
    col.close()
    folder = tmp_path / "col" / "index" / "bm25"  # the whole-file layout slimvec wrote before row files
    for p in folder.iterdir():
        p.unlink()
    np.save(folder / "tokens.npy", r._tokens)
    np.save(folder / "offsets.npy", r._offsets)
    np.save(folder / "row_ids.npy", r._row_ids)
    (folder / "vocab.json").write_text(json.dumps(r._terms))
    (folder / "meta.json").write_text(json.dumps({"format": 1, "rows": r._rows, "config": r.config.to_dict(),
                                                  "built": False}))
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as again:
        assert [(h.id, h.score) for h in again.search("cancer cells", k=10, mode="bm25")] == expected
        again.add(scifact_docs[50:52])
        assert rowfiles.read_meta(folder) is not None and not (folder / "tokens.npy").exists()


@pytest.mark.parametrize("method", ["bm25l", "bm25+"])
def test_bm25l_and_bm25plus_scores_survive_a_reopen_and_a_compaction(tmp_path, scifact_docs, method):
    # BM25L and BM25+ give a query term a score in documents without it (bm25s's non-occurrence array). The
    # array is part of the index: a score matrix loaded from disk, or kept through a compaction, must score
    # a query exactly as the matrix built in memory did.
    from slimvec.profiles import profile_from_dict

    profile = profile_from_dict({"name": f"bm25-{method.replace('+', 'plus')}", "retrievers": ["bm25"], "mode": "bm25",
                                 "chunk_mode": "whole", "bm25": {"method": method}})
    queries = ["cancer cells immune response", "vitamin D and bone density", "protein folding in yeast"]
    col = Collection.create(tmp_path / "col", profile=profile, encoder=FakeEncoder(64))
    col.add(scifact_docs[:80])
    built = {q: [(h.id, h.score) for h in col.search(q, k=10)] for q in queries}
    col.close()
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as again:
        assert {q: [(h.id, h.score) for h in again.search(q, k=10)] for q in queries} == built
        again.delete([d.id for d in scifact_docs[70:80] if d.id not in {i for b in built.values() for i, _ in b}])
        deleted = {q: [(h.id, h.score) for h in again.search(q, k=10)] for q in queries}
        assert deleted != built  # the deletes left the statistics (N, avgdl, df): every score moved
        again.compact()
        assert {q: [(h.id, h.score) for h in again.search(q, k=10)] for q in queries} == deleted


def test_commits_save_bm25_postings_and_a_search_saves_those_a_folder_lacked(tmp_path, scifact_docs, monkeypatch):

    from slimvec.retrievers.bm25_postings import Postings
    from slimvec.store import switch

    col = _build(tmp_path / "col", scifact_docs[:120], ["dense", "bm25"], batches=2)
    col.close()
    folder = tmp_path / "col" / "index" / "bm25"
    # each commit wrote its segment: the postings cover every cached row
    assert json.loads((folder / "postings.json").read_text())["rows"] == rowfiles.read_meta(folder)["rows"] > 120
    (folder / "postings.json").unlink()  # as a collection saved before postings were kept
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as a:
        with switch.writer_lock(tmp_path / "col"):  # a writer is busy: the search answers and saves nothing
            expected = [(h.id, h.score) for h in a.search("cancer cells", k=10, mode="bm25")]
        assert not (folder / "postings.json").exists()
        assert [(h.id, h.score) for h in a.search("cancer cells", k=10, mode="bm25")] == expected
    assert (folder / "postings.json").exists()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the postings were built from the tokens instead of loaded")

    with monkeypatch.context() as m:
        m.setattr(Postings, "of_cache", no_rebuild)
        with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as b:
            assert [(h.id, h.score) for h in b.search("cancer cells", k=10, mode="bm25")] == expected


def test_postings_built_before_another_handles_commit_are_not_saved_over_its_rows(tmp_path, scifact_docs):

    col = _build(tmp_path / "col", scifact_docs[:60], ["dense", "bm25"], batches=1)
    folder = tmp_path / "col" / "index" / "bm25"
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as reader:
        reader._sync()  # the reader's rows: the first 60 documents
        col.add(scifact_docs[60:80])  # another handle commits 20 more and saves their rows
        r = reader._retrievers["bm25"]
        r._unsaved_postings = True  # as after a build: the reader holds postings of the 60 rows it knew
        r.save_cache(tmp_path / "col" / "index")
        assert json.loads((folder / "postings.json").read_text())["rows"] == rowfiles.read_meta(folder)["rows"] \
            == col.store.committed_rows
    col.close()
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(64)) as again:
        fresh = _build(tmp_path / "fresh", scifact_docs[:80], ["dense", "bm25"], batches=1)
        assert [(h.id, h.score) for h in again.search("cancer cells", k=10, mode="bm25")] == \
               [(h.id, h.score) for h in fresh.search("cancer cells", k=10, mode="bm25")]
        fresh.close()
