"""Bad input to the Python API and the HTTP API: every call applies whole or not at all (issue 11, kinds 1, 2, 6).

A refused call must leave the collection byte for byte as it was (Store.content_digest: documents, chunks,
vector rows), and its error must name the problem (id, positions). Calls are generated larger than the
512-document internal batch, with the fault anywhere in them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeEncoder
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slimvec.collection as collection_module
from slimvec import Collection, Document
from slimvec.errors import IngestError
from slimvec.server import create_app

BATCH = 512  # the collection's internal batch: faults are placed on both sides of it
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


class NaNForPoison(FakeEncoder):
    """A fake encoder whose vector is NaN for any text holding the word "poison" (a broken model)."""

    def encode_documents(self, texts, progress=False):
        out = super().encode_documents(texts)
        out[[i for i, t in enumerate(texts) if "poison" in t]] = np.nan
        return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("calls") / "c"
    with Collection.create(path, encoder=NaNForPoison(dim=32)) as col:
        col.add([Document(f"s{i}", f"seed document {i} about apples") for i in range(20)])
    return path


@pytest.fixture()
def col(seeded, tmp_path):
    import shutil

    shutil.copytree(seeded, tmp_path / "c")
    c = Collection.open(tmp_path / "c", encoder=NaNForPoison(dim=32))
    yield c
    c.close()


def _docs(n: int, prefix: str = "n") -> list[Document]:
    return [Document(f"{prefix}{i}", f"note {i} on topic {i % 7}") for i in range(n)]


@SETTINGS
@given(n=st.integers(2, 1300), data=st.data())
def test_a_repeated_id_anywhere_refuses_the_whole_add(col, n, data):
    first = data.draw(st.integers(0, n - 2))
    second = data.draw(st.integers(first + 1, n - 1))
    docs = _docs(n)
    docs[second] = Document(docs[first].id, "the same id again")
    before = col.store.content_digest()
    with pytest.raises(IngestError, match=rf"^id '{docs[first].id}' appears twice in this call "
                                          rf"\(positions {first} and {second}\); nothing from this call was stored$"):
        col.add(docs)
    assert col.store.content_digest() == before and len(col) == 20


@SETTINGS
@given(n=st.integers(1, 1300), data=st.data())
def test_an_id_already_stored_refuses_the_whole_add(col, n, data):
    at = data.draw(st.integers(0, n - 1))
    docs = _docs(n)
    docs[at] = Document("s3", "tries to overwrite a stored document")
    before = col.store.content_digest()
    with pytest.raises(IngestError, match=rf"^id 's3' \(position {at}\) is already stored"):
        col.add(docs)
    assert col.store.content_digest() == before


@SETTINGS
@given(n=st.integers(1, 1300), data=st.data(),
       kind=st.sampled_from(["empty", "whitespace", "nan-vector", "not-a-document", "bad-metadata"]))
def test_one_bad_document_anywhere_refuses_the_whole_call(col, n, data, kind):
    at = data.draw(st.integers(0, n - 1))
    docs: list = _docs(n)
    bad = {"empty": Document("bad", ""), "whitespace": Document("bad", " \n\t ", "  "),
           "nan-vector": Document("bad", "a poison pill"), "not-a-document": {"id": "bad", "text": "x"},
           "bad-metadata": Document("bad", "text", metadata={"score": float("nan")})}[kind]
    docs[at] = bad
    before = col.store.content_digest()
    with pytest.raises(IngestError) as err:
        col.upsert(docs)
    msg = str(err.value)
    assert "\n" not in msg and ("'bad'" in msg or f"position {at}" in msg)
    assert col.store.content_digest() == before


def test_a_large_good_call_is_one_commit_and_searchable(col):
    col.add(_docs(1300))
    assert len(col) == 1320 and col.get("n1299").text == "note 1299 on topic 4"
    assert [h.id for h in col.search("note", k=1, filter={"_id": "n1299"})] == ["n1299"]


def test_a_stream_says_what_earlier_batches_committed(col):
    docs = _docs(1100)
    docs[1000] = Document("n5", "repeated far apart in a stream")
    # position 1000 is in the second batch of 512: the first batch is committed, the second refused whole
    with pytest.raises(IngestError, match=r"positions 5 and 1000\); 512 documents \(positions 0-511\) were "
                                          r"committed before the batch that holds position 1000, nothing after$"):
        col.add(iter(docs))
    stored = {d.id for d in _docs(1100) if col.get(d.id) is not None}
    assert stored == {f"n{i}" for i in range(512)}  # exactly what the error says


@pytest.mark.parametrize("call,arg,needle", [
    ("add", "just a string", "docs must be a list or iterable of slimvec.Document, not str"),
    ("upsert", Document("x", "one document"), "not Document"),
    ("delete", 12, "ids must be a list of strings, not int"),
    ("delete", ["a", 3], "ids must be strings, got int"),
    ("search_many", "a query", "queries must be a list of strings, not str"),
])
def test_wrong_types_are_refused_with_the_argument_named(col, call, arg, needle):
    before = col.store.content_digest()
    with pytest.raises(TypeError, match=needle):
        getattr(col, call)(arg)
    assert col.store.content_digest() == before


def test_one_id_as_a_string_deletes_that_document_only(col):
    col.add([Document("12", "twelve"), Document("1", "one"), Document("2", "two")])
    assert col.delete("12") == 1
    assert col.get("12") is None and col.get("1") is not None and col.get("2") is not None


def test_http_writes_are_all_or_nothing(col):
    client = TestClient(create_app({"c": col}))
    docs = [{"id": f"h{i}", "text": f"http note {i}"} for i in range(700)]
    docs[650]["id"] = "h3"
    before = col.store.content_digest()
    r = client.post("/api/collections/c/documents", json=docs)
    assert r.status_code == 400 and "positions 3 and 650" in r.json()["detail"]
    assert col.store.content_digest() == before
    docs[650]["id"] = "h650"
    r = client.post("/api/collections/c/documents", json=docs)
    assert r.status_code == 200, r.text
    assert col.get("h650") is not None and len(col) == 720


# ---- kind 6: vectors checked; check() finds what an older writer let through ------------------------------
def test_check_finds_non_finite_rows(tmp_path, monkeypatch):
    # An older slimvec stored NaN vectors unchecked: simulate it by turning the check off for one write.
    with Collection.create(tmp_path / "c", profile="int8", encoder=NaNForPoison(dim=32)) as col:
        col.add(_docs(300))
        assert col.check() == []
        monkeypatch.setattr(collection_module, "_check_finite", lambda vectors, owners: None)
        col.add([Document("p", "a poison pill")])
        monkeypatch.undo()
        problems = col.check()
        assert any("1 vector rows hold NaN or infinity" in p for p in problems), problems


def test_codecs_fit_only_on_finite_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(collection_module, "_check_finite", lambda vectors, owners: None)
    with Collection.create(tmp_path / "c", profile="int8", encoder=NaNForPoison(dim=32)) as col:
        col.add([Document("p", "a poison pill")] + _docs(300))  # the codec is fitted at this first sync
        monkeypatch.undo()
        hits = col.search("note 17 on topic 3", k=3)
        assert len(hits) == 3 and np.isfinite([h.score for h in hits]).all()
        problems = col.check()  # the NaN row is reported; the codes, fitted on finite rows, agree with the rest
        assert len(problems) == 1 and "1 vector rows hold NaN or infinity" in problems[0], problems


@pytest.mark.parametrize("bad_id", ["doc 1 ", " lead", "x" * 513, "bell\x07", "nul\x00", "\ud800"])
def test_the_one_id_rule_holds_for_api_and_http_writes(col, bad_id):
    # The rule the readers apply (slimvec.ids) refuses these at every door, so no output has to carry them.
    before = col.store.content_digest()
    with pytest.raises(IngestError, match=r"^position 1: id .*; nothing from this call was stored$"):
        col.add([Document("fine", "ok"), Document(bad_id, "text")])
    body = json.dumps([{"id": "fine", "text": "ok"}, {"id": bad_id, "text": "t"}])  # \ud800 stays escaped
    r = TestClient(create_app({"c": col})).post("/api/collections/c/documents", content=body.encode(),
                                                headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and col.get("fine") is None
    assert col.store.content_digest() == before


def test_check_finds_ram_codes_that_disagree_with_the_stored_vectors(tmp_path):
    # Codes are derived data loaded from index/codes/codes.bin (raw int8 rows): damage two rows' codes on disk,
    # as a bad disk or an old bug would, and check() must name them while the store itself is healthy.
    path = tmp_path / "c"
    with Collection.create(path, profile="int8", encoder=NaNForPoison(dim=32)) as col:
        col.add(_docs(300))
        assert col.check() == []
    codes_file = path / "index" / "codes" / "codes.bin"
    codes = np.fromfile(codes_file, dtype=np.int8).reshape(300, -1)
    codes[[7, 42]] = codes[[7, 42]] + 1  # int8 codes wrap, so every byte changes
    codes.tofile(codes_file)
    with Collection.open(path, encoder=NaNForPoison(dim=32)) as col:
        assert col.check() == ["dense index: 2 rows' codes disagree with their stored vectors"]


def test_add_encoded_refuses_a_document_without_chunks(col):
    from slimvec.documents import Chunk

    before = col.store.content_digest()
    docs = [Document("e1", "first text"), Document("e2", "second text, no chunk given")]
    vectors = np.ones((1, 32), np.float32) / np.sqrt(32)
    with pytest.raises(IngestError, match=r"document 'e2' \(position 1\) has no chunks; nothing from this call"):
        col.add_encoded(docs, [Chunk("e1", 0, 0, 10, "first text")], vectors)
    assert col.store.content_digest() == before and col.check() == []


def test_add_encoded_refuses_a_chunk_given_twice_and_names_given_vectors(col):
    from slimvec.documents import Chunk

    before = col.store.content_digest()
    docs = [Document("r1", "first text here")]
    twice = [Chunk("r1", 0, 0, 5, "first"), Chunk("r1", 0, 6, 10, "text")]
    with pytest.raises(IngestError, match=r"chunk 0 of 'r1' is given twice; nothing from this call"):
        col.add_encoded(docs, twice, np.ones((2, 32), np.float32) / np.sqrt(32))
    bad = np.full((1, 32), np.nan, np.float32)
    with pytest.raises(IngestError, match=r"document 'r1': the given vectors hold a non-finite vector"):
        col.add_encoded(docs, [Chunk("r1", 0, 0, 5, "first")], bad)
    assert col.store.content_digest() == before and col.check() == []


def test_a_truncated_vector_file_is_one_line_at_search_not_a_traceback(tmp_path):
    from slimvec.errors import CollectionError

    with Collection.create(tmp_path / "c", encoder=FakeEncoder(32)) as c:
        c.add([Document(f"d{i}", f"text number {i} about cats") for i in range(20)])
    vectors = tmp_path / "c" / "vectors" / "float32.bin"
    with open(vectors, "r+b") as f:
        f.truncate(vectors.stat().st_size - 32 * 4)
    with Collection.open(tmp_path / "c", encoder=FakeEncoder(32)) as c:
        with pytest.raises(CollectionError, match=r"float32.bin: .* fewer than the 20 committed rows.*slimvec check"):
            c.search("cats")


def test_add_encoded_refuses_non_unit_and_zero_vectors_unless_asked_to_normalise(col):
    from slimvec.documents import Chunk

    before = col.store.content_digest()
    docs = [Document("u1", "first text"), Document("u2", "second text")]
    chunks = [Chunk("u1", 0, 0, 10, "first text"), Chunk("u2", 0, 0, 11, "second text")]
    unit = np.ones(32, np.float32) / np.sqrt(32)
    with pytest.raises(IngestError, match=r"document 'u2' chunk 0: the given vector has L2 norm 100, not 1 .*"
                                          r"normalize=True.*nothing from this call was stored"):
        col.add_encoded(docs, chunks, np.stack([unit, unit * 100]))
    with pytest.raises(IngestError, match=r"document 'u1' chunk 0: the given vector is all zeros"):
        col.add_encoded(docs, chunks, np.stack([np.zeros(32, np.float32), unit]), normalize=True)
    assert col.store.content_digest() == before and col.check() == []
    col.add_encoded(docs, chunks, np.stack([unit * 0.5, unit * 100]), normalize=True)
    hits = col.search_vectors(unit, k=5)[0]
    top = {h.id: h.score for h in hits}
    assert top["u1"] == pytest.approx(1.0, abs=1e-6) and top["u2"] == pytest.approx(1.0, abs=1e-6)
