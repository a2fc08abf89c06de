"""An upsert of documents stored exactly as given writes nothing: no encoding, no new rows, no dead rows; any
change (text, title, metadata, given sections or their headings) is written (plumbing, fake encoder)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEncoder
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.documents import Section
from slimvec.errors import ConfigError

TEXT = "alpha beta gamma. delta epsilon zeta. eta theta iota."
DOCS = [Document(f"d{i}", f"document {i} " + "alpha beta gamma delta " * (i % 5 + 1), f"t{i}", {"i": i, "tag": "x"})
        for i in range(20)]
SECTIONED = Document("s", TEXT, "with sections", {}, (Section("a", 0, 17, ("Intro",)), Section("b", 18, 37, ("Body",))))


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    c.add(DOCS + [SECTIONED])
    yield c
    c.close()


def _state(col: Collection) -> tuple[int, int, int]:
    return col.store.committed_rows, col.store.dead_rows, col.store.generation


def test_identical_upsert_writes_nothing(col):
    before, calls = _state(col), col.encoder.calls
    assert col.upsert(list(DOCS) + [SECTIONED]) == len(DOCS) + 1
    assert _state(col) == before  # no rows, no dead rows, no commit
    assert col.encoder.calls == calls  # nothing encoded
    assert [h.id for h in col.search("alpha beta", k=3)] == [h.id for h in col.search("alpha beta", k=3)]


@pytest.mark.parametrize("change", [
    lambda d: Document(d.id, d.text + " more", d.title, d.metadata),
    lambda d: Document(d.id, d.text, d.title + "!", d.metadata),
    lambda d: Document(d.id, d.text, d.title, {**d.metadata, "tag": "y"}),
    # (the same metadata in another key order is unchanged since session 23: test_s23_fixes)
])
def test_a_changed_document_among_unchanged_ones_is_the_only_one_written(col, change):
    rows, dead, _ = _state(col)
    own_rows = len(col.store.rows_of_documents(["d3"]))
    new = change(DOCS[3])
    col.upsert(DOCS[:3] + [new] + DOCS[4:])
    after_rows, after_dead, _ = _state(col)
    assert after_dead - dead == own_rows  # only d3's old rows died
    assert after_rows - rows == len(col.store.rows_of_documents(["d3"]))
    got = col.get("d3")
    assert (got.text, got.title, got.metadata) == (new.text, new.title, new.metadata)


@pytest.mark.parametrize("sections", [
    (Section("a", 0, 17, ("Intro",)), Section("b", 18, 37, ("Main",))),  # a heading renamed
    (Section("a", 0, 17, ("Intro",)), Section("c", 18, 37, ("Body",))),  # a section id changed
    (Section("a", 0, 17, ("Intro",)), Section("b", 18, 53, ("Body",))),  # a span changed
    None,  # the sections dropped: the chunker cuts the text itself
])
def test_changed_sections_are_written(col, sections):
    dead = col.store.dead_rows
    col.upsert([Document("s", TEXT, "with sections", {}, sections)])
    assert col.store.dead_rows > dead


def test_a_version_changed_by_another_writer_meanwhile_is_overwritten(col, monkeypatch):
    """The check before encoding runs without the lock; a document another handle changes before this call
    takes the lock must still end as this call's version (the later write wins)."""
    other = Collection.open(col.path, encoder=FakeEncoder())
    real = Collection._encode

    def encode_then_interfere(self, docs, chunks, enc, tokens, advance):
        if self is col and not getattr(encode_then_interfere, "done", False):
            encode_then_interfere.done = True
            other.upsert([Document("d5", "someone else's text", "other", {})])
        return real(self, docs, chunks, enc, tokens, advance)

    monkeypatch.setattr(Collection, "_encode", encode_then_interfere)
    col.upsert(list(DOCS))  # d5 is unchanged at the first check, changed by `other` before the lock
    got = col.get("d5")
    assert (got.text, got.title) == (DOCS[5].text, DOCS[5].title)
    assert np.isfinite(col.search("document 5", k=1)[0].score)
    other.close()


def test_reindexing_the_same_folder_reencodes_nothing(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"n{i}.md").write_text(f"# Note {i}\n\nSome text about topic {i}.\n\n## Part\n\nMore words {i}.\n")
    target = tmp_path / "col"
    runner = CliRunner()
    for _ in range(2):
        r = runner.invoke(app, ["index", str(folder), "-c", str(target), "--json"])
        assert r.exit_code == 0, r.output
    with Collection.open(target) as c:
        assert c.store.dead_rows == 0
        rows = c.store.committed_rows
        old_n2 = len(c.store.rows_of_documents(["n2.md"]))
    (folder / "n2.md").write_text("# Note 2\n\nRewritten.\n")
    assert runner.invoke(app, ["index", str(folder), "-c", str(target), "--json"]).exit_code == 0
    with Collection.open(target) as c:
        assert c.store.dead_rows > 0 and c.store.committed_rows > rows
        assert [d["id"] for d in c.store.iter_documents() if "Rewritten" in d["text"]] == ["n2.md"]
        assert old_n2 == 2 and c.store.dead_rows == old_n2  # only the rewritten note's two sections died


def test_add_encoded_leaves_documents_found_unchanged_and_encodes_one_changed_meanwhile(col):
    """`add_encoded(..., unchanged=ids)`, as distributed ingest calls it: documents the caller found stored as
    given come without vectors; under the writer lock one still stored as given is left alone, one another
    handle changed after the caller's check is encoded here and written (this call's version wins)."""
    docs = [DOCS[1], Document("d2", "a rewritten second document", "t2", {}), DOCS[3]]
    chunks = col.chunk(docs)
    same = col.store.unchanged(docs, chunks)
    assert same == {"d1", "d3"}
    flat, vectors = col.chunk_and_encode([docs[1]], chunks)  # only the changed one is encoded by the caller
    with Collection.open(col.path, encoder=FakeEncoder()) as other:  # d3 changed after the check
        other.upsert([Document("d3", "someone else's text", "other", {})])
    d1_rows = col.store.rows_of_documents(["d1"])
    rows, calls = col.store.committed_rows, col.encoder.calls
    everything = [c for d in docs for c in chunks[d.id]]
    assert col.add_encoded(docs, everything, vectors, replace=True, unchanged=same) == 3
    assert col.encoder.calls == calls + 1  # d3, encoded under the lock; d1 not at all
    assert col.store.rows_of_documents(["d1"]) == d1_rows  # left as stored
    assert col.store.committed_rows - rows == len(flat) + len(chunks["d3"])
    assert col.get("d3").text == DOCS[3].text and col.get("d2").text == docs[1].text
    stored = np.asarray(col.store.vectors())[sorted(col.store.rows_of_documents(["d3"]))]
    np.testing.assert_array_equal(stored, col.chunk_and_encode([DOCS[3]])[1])  # d3's own vectors
    for bad, match in (({"replace": False, "unchanged": {"d1"}}, "replace=True"),
                       ({"replace": True, "unchanged": {"nope"}}, "'nope', not a document of this call"),
                       ({"replace": True, "unchanged": set()}, "expected 3 vectors")):
        with pytest.raises(ConfigError, match=match):
            col.add_encoded(docs, everything, vectors, **bad)
