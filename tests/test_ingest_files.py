"""Single files and folders: .txt .md .html .pdf into Documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader

from slimvec.errors import IngestError
from slimvec.ingest import read_file
from slimvec.ingest.files import iter_folder


def _pdf_string(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page, a correct xref table, optional /Info title."""
    n = len(pages)
    page_ids = [4 + 2 * i for i in range(n)]
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for pid, text in zip(page_ids, pages, strict=True):
        stream = b"BT /F1 12 Tf 72 720 Td (" + _pdf_string(text) + b") Tj ET"
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (pid + 1)
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info = b""
    if title is not None:
        objs.append(b"<< /Title (" + _pdf_string(title) + b") /Producer (slimvec tests) >>")
        info = b" /Info %d 0 R" % len(objs)
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for num, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, info, xref)
    return out


@pytest.fixture
def write(tmp_path: Path):
    def _write(rel: str, content: str | bytes) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return path

    return _write


def test_txt_keeps_text_and_uses_stem_as_title(write) -> None:
    path = write("notes/plain.txt", "First line.\n\n  Indented second paragraph.\n")
    doc = read_file(path)
    assert doc.id == "plain.txt"
    assert doc.title == "plain"
    assert doc.text == "First line.\n\n  Indented second paragraph.\n"
    assert doc.metadata == {"path": "plain.txt", "ext": "txt"}


def test_id_is_relative_to_root_with_forward_slashes(write, tmp_path: Path) -> None:
    path = write("a/b/c.md", "body")
    doc = read_file(path, root=tmp_path)
    assert doc.id == "a/b/c.md"
    assert doc.metadata["path"] == "a/b/c.md"


def test_markdown_front_matter_becomes_metadata_and_heading_the_title(write) -> None:
    path = write(
        "guide.md",
        "---\n"
        "author: Ada Lovelace\n"
        "year: 2021\n"
        "score: 0.5\n"
        "draft: false\n"
        "tags: [search, 'ram']\n"
        'quoted: "a: b"\n'
        "url: http://x.org/#frag\n"
        "# a comment line\n"
        "---\n"
        "\n"
        "Intro paragraph.\n\n"
        "# The Real Title #\n\n"
        "# Second heading\n",
    )
    doc = read_file(path)
    assert doc.title == "The Real Title"
    assert doc.text == "Intro paragraph.\n\n# The Real Title #\n\n# Second heading\n"
    assert doc.metadata == {
        "path": "guide.md",
        "ext": "md",
        "author": "Ada Lovelace",
        "year": 2021,
        "score": 0.5,
        "draft": False,
        "tags": ["search", "ram"],
        "quoted": "a: b",
        "url": "http://x.org/#frag",
    }


def test_markdown_title_skips_code_fences_and_level_two_headings(write) -> None:
    path = write("fenced.md", "## Not this\n```\n# not a heading\n```\n# Yes This\n")
    assert read_file(path).title == "Yes This"


def test_markdown_without_heading_uses_stem(write) -> None:
    path = write("no-heading.md", "Just text, #not a heading.\n")
    doc = read_file(path)
    assert doc.title == "no-heading"
    assert doc.text == "Just text, #not a heading.\n"


def test_front_matter_title_wins_over_heading(write) -> None:
    path = write("fm.md", "---\ntitle: From Front Matter\n---\n# From Heading\n")
    doc = read_file(path)
    assert doc.title == "From Front Matter"
    assert doc.text == "# From Heading\n"


def test_unclosed_front_matter_is_plain_text(write) -> None:
    text = "---\nkey: value\nno closing line\n"
    doc = read_file(write("rule.md", text))
    assert doc.text == text
    assert doc.metadata == {"path": "rule.md", "ext": "md"}


def test_front_matter_line_without_colon_is_an_error(write) -> None:
    path = write("bad.md", "---\nok: 1\njust words\n---\nbody\n")
    with pytest.raises(IngestError) as e:
        read_file(path)
    assert str(e.value) == f"{path}:3: front matter: invalid YAML: could not find expected ':'"


def test_bom_is_stripped(write) -> None:
    doc = read_file(write("bom.txt", b"\xef\xbb\xbfhello"))
    assert doc.text == "hello"


def test_invalid_utf8_names_file_line_and_byte(write) -> None:
    path = write("latin1.txt", b"line one\nline two caf\xe9\n")
    with pytest.raises(IngestError) as e:
        read_file(path)
    assert str(e.value) == f"{path}:2: invalid UTF-8 at byte 21 (0xe9)"


HTML = """<!DOCTYPE html>
<html><head>
  <title>  Page
     Title </title>
  <style>body { color: red; } .STYLE-TEXT {}</style>
  <script>var secret = "SCRIPT-TEXT";</script>
</head>
<body>
  <!-- COMMENT-TEXT -->
  <h1>Main   heading</h1>
  <p>First   paragraph
     spans lines &amp; has <b>bold</b> text.</p>
  <script>console.log("BODY-SCRIPT-TEXT")</script>
  <noscript>NOSCRIPT-TEXT</noscript>
  <template><p>TEMPLATE-TEXT</p></template>
  <div hidden>HIDDEN-TEXT</div>
  <div>Line one<br>Line two</div>
  <table><tr><td>cell1</td><td>cell2</td></tr></table>
  <ul><li>item a</li><li>item b</li></ul>
</body></html>
"""


def test_html_keeps_visible_text_with_paragraph_breaks(write) -> None:
    doc = read_file(write("site/page.html", HTML))
    assert doc.id == "page.html"
    assert doc.title == "Page Title"
    assert doc.metadata == {"path": "page.html", "ext": "html"}
    assert doc.text == (
        "Main heading\n\n"
        "First paragraph spans lines & has bold text.\n\n"
        "Line one\nLine two\n\n"
        "cell1 cell2\n\n"
        "item a\n\n"
        "item b"
    )
    for hidden in ("SCRIPT", "STYLE", "COMMENT", "NOSCRIPT", "TEMPLATE", "HIDDEN", "secret", "color"):
        assert hidden not in doc.text


def test_htm_without_title_uses_stem(write) -> None:
    doc = read_file(write("bare.htm", "<p>only a paragraph</p>"))
    assert doc.title == "bare"
    assert doc.text == "only a paragraph"
    assert doc.metadata["ext"] == "htm"


def test_pdf_fixture_is_a_valid_pdf(write) -> None:
    path = write("check.pdf", make_pdf(["x"], title="T"))
    reader = PdfReader(path, strict=True)  # strict: a bad xref offset would raise
    assert len(reader.pages) == 1
    assert reader.metadata is not None and reader.metadata.title == "T"


def test_pdf_pages_joined_by_blank_line_and_title_from_metadata(write) -> None:
    path = write(
        "paper.pdf", make_pdf(["Hello from page one.", "Page two (with parens)."], title="A PDF Title")
    )
    doc = read_file(path)
    assert doc.id == "paper.pdf"
    assert doc.title == "A PDF Title"
    assert doc.text == "Hello from page one.\n\nPage two (with parens)."
    assert doc.metadata == {"path": "paper.pdf", "ext": "pdf"}


def test_pdf_without_title_uses_stem(write) -> None:
    doc = read_file(write("untitled.pdf", make_pdf(["Some text."])))
    assert doc.title == "untitled"
    assert doc.text == "Some text."


def test_damaged_pdf_is_an_ingest_error(write) -> None:
    path = write("broken.pdf", b"this is not a pdf at all")
    with pytest.raises(IngestError) as e:
        read_file(path)
    assert str(e.value).startswith(f"{path}: cannot read PDF: ")


def test_unsupported_extension_is_an_error(write) -> None:
    path = write("image.png", b"\x89PNG")
    with pytest.raises(IngestError, match=r"image\.png: unsupported file type '\.png'"):
        read_file(path)


def test_folder_is_recursive_sorted_and_skips_hidden_and_unknown(write, tmp_path: Path) -> None:
    write("b.txt", "b")
    write("a/z.md", "# Z\nz")
    write("a/c.html", "<p>c</p>")
    write("UPPER.TXT", "upper")
    write(".hidden.txt", "no")
    write(".git/config.txt", "no")
    write("sub/.secret/x.md", "no")
    write("one.png", b"")
    write("two.png", b"")
    write("data.jsonl", "{}")
    write("README", "no extension")
    notes: list[str] = []
    items = list(iter_folder(tmp_path, notes.append))
    assert [doc.id for _, doc in items] == ["UPPER.TXT", "a/c.html", "a/z.md", "b.txt"]
    assert [path for path, _ in items] == [
        tmp_path / "UPPER.TXT",
        tmp_path / "a/c.html",
        tmp_path / "a/z.md",
        tmp_path / "b.txt",
    ]
    assert items[2][1].metadata == {"path": "a/z.md", "ext": "md"}
    assert items[0][1].metadata["ext"] == "txt"
    assert notes == [
        f"{tmp_path}: skipped 1 file(s) with no extension, e.g. README",
        (
            f"{tmp_path}: skipped 1 file(s) with '.jsonl', e.g. data.jsonl"
            " (name a table file directly to read its records)"
        ),
        f"{tmp_path}: skipped 2 file(s) with '.png', e.g. one.png",
    ]


def test_folder_yields_errors_in_place_and_keeps_going(write, tmp_path: Path) -> None:
    write("a.txt", "fine")
    bad = write("b.txt", b"\xff")
    write("c.txt", "fine too")
    items = [item for _, item in iter_folder(tmp_path, lambda note: None)]
    assert [getattr(item, "id", None) for item in items] == ["a.txt", None, "c.txt"]
    assert isinstance(items[1], IngestError)
    assert str(items[1]) == f"{bad}:1: invalid UTF-8 at byte 0 (0xff)"
