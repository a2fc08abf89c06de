"""Listing, counting and deleting documents by metadata filter: `Collection.scroll`, `count`, `delete(filter=)`,
on one collection and a sharded one, through the CLI (`slimvec get`, `slimvec delete --filter`), the HTTP API and
LangChain. Expected ids are computed here from the documents given, never read back from the code under test."""

from __future__ import annotations

import json

import pytest
from _server_util import AUTH, KEY
from fakes import FakeEncoder, registered_encoders
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.documents import Section
from slimvec.errors import ConfigError, FilterError
from slimvec.server import create_app

TOPICS = ("bones", "cancer", "heart")
DOCS = [Document(f"doc-{i:02d}", f"passage {i} about {TOPICS[i % 3]} and year {2000 + i % 7}", f"T{i}",
                 {"topic": TOPICS[i % 3], "year": 2000 + i % 7, **({"tags": ["x", "y"]} if i % 4 == 0 else {})})
        for i in range(37)]
# ids that do not sort as they were added, and one of several code points
DOCS += [Document("Zeta", "zeta passage about bones", "", {"topic": "bones", "year": 1999}),
         Document("äpfel", "apples about heart", "", {"topic": "heart", "year": 2030}),
         Document("sec", "First part here. Second part there.", "", {"topic": "cancer", "year": 2010},
                  sections=(Section("a", 0, 16), Section("b", 17, 35)))]


def _ids(pred) -> list[str]:
    return sorted(d.id for d in DOCS if pred(d.metadata))


def _all_pages(col, flt=None, limit=5) -> list[str]:
    seen, offset = [], None
    while True:
        docs, offset = col.scroll(flt, limit, offset)
        assert len(docs) <= limit
        seen += [d.id for d in docs]
        if offset is None:
            return seen


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "col", encoder=FakeEncoder())
    c.add(DOCS)
    yield c
    c.close()


def test_scroll_pages_every_document_once_in_id_order_with_its_metadata_and_sections(col):
    assert _all_pages(col) == sorted(d.id for d in DOCS)  # "Zeta" < "doc-.." < "sec" < "äpfel": code point order
    assert _all_pages(col, limit=1) == sorted(d.id for d in DOCS)
    docs, nxt = col.scroll(limit=len(DOCS))
    assert nxt is None and {d.id: (d.text, d.title, d.metadata) for d in docs} == \
        {d.id: (d.text, d.title, d.metadata) for d in DOCS}
    (sec,) = [d for d in docs if d.id == "sec"]
    assert [(s.id, s.start, s.end) for s in sec.sections] == [("a", 0, 16), ("b", 17, 35)]
    assert sec.sections == col.get("sec").sections
    first, nxt = col.scroll(limit=3)
    assert nxt == sorted(d.id for d in DOCS)[3]
    assert [d.id for d in col.scroll(limit=3, offset=nxt)[0]] == sorted(d.id for d in DOCS)[3:6]


@pytest.mark.parametrize("flt, pred", [
    ({"topic": "bones"}, lambda m: m["topic"] == "bones"),
    ({"year": {"$gte": 2004}, "topic": {"$ne": "heart"}}, lambda m: m["year"] >= 2004 and m["topic"] != "heart"),
    ({"tags": "y"}, lambda m: "y" in m.get("tags", [])),
    ({"$or": [{"year": 1999}, {"year": 2030}]}, lambda m: m["year"] in (1999, 2030)),
])
def test_scroll_and_count_by_filter_equal_the_documents_the_filter_names(col, flt, pred):
    assert _all_pages(col, flt, limit=4) == _ids(pred)
    assert col.count(flt) == len(_ids(pred))
    assert col.count() == len(DOCS) == len(col)


def test_delete_by_filter_removes_exactly_the_matching_documents_everywhere(col):
    gone = _ids(lambda m: m["topic"] == "heart" or m["year"] == 2001)
    assert col.delete(filter={"$or": [{"topic": "heart"}, {"year": 2001}]}) == len(gone)
    assert _all_pages(col) == sorted({d.id for d in DOCS} - set(gone))
    assert col.check() == []
    for q in ("passage about heart", "apples about heart", "year 2001"):
        assert not {h.id for h in col.search(q, k=len(DOCS))} & set(gone)
    assert col.delete(filter={"topic": "heart"}) == 0  # nothing left to match: no error, nothing deleted
    assert col.delete(filter={"_id": {"$in": ["doc-00", "nope"]}}) == 1 and col.get("doc-00") is None


def test_unmatchable_filters_and_wrong_arguments_are_refused_and_delete_nothing(col):
    for call in (lambda: col.count({"year": "2001"}), lambda: col.scroll({"year": "2001"}),
                 lambda: col.delete(filter={"year": "2001"})):
        with pytest.raises(FilterError, match="'year' is stored as number"):
            call()
    with pytest.raises(FilterError, match="JSON object"):
        col.delete(filter=["topic"])
    with pytest.raises(ConfigError, match="empty filter matches every document"):
        col.delete(filter={})
    with pytest.raises(ConfigError, match="not both"):
        col.delete(["doc-01"], filter={"topic": "bones"})
    with pytest.raises(ConfigError, match="give the ids to delete"):
        col.delete()
    for limit in (0, -1, True, "3", 2.0):
        with pytest.raises(ConfigError, match="limit must be a whole number"):
            col.scroll(limit=limit)
    with pytest.raises(ConfigError, match="offset is a document id"):
        col.scroll(offset=3)
    assert len(col) == len(DOCS) and col.check() == []


def test_a_sharded_collection_pages_counts_and_deletes_as_one_collection(tmp_path):
    from slimvec.distributed.sharded import create_sharded

    enc = FakeEncoder()
    with registered_encoders(enc):
        create_sharded(tmp_path / "sh", 3, model=enc.name).close()
        with Collection.open(tmp_path / "sh") as sh, Collection.create(tmp_path / "one", encoder=enc) as one:
            sh.add(DOCS)
            one.add(DOCS)
            for flt in (None, {"topic": "cancer"}, {"year": {"$lt": 2003}}):
                for limit in (1, 4, 50):
                    assert sh.scroll(flt, limit) == one.scroll(flt, limit)
                    offset = one.scroll(flt, limit)[1]
                    if offset is not None:
                        assert sh.scroll(flt, limit, offset) == one.scroll(flt, limit, offset)
                assert sh.count(flt) == one.count(flt)
            with pytest.raises(FilterError, match="stored as number"):
                sh.count({"year": "x"})
            with pytest.raises(ConfigError, match="empty filter"):
                sh.delete(filter={})
            flt = {"topic": "bones"}
            assert sh.delete(filter=flt) == one.delete(filter=flt) == len(_ids(lambda m: m["topic"] == "bones"))
            assert _all_pages(sh) == _all_pages(one)
            assert sh.check() == []
            # the deleted documents' tie-break ordinals are forgotten, as `delete(ids)` forgets them
            assert not sh.ordinals.get(_ids(lambda m: m["topic"] == "bones"))


def _cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


def test_cli_get_lists_pages_counts_and_round_trips_through_index(tmp_path):
    enc = FakeEncoder()
    with registered_encoders(enc):
        with Collection.create(tmp_path / "col", encoder=enc) as c:
            c.add(DOCS)
        code, out, err = _cli("get", tmp_path / "col", "--limit", 4)
        assert code == 0 and all(i in out for i in sorted(d.id for d in DOCS)[:4])
        assert f"--offset {sorted(d.id for d in DOCS)[4]}" in err
        code, out, err = _cli("get", tmp_path / "col", "--count", "--filter", '{"topic": "heart"}')
        assert code == 0 and out.strip() == str(len(_ids(lambda m: m["topic"] == "heart")))
        code, out, err = _cli("get", tmp_path / "col", "doc-03", "nope")
        assert code == 1 and "doc-03" in out and "not found: 'nope'" in err
        code, out, err = _cli("get", tmp_path / "col", "--json", "--limit", 1000)
        assert code == 0 and err == ""
        dump = tmp_path / "dump.jsonl"
        dump.write_text(out)
        assert [json.loads(line)["_id"] for line in out.splitlines()] == sorted(d.id for d in DOCS)
        code, _, err = _cli("index", dump, "--collection", tmp_path / "copy", "--model", enc.name)
        assert code == 0, err
        with Collection.open(tmp_path / "copy") as copy, Collection.open(tmp_path / "col") as orig:
            assert copy.scroll(limit=100) == orig.scroll(limit=100)  # text, title, metadata and sections
        code, out, err = _cli("delete", tmp_path / "col", "--filter", '{"year": {"$gte": 2005}}')
        assert code == 0 and f"deleted {len(_ids(lambda m: m['year'] >= 2005))} documents" in out
        for args, msg in ((["doc-01", "--filter", '{"a": 1}'], "not both"), ([], "give the ids"),
                          (["--filter", "{}"], "empty filter")):
            code, out, err = _cli("delete", tmp_path / "col", *args)
            assert code == 2 and msg in err
        code, _, err = _cli("get", tmp_path / "col", "doc-01", "--count")
        assert code == 2 and "leave them out when giving ids" in err
        with Collection.open(tmp_path / "col") as c:
            assert len(c) == len(DOCS) - len(_ids(lambda m: m["year"] >= 2005))


def test_http_lists_pages_and_deletes_by_filter(col):
    with TestClient(create_app({"col": col}, api_key=KEY), raise_server_exceptions=False) as client:
        r = client.get("/api/collections/col/documents", params={"filter": '{"topic": "cancer"}', "limit": 3})
        assert r.status_code == 200
        body = r.json()
        want = _ids(lambda m: m["topic"] == "cancer")
        assert [d["id"] for d in body["documents"]] == want[:3] and body["next_offset"] == want[3]
        assert body["count"] == len(want)
        r = client.get("/api/collections/col/documents", params={"filter": '{"topic": "cancer"}', "limit": 100,
                                                                 "offset": want[3]})
        assert [d["id"] for d in r.json()["documents"]] == want[3:] and r.json()["next_offset"] is None
        assert client.get("/api/collections/col/documents", params={"where": "x"}).status_code == 422
        assert client.get("/api/collections/col/documents", params={"limit": 0}).status_code == 422
        r = client.get("/api/collections/col/documents", params={"filter": '{"year": "x"}'})
        assert r.status_code == 400 and "stored as number" in r.json()["detail"]
        for body, status in (({"filter": {}}, 422), ({"ids": ["doc-01"], "filter": {"a": 1}}, 422), ({}, 422)):
            assert client.request("DELETE", "/api/collections/col/documents", json=body, headers=AUTH).status_code \
                == status
        assert len(col) == len(DOCS)
        assert client.request("DELETE", "/api/collections/col/documents", json={"filter": {"topic": "cancer"}}
                              ).status_code == 401  # a write: the key is required
        r = client.request("DELETE", "/api/collections/col/documents", json={"filter": {"topic": "cancer"}},
                           headers=AUTH)
        assert r.status_code == 200 and r.json() == {"deleted": len(want)}
        assert client.get("/api/collections/col/documents", params={"limit": 100}).json()["count"] == \
            len(DOCS) - len(want)


def test_langchain_delete_by_filter(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from slimvec.integrations.langchain import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "lc", DeterministicFakeEmbedding(size=8))
    try:
        store.add_texts([d.text for d in DOCS[:12]], [d.metadata for d in DOCS[:12]], ids=[d.id for d in DOCS[:12]])
        store.delete(filter={"topic": "bones"})
        left = {d.id for d in DOCS[:12] if d.metadata["topic"] != "bones"}
        assert {d.id for d in store.get_by_ids([d.id for d in DOCS[:12]])} == left
        with pytest.raises(FilterError):
            store.delete(filter="topic = bones")
    finally:
        store.collection.close()
