"""Documents given through the Python API meet the readers' rules (slimvec.records): a one-line IngestError naming
the document, the field and the problem, and nothing of the call stored (plumbing, fake encoder)."""

from __future__ import annotations

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import IngestError


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    c.add([Document("kept", "stored before")])
    yield c
    c.close()


@pytest.mark.parametrize(("doc", "expected"), [
    (Document("m1", "text", metadata={1: "x"}), "metadata is not JSON-serialisable: object key 1 is not a string"),
    (Document("m2", "text", metadata={"a": {"b": {2: 3}}}), r"a\.b: object key 2 is not a string"),
    (Document("m3", "text", metadata={"x": float("nan")}), r"x: non-finite number \(nan\)"),
    (Document("m4", "text", metadata={"k\ud800": 1}), r"'k\\ud800': key: invalid Unicode"),
    (Document("m5", "text", metadata={"x": "a\x00b"}), "x: NUL character at position 1"),
    (Document("t1", "bad \ud800 text"), "text: invalid Unicode: lone surrogate U[+]D800 at position 4"),
    (Document("t2", "text", "title\x00"), "title: NUL character at position 5"),
])
@pytest.mark.parametrize("method", ["add", "upsert"])
def test_bad_document_is_named_and_nothing_is_stored(col, doc, expected, method):
    good = Document("good", "a fine document")
    before = (col.store.committed_rows, col.store.generation)
    with pytest.raises(IngestError, match=expected) as err:
        getattr(col, method)([good, doc])
    message = str(err.value)
    assert f"document {doc.id!r} (position 1)" in message and "\n" not in message
    message.encode("utf-8")  # printable: a lone surrogate is shown escaped, never raw
    assert (col.store.committed_rows, col.store.generation) == before
    assert col.get("good") is None


def test_valid_nested_metadata_round_trips(col):
    meta = {"ok": [1, 2.5, None, True, {"z": "é"}], "n": -(2**63) + 1}
    col.add([Document("fine", "text", metadata=meta)])
    assert col.get("fine").metadata == meta


def test_add_encoded_refuses_a_chunk_whose_text_is_not_its_span(col):
    """The store keeps spans and shows the span's text as the snippet: a chunk text that differs from it (the
    vector was computed from other text) would make hits show text that was never encoded."""
    import numpy as np

    from slimvec.documents import Chunk

    docs = [Document("e1", "first text here")]
    unit = np.ones((1, 32), np.float32) / np.sqrt(32)
    before = col.store.content_digest()
    with pytest.raises(IngestError, match=r"chunk 0 of 'e1': its text is not the document's text at \[0, 5\)"):
        col.add_encoded(docs, [Chunk("e1", 0, 0, 5, "FIRST")], unit)
    assert col.store.content_digest() == before
    col.add_encoded(docs, [Chunk("e1", 0, 0, 5, "first")], unit)
    assert col.search_vectors(unit[0], k=1)[0][0].snippet == "first"
