"""Given sections: validation at ingest, the section chunker, Markdown/HTML headings, contextual prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimvec.chunking import ChunkConfig, chunk_document
from slimvec.contextual import chunk_texts, contextual_text
from slimvec.documents import Chunk, Document, Section, section_problem
from slimvec.errors import IngestError
from slimvec.ingest import FieldMap
from slimvec.ingest.files import read_file
from slimvec.ingest.headings import html_sections, markdown_sections
from slimvec.ingest.sources import read_sources
from slimvec.ingest.tables import iter_table
from slimvec.sections import section_chunks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class WordTokens:
    """Whitespace words as tokens: enough for chunking logic, no model needed."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        import re

        return [m.span() for m in re.finditer(r"\S+", text)]


# ---- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ((Section("a", 0, 5), Section("b", 6, 11)), None),
        ((Section("a", 0, 5), Section("b", 5, 11)), None),  # touching is not overlapping
        ((Section("a", 0, 12),), "outside the text"),
        ((Section("a", -1, 3),), "outside the text"),
        ((Section("a", 3, 3),), "empty"),
        ((Section("a", 0, 6), Section("b", 5, 11)), "overlapping or out of order"),
        ((Section("b", 6, 11), Section("a", 0, 5)), "overlapping or out of order"),
        ((Section("a", 0, 5), Section("a", 6, 11)), "repeated"),
        ((Section("", 0, 5),), "non-empty"),
    ],
)
def test_section_problem(sections: tuple[Section, ...], problem: str | None) -> None:
    got = section_problem("hello world", sections)  # 11 characters
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


def test_document_refuses_bad_sections() -> None:
    with pytest.raises(ValueError, match="sections: 'b'.*overlapping"):
        Document("d", "hello world", sections=(Section("a", 0, 6), Section("b", 5, 11)))
    assert Document("d", "hello world").sections is None


def test_jsonl_sections_are_read_and_bad_records_reported_by_line_and_skipped(tmp_path: Path) -> None:
    text = "First part. Second part."
    good = {"_id": "a", "text": text, "sections": [{"_id": "s1", "start": 0, "end": 11}, {"_id": "s2", "start": 12, "end": 24}]}
    records = [
        good,
        {"_id": "b", "text": text, "sections": [{"_id": "s1", "start": 0, "end": 30}]},
        {"_id": "c", "text": text, "sections": [{"_id": "s1", "start": 12, "end": 24}, {"_id": "s2", "start": 0, "end": 11}]},
        {"_id": "d", "text": text, "sections": {"_id": "s1"}},
        {"_id": "e", "text": text, "sections": [{"_id": "s1", "start": "0", "end": 5}]},
        {"_id": "f", "text": text, "sections": [{"start": 0, "end": 5}]},
        {"_id": "g", "text": text},
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    errors: list[str] = []
    docs = list(read_sources(path, on_error=lambda e: errors.append(str(e))))
    assert [d.id for d in docs] == ["a", "g"]
    assert docs[0].sections == (Section("s1", 0, 11), Section("s2", 12, 24))
    assert "sections" not in docs[0].metadata
    assert docs[1].sections is None
    assert errors == [
        f"{path}:2: sections: 's1': span [0, 30) is empty or outside the text (length 24)",
        f"{path}:3: sections: 's2': span [0, 11) starts before the end of 's1' (24): overlapping or out of order",
        f"{path}:4: sections: expected an array, got object",
        f"{path}:5: sections: item 0: start: expected an integer, got string",
        f"{path}:6: sections: item 0: _id: expected a non-empty string",
    ]


def test_a_csv_column_named_sections_stays_metadata(tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text("_id,text,sections\na,hello,intro\n", encoding="utf-8")
    [(_, doc)] = list(iter_table(path, FieldMap()))
    assert isinstance(doc, Document) and doc.sections is None and doc.metadata == {"sections": "intro"}


@pytest.mark.parametrize(("name", "n_sections"), [("xquad-en-sentences", 613), ("xquad-en-articles", 120)])
def test_xquad_articles_load_with_sections_that_are_the_corpus_units(name: str, n_sections: int) -> None:
    items = list(iter_table(DATA / name / "articles.jsonl", FieldMap()))
    docs = [d for _, d in items]
    assert all(isinstance(d, Document) for d in docs) and len(docs) == 24
    units = {}
    with open(DATA / name / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            units[rec["_id"]] = rec["text"]
    spans = [(s.id, d.text[s.start : s.end]) for d in docs for s in d.sections]
    assert len(spans) == n_sections
    assert dict(spans) == units  # every section's text is exactly its unit in corpus.jsonl


# ---- the section chunker --------------------------------------------------------------------------------


def test_section_chunks_are_the_sections_with_their_ids() -> None:
    text = "Alpha beta gamma.\n\nDelta epsilon. Zeta eta theta iota kappa lambda mu nu xi omicron pi rho."
    long_start = text.index("Zeta")
    doc = Document("d", text, "T", sections=(Section("p1", 0, 17), Section("p2", 19, long_start - 1),
                                               Section("p3", long_start, len(text))))
    chunks = section_chunks(doc, WordTokens(), ChunkConfig(max_tokens=8, overlap=2))
    assert [(c.section_id, c.text) for c in chunks[:2]] == [("p1", "Alpha beta gamma."), ("p2", "Delta epsilon.")]
    # p3 has 13 words > 8: cut inside the section, every piece keeps the id and stays inside the span.
    rest = chunks[2:]
    assert len(rest) >= 2 and {c.section_id for c in rest} == {"p3"}
    assert all(long_start <= c.start < c.end <= len(text) and text[c.start : c.end] == c.text for c in rest)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # No sections: the ordinary token chunker.
    plain = Document("d", text)
    assert section_chunks(plain, WordTokens(), ChunkConfig(8, 2)) == chunk_document(plain, WordTokens(), ChunkConfig(8, 2))


# ---- headings -------------------------------------------------------------------------------------------

MARKDOWN = """Intro line.

# Guide

Text.

## Setup

Install it.

```
# not a heading
```

## Setup

Again.

Other
-----

Setext body.
"""


def test_markdown_headings_become_sections_with_heading_paths() -> None:
    secs = markdown_sections(MARKDOWN)
    assert secs is not None
    assert [(s.id, s.path) for s in secs] == [
        ("preamble", ()),
        ("guide", ("Guide",)),
        ("setup", ("Guide", "Setup")),
        ("setup-1", ("Guide", "Setup")),
        ("other", ("Guide", "Other")),
    ]
    texts = [MARKDOWN[s.start : s.end] for s in secs]
    assert texts[0] == "Intro line."
    assert texts[2] == "## Setup\n\nInstall it.\n\n```\n# not a heading\n```"  # the fenced '#' is code, not a heading
    assert texts[4] == "Other\n-----\n\nSetext body."
    assert markdown_sections("no headings here\n\njust text") is None


def test_html_headings_become_sections_and_hidden_ones_are_skipped() -> None:
    from slimvec.ingest.files import _html_to_text

    html = ("<html><head><title>T</title></head><body><p>pre</p><h1>Guide</h1><p>a</p><h2>Setup <b>now</b></h2>"
            "<p>b</p><div hidden><h2>Hidden</h2></div><h3>Deep</h3><p>c</p></body></html>")
    _, text = _html_to_text(html)
    secs = html_sections(html, text)
    assert secs is not None
    assert [(s.id, s.path, text[s.start : s.end]) for s in secs] == [
        ("preamble", (), "pre"),
        ("guide", ("Guide",), "Guide\n\na"),
        ("setup-now", ("Guide", "Setup now"), "Setup now\n\nb"),
        ("deep", ("Guide", "Setup now", "Deep"), "Deep\n\nc"),
    ]


def test_read_file_gives_markdown_and_html_documents_their_sections(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(MARKDOWN, encoding="utf-8")
    (tmp_path / "b.html").write_text("<h1>One</h1><p>x</p><h2>Two</h2><p>y</p>", encoding="utf-8")
    (tmp_path / "c.txt").write_text("# Not markdown\n\ntext", encoding="utf-8")
    md, html, txt = (read_file(tmp_path / n, tmp_path) for n in ("a.md", "b.html", "c.txt"))
    assert md.sections is not None and [s.id for s in md.sections][:2] == ["preamble", "guide"]
    assert html.sections is not None and [s.path for s in html.sections] == [("One",), ("One", "Two")]
    assert txt.sections is None


# ---- contextual prefix ----------------------------------------------------------------------------------


def test_contextual_prefix_is_title_and_heading_path() -> None:
    doc = Document("d", MARKDOWN, "Guide", sections=markdown_sections(MARKDOWN))
    setup = next(s for s in doc.sections if s.id == "setup")
    chunk = Chunk("d", 2, setup.start, setup.end, MARKDOWN[setup.start : setup.end], "setup")
    # The H1 "Guide" is the title: not repeated.
    assert contextual_text(doc, chunk) == f"Guide > Setup\n{chunk.text}"
    bare = Chunk("d", 0, 0, 5, "Intro")
    assert contextual_text(Document("e", "Intro"), bare) == "Intro"
    assert contextual_text(Document("e", "Intro", "Title"), bare) == "Title\nIntro"
    assert chunk_texts([doc], [[chunk]], contextual_prefix=False) == [f"Guide {chunk.text}"]
    assert chunk_texts([doc], [[chunk]], contextual_prefix=True) == [f"Guide > Setup\n{chunk.text}"]


def test_ingest_error_type_is_the_one_read_sources_skips() -> None:
    # Bad sections must surface as IngestError (skippable), not as ValueError from Document (which aborts).
    from slimvec.ingest.tables import record_sections

    with pytest.raises(IngestError, match=r"^f.jsonl:3: sections: "):
        record_sections([{"_id": "a", "start": 0, "end": 99}], "short", "f.jsonl:3")


BLANK_TEXTS = ["   ", "\n\t\n", "\u00a0\u3000", "\r\n"]  # ASCII, tabs and newlines, no-break and ideographic spaces


def _blank_record(doc_id: str, blank: str) -> dict:
    text = "Opening words." + blank + "Closing words."
    cut = len("Opening words.")
    spans = [(0, cut), (cut, cut + len(blank)), (cut + len(blank), len(text))]
    return {"_id": doc_id, "title": "A title", "text": text,
            "sections": [{"_id": f"s{i}", "start": s, "end": e} for i, (s, e) in enumerate(spans)]}


def _blank_document(doc_id: str, blank: str) -> Document:
    rec = _blank_record(doc_id, blank)
    return Document(doc_id, rec["text"], title=rec["title"],
                    sections=tuple(Section(s["_id"], s["start"], s["end"]) for s in rec["sections"]))


def test_a_section_of_only_whitespace_is_reported_by_line_and_skipped(tmp_path: Path) -> None:
    records = [_blank_record(f"d{i}", b) for i, b in enumerate(BLANK_TEXTS)]
    records.append({"_id": "ok", "text": "Opening words. Closing words.",
                    "sections": [{"_id": "s0", "start": 0, "end": 14}, {"_id": "s1", "start": 15, "end": 29}]})
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    errors: list[str] = []
    docs = list(read_sources(path, on_error=lambda e: errors.append(str(e))))
    assert [d.id for d in docs] == ["ok"]
    assert errors == [f"{path}:{i + 1}: sections: 's1': span [14, {14 + len(b)}) holds only whitespace or invisible characters: nothing to embed"
                      for i, b in enumerate(BLANK_TEXTS)]


@pytest.mark.parametrize("blank", BLANK_TEXTS)
def test_add_refuses_a_section_of_only_whitespace_and_stores_nothing(tmp_path: Path, blank: str) -> None:
    from fakes import FakeEncoder

    from slimvec import Collection

    bad = _blank_document("bad", blank)
    good = Document("good", "Some other words.")
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(dim=16)) as col:
        for call in (col.add, col.upsert):
            with pytest.raises(IngestError, match=r"^document 'bad' \(position 1\): sections: 's1': span \[14, "
                                                  rf"{14 + len(blank)}\) holds only whitespace"):
                call([good, bad])
        assert len(col) == 0


def test_documents_coming_back_from_a_store_may_hold_a_blank_section(tmp_path: Path) -> None:
    """Stored before the rule (sessions 9-10): migrate (chunk_and_encode) and import (add_encoded) take them back."""
    from fakes import FakeEncoder

    from slimvec import Collection

    doc = _blank_document("old", "   ")
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(dim=16)) as col:
        chunks, vectors = col.chunk_and_encode([doc])
        assert [c.section_id for c in chunks] == ["s0", "s1", "s2"]
        assert col.add_encoded([doc], chunks, vectors) == 1 and len(col) == 1
