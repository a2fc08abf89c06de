"""Collection on real SciFact documents with the real default model: quality, persistence, upsert/delete, filters, HNSW."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_store_filters import ref_match

from slimvec import Collection, Document
from slimvec.errors import CollectionError, ConfigError, IngestError
from slimvec.store import Store
from slimvec.store.rowmap import RowMap


def test_judged_documents_found_in_top10(built_collection, scifact_judged):
    with Collection.open(built_collection) as col:
        found = 0
        for text, relevant in scifact_judged.values():
            ids = {h.id for h in col.search(text, k=10)}
            found += bool(ids & relevant)
    # all-MiniLM-L6-v2 reaches Recall@10 ~0.78 on full SciFact (5,183 docs); on 300 docs it must do at least that well.
    assert found / len(scifact_judged) >= 0.8, found


def test_hits_are_documents_with_snippets(built_collection, scifact_docs):
    by_id = {d.id: d for d in scifact_docs}
    with Collection.open(built_collection) as col:
        hits = col.search("vitamin D deficiency and bone fractures", k=10)
    assert len(hits) == 10
    assert len({h.id for h in hits}) == 10, "a document appears once"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        doc = by_id[h.id]
        assert h.title == doc.title and h.metadata == doc.metadata
        assert doc.text[h.chunk_start : h.chunk_end] == h.snippet and h.snippet


def test_document_score_is_its_best_chunk(built_collection):
    with Collection.open(built_collection) as col:
        q = col.encoder.encode_queries(["immune response to tumour cells"])[0]
        vecs = np.asarray(col.store.vectors())
        rows = dict(col.store.chunk_owners_from(0))
        best: dict[str, float] = {}
        for r, d in rows.items():
            best[d] = max(best.get(d, -9), float(vecs[r] @ q))
        expected = sorted(best.items(), key=lambda x: -x[1])[:10]
        hits = col.search_vectors(q, k=10)[0]
    assert [h.id for h in hits] == [d for d, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-5)


def test_reopen_gives_identical_results(built_collection, scifact_judged):
    queries = [t for t, _ in list(scifact_judged.values())[:5]]
    with Collection.open(built_collection) as a:
        first = [[(h.id, h.score) for h in hits] for hits in a.search_many(queries, k=10)]
    with Collection.open(built_collection) as b:
        again = [[(h.id, h.score) for h in hits] for hits in b.search_many(queries, k=10)]
    assert first == again


def test_upsert_replaces_document_and_chunks(scifact_collection, scifact_docs):
    target = scifact_docs[0]
    with Collection.open(scifact_collection) as col:
        n_before = len(col)
        new = Document(target.id, "Penguins huddle together to survive the Antarctic winter.", "Penguins", {"kind": "bird"})
        col.upsert([new])
        assert len(col) == n_before
        assert col.get(target.id) == new
        hits = col.search("penguins in antarctic winter", k=1)
        assert hits[0].id == target.id and hits[0].snippet == new.text
        assert len(col.store.chunks_of(target.id)) == 1  # the old chunks went with the old version
    with Collection.open(scifact_collection) as col:
        assert col.search("penguins in antarctic winter", k=1)[0].id == target.id


def test_add_refuses_existing_id_and_keeps_data(scifact_collection, scifact_docs):
    with Collection.open(scifact_collection) as col:
        before = col.info()
        with pytest.raises(IngestError, match="already stored"):
            col.add([Document("brand-new", "text"), scifact_docs[3]])
        assert col.info()["documents"] == before["documents"]
        assert col.get("brand-new") is None
        assert col.check() == []


def test_delete_removes_from_results(scifact_collection, scifact_judged):
    text, relevant = next(iter(scifact_judged.values()))
    with Collection.open(scifact_collection) as col:
        top = col.search(text, k=3)[0].id
        assert col.delete([top, "no-such-id"]) == 1
        assert top not in {h.id for h in col.search(text, k=50)}
        assert col.get(top) is None
    with Collection.open(scifact_collection) as col:
        assert top not in {h.id for h in col.search(text, k=50)}
        assert col.check() == []


@pytest.mark.parametrize("flt", [
    {"group": "a"},
    {"year": {"$gte": 2020}},
    {"tags": "z", "odd": False},
    {"$or": [{"group": "c"}, {"year": 2003}]},
    {"_id": {"$in": ["4983", "5836", "nope"]}},
])
def test_filtered_search_equals_brute_force(built_collection, scifact_docs, flt):
    with Collection.open(built_collection) as col:
        everything = col.search("cancer treatment outcomes", k=len(scifact_docs))
        by_id = {d.id: d for d in scifact_docs}
        expected = [(h.id, h.score) for h in everything if ref_match(flt, by_id[h.id])][:10]
        got = [(h.id, h.score) for h in col.search("cancer treatment outcomes", k=10, filter=flt)]
    assert got == expected


def test_hnsw_recall_against_exact(built_collection, scifact_judged, tmp_path):
    # Same vectors, HNSW index instead of exact: copy the collection and switch its index kind.
    path = tmp_path / "hnsw"
    shutil.copytree(built_collection, path)
    with Collection.open(path) as col:
        col.store.save_manifest({"index": "hnsw"})
    queries = [t for t, _ in scifact_judged.values()]
    with Collection.open(built_collection) as exact, Collection.open(path) as hnsw:
        qv = exact.encoder.encode_queries(queries)
        e = exact.search_vectors(qv, k=10)
        h = hnsw.search_vectors(qv, k=10)
        assert hnsw.info()["indexes"]["dense"]["kind"] == "hnsw" and exact.info()["indexes"]["dense"]["kind"] == "exact"
    recall = np.mean([len({x.id for x in a} & {x.id for x in b}) / 10 for a, b in zip(e, h)])
    # Floor: HNSW (M=32, efSearch=128) on a few hundred rows should be near-exact; 0.95 leaves room for ties.
    assert recall >= 0.95, recall


def test_hnsw_filtered_equals_brute_force(built_collection, scifact_docs, tmp_path):
    path = tmp_path / "hnsw"
    shutil.copytree(built_collection, path)
    with Collection.open(path) as col:
        col.store.save_manifest({"index": "hnsw"})
    with Collection.open(path) as col:
        flt = {"group": "b"}
        everything = col.search("heart disease risk", k=len(scifact_docs))
        by_id = {d.id: d for d in scifact_docs}
        expected = [h.id for h in everything if ref_match(flt, by_id[h.id])][:10]
        got = [h.id for h in col.search("heart disease risk", k=10, filter=flt)]
    assert got == expected


def test_user_errors(built_collection, tmp_path):
    with Collection.open(built_collection) as col:
        with pytest.raises(ConfigError, match="empty"):
            col.search("   ")
        with pytest.raises(ConfigError, match="^k: Input should be greater than or equal to 1, got 0$"):
            col.search("x", k=0)
        with pytest.raises(ConfigError, match="^k: Input should be less than or equal to 1000, got 1001$"):
            col.search("x", k=1001)  # the one limit the API, the CLI and the server share
        with pytest.raises(ConfigError, match="^unknown search option 'top_k'$"):
            col.search("x", top_k=3)
        with pytest.raises(ConfigError, match="dimension"):
            col.search_vectors(np.ones(17, np.float32))
        with pytest.raises(ConfigError, match="finite"):  # used to return no hits, silently
            col.search_vectors(np.full(int(col.manifest["dim"]), np.nan, np.float32))
        with pytest.raises(TypeError, match="strings, not int"):  # ids are stored as strings
            col.get(5)
    with pytest.raises(CollectionError, match="no slimvec collection"):
        Collection.open(tmp_path / "missing")


def test_indexing_into_an_existing_collection_refuses_other_settings(tmp_path):
    from fakes import FakeEncoder

    from slimvec.profiles import load_profile

    Collection.create(tmp_path / "c", profile="exact-f32", encoder=FakeEncoder(), chunk_tokens=32).close()
    for options, needle in (({"profile": load_profile("binary-rescore")}, "profile 'exact-f32', not 'binary-rescore'"),
                            ({"index": "hnsw"}, "index 'exact', not 'hnsw'"),
                            ({"chunk_tokens": 16}, "chunk_tokens 32, not 16"),
                            ({"chunk_mode": "whole"}, "chunk_mode 'tokens', not 'whole'")):
        with pytest.raises(CollectionError, match=needle):
            Collection.open_or_create(tmp_path / "c", **options)
    same = {"profile": load_profile("exact-f32"), "index": "exact", "chunk_tokens": 32, "chunk_mode": "tokens"}
    with Collection.open_or_create(tmp_path / "c", **same) as col:  # what it was made with: opened
        assert col.manifest["profile"]["name"] == "exact-f32"


def test_search_without_payload_gives_the_same_ranking(built_collection, scifact_judged):
    with Collection.open(built_collection) as col:
        for text, _ in list(scifact_judged.values())[:5]:
            full = col.search(text, k=10)
            bare = col.search(text, k=10, with_payload=False)
            assert [(h.id, h.score) for h in bare] == [(h.id, h.score) for h in full]
            assert all(h.snippet == "" and h.title == "" and h.metadata == {} for h in bare)
            assert any(h.snippet for h in full)


def _row_ids(rows: RowMap, store: Store) -> list[str | None]:
    """Row -> document id as a row map holds it after catching up with the store (None: deleted)."""
    rows.update(store)
    return [rows.doc_ids[d] if d >= 0 else None for d in rows.row_doc.tolist()]


def test_row_map_follows_adds_deletes_and_upserts_from_any_process(tmp_path):
    from fakes import FakeEncoder

    path = tmp_path / "c"
    writer = Collection.create(path, encoder=FakeEncoder(max_tokens=8), chunk_overlap=0)
    reader, held = Store.open(path), RowMap()  # another process's view, kept up to date incrementally
    writer.add([Document(f"d{i}", " ".join(f"w{j}" for j in range(i % 3 * 9 + 3))) for i in range(12)])
    _row_ids(held, reader)
    writer.add([Document(f"e{i}", f"x{i} y z") for i in range(5)])
    assert _row_ids(held, reader) == _row_ids(RowMap(), Store.open(path))
    writer.delete(["d1", "e3"])
    writer.upsert([Document("d2", "replaced text " * 5), Document("f0", "fresh")])
    incremental = _row_ids(held, reader)
    fresh = _row_ids(RowMap(), Store.open(path))
    assert incremental == fresh
    assert "d1" not in incremental and "e3" not in incremental and "f0" in incremental
    # only the replacement's chunks: 10 words in chunks of 8 (the original's 21 words made 3)
    assert incremental.count("d2") == 2
    with Collection.open(path, encoder=FakeEncoder(max_tokens=8)) as other:
        assert {h.id for h in other.search("fresh", k=30)} == {i for i in fresh if i is not None}
    writer.close()
    reader.close()


def test_make_hit_builds_the_same_frozen_hit_as_its_constructor():
    import dataclasses

    from slimvec.documents import Hit, make_hit

    args = ("d1", 0.25, "Title", "snippet", {"year": 2020}, 3, 9, 0.7, "s2")
    fast, slow = make_hit(*args), Hit(*args)
    assert fast == slow and fast != Hit("d2", *args[1:])  # compares by fields
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow) and fast.to_dict() == slow.to_dict()
    assert make_hit("d1", 1.0, "", "", {}) == Hit("d1", 1.0, "", "", {})  # defaults match too
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.score = 1.0  # type: ignore[misc]
