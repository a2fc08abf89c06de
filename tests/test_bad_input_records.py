"""Bad input, kind 3: every record checked where it is read.

Generated JSONL and CSV files mix good records with records holding one fault (lone surrogate, NUL,
non-finite number, over-long id, empty text) in a chosen field; every good record must come through
unchanged and in order, every bad one must give exactly one one-line `path:line: field: problem` error,
and `strict` must stop at the first. Files with no text (empty, whitespace, front matter only), HTML in
its declared charset and YAML front matter are generated the same way.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from _bad_input import tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimvec.documents import Document
from slimvec.errors import IngestError
from slimvec.ids import MAX_ID_CHARS
from slimvec.ingest import read_file, read_sources

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_words = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=30).filter(lambda s: s.strip())
_lone = st.integers(0xD800, 0xDFFF).map(chr)

# fault -> (field it lands in, phrase the error must hold)
FAULTS = {
    "surrogate_text": ("text", "lone surrogate"),
    "surrogate_title": ("title", "lone surrogate"),
    "surrogate_id": ("_id", "lone surrogate"),
    "surrogate_meta": ("note", "lone surrogate"),
    "surrogate_meta_key": (ascii("bad\ud800key"), "lone surrogate"),  # escaped: the message must be printable
    "nul_text": ("text", "NUL"),
    "nul_id": ("_id", "NUL"),
    "nul_meta": ("note", "NUL"),
    "nan_meta": ("score", "non-finite"),
    "inf_meta": ("score", "non-finite"),
    "nested_nan": ("m.deep", "non-finite"),
    "long_id": ("_id", f"longer than {MAX_ID_CHARS}"),
    "empty_text": ("text", "empty"),
    "blank_text": ("text", "empty"),
}


@st.composite
def jsonl_records(draw):
    """(records as dicts, expected: one (kind, field, phrase) or None per record)."""
    n = draw(st.integers(1, 12))
    kinds = draw(st.lists(st.sampled_from(["good"] * 3 + sorted(FAULTS)), min_size=n, max_size=n))
    records, expected = [], []
    for i, kind in enumerate(kinds):
        bad = draw(_lone)
        rec = {"_id": f"r{i}", "title": draw(_words), "text": draw(_words), "year": draw(st.integers(1900, 2100))}
        where = draw(st.integers(0, 5))
        if kind == "surrogate_text":
            rec["text"] = rec["text"][:where] + bad + rec["text"][where:]
        elif kind == "surrogate_title":
            rec["title"] = bad + rec["title"]
        elif kind == "surrogate_id":
            rec["_id"] = f"r{i}{bad}"
        elif kind == "surrogate_meta":
            rec["note"] = f"x{bad}"
        elif kind == "surrogate_meta_key":
            rec["bad\ud800key"] = 1
        elif kind == "nul_text":
            rec["text"] = rec["text"][:where] + "\x00" + rec["text"][where:]
        elif kind == "nul_id":
            rec["_id"] = f"r{i}\x00"
        elif kind == "nul_meta":
            rec["note"] = "a\x00b"
        elif kind == "nan_meta":
            rec["score"] = math.nan
        elif kind == "inf_meta":
            rec["score"] = draw(st.sampled_from([math.inf, -math.inf]))
        elif kind == "nested_nan":
            rec["m"] = {"deep": [1.0, math.nan]}
        elif kind == "long_id":
            rec["_id"] = "r" * draw(st.integers(MAX_ID_CHARS + 1, MAX_ID_CHARS + 50)) + str(i)
        elif kind == "empty_text":
            rec["text"] = ""
        elif kind == "blank_text":
            rec["text"] = draw(st.sampled_from([" ", "\n\t ", "\u3000 "]))
        records.append(rec)
        expected.append(None if kind == "good" else (kind, *FAULTS[kind]))
    return records, expected


def _good_document(rec: dict) -> Document:
    meta = {k: v for k, v in rec.items() if k not in ("_id", "title", "text")}
    return Document(rec["_id"], rec["text"], rec["title"], meta)


@SETTINGS
@given(case=jsonl_records())
def test_jsonl_bad_records_are_located_errors_and_the_rest_of_the_file_survives(case) -> None:
    records, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.jsonl"
        # ensure_ascii writes a lone surrogate as a valid JSON escape (\ud83d), NaN/Infinity as JSON extensions
        path.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records), encoding="ascii")
        errors: list[IngestError] = []
        docs = list(read_sources(path, on_error=errors.append))
        assert docs == [_good_document(r) for r, e in zip(records, expected) if e is None]
        bad = [(line, e) for line, e in enumerate(expected, start=1) if e is not None]
        assert len(errors) == len(bad)
        for err, (line, (_, field, phrase)) in zip(errors, bad):
            msg = str(err)
            assert msg.startswith(f"{path}:{line}: {field}: "), msg
            assert phrase in msg and "\n" not in msg
        if bad:
            with pytest.raises(IngestError) as stopped:
                list(read_sources(path, strict=True))
            assert str(stopped.value) == str(errors[0])
        else:
            assert list(read_sources(path, strict=True)) == docs
    tally("3: invalid Unicode, NUL, non-finite, long id, empty text (JSONL)", len(records), len(errors))


@st.composite
def csv_rows(draw):
    n = draw(st.integers(1, 10))
    rows, expected = [], []
    for i in range(n):
        kind = draw(st.sampled_from(["good", "good", "nul_text", "nul_meta", "blank_text", "empty_text", "nan"]))
        row = {"_id": f"c{i}", "title": draw(_words), "text": draw(_words), "score": str(draw(st.integers(0, 99)))}
        if kind == "nul_text":
            row["text"] = "x\x00" + row["text"]
        elif kind == "nul_meta":
            row["note"] = "a\x00b"
        elif kind == "blank_text":
            row["text"] = "   "
        elif kind == "empty_text":
            row["text"] = ""
        elif kind == "nan":
            row["score"] = draw(st.sampled_from(["nan", "inf", "-inf"]))
        rows.append(row)
        field = {"nul_text": "text", "nul_meta": "note", "blank_text": "text", "empty_text": "text",
                 "nan": "score"}.get(kind)
        expected.append(field)
    return rows, expected


@SETTINGS
@given(case=csv_rows())
def test_csv_bad_rows_are_located_errors_and_good_rows_survive(case) -> None:
    rows, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        buf = io.StringIO()
        w = csv.DictWriter(buf, ["_id", "title", "text", "score", "note"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8")
        errors: list[IngestError] = []
        docs = list(read_sources(path, on_error=errors.append))
        good = [r for r, f in zip(rows, expected) if f is None]
        assert [d.id for d in docs] == [r["_id"] for r in good]
        assert [d.text for d in docs] == [r["text"] for r in good]
        # the score column holds non-finite floats in some rows, so pyarrow types it float for all of them
        floaty = any(f == "score" for f in expected)
        for d, r in zip(docs, good):
            assert d.metadata.get("score") == (float(r["score"]) if floaty else int(r["score"]))
            assert "note" not in d.metadata  # empty cells are missing fields
        bad = [(line, f) for line, f in enumerate(expected, start=2) if f is not None]
        assert [str(e).split(": ")[:2] for e in errors] == [[f"{path}:{line}", f] for line, f in bad]
    tally("3: NUL, non-finite, empty text (CSV)", len(rows), len(errors))


@SETTINGS
@given(
    ext=st.sampled_from(["txt", "md", "html"]),
    body=st.sampled_from(["", " ", "\n\n", "\t \r\n", "\u00a0\u2003"]),
    front=st.booleans(),
)
def test_files_without_text_are_reported_not_indexed_on_their_title(ext, body, front) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"Quarterly Invoice.{ext}"
        if ext == "html":
            content = f"<html><head><title>Invoice</title><script>var x=1;</script></head><body>{body}</body></html>"
        else:
            content = ("---\ntitle: Invoice\nyear: 2024\n---\n" if front and ext == "md" else "") + body
        path.write_text(content, encoding="utf-8")
        errors: list[IngestError] = []
        assert list(read_sources([path], on_error=errors.append)) == []
        assert len(errors) == 1
        assert str(errors[0]).startswith(f"{path}: text: no ")
        folder_errors: list[IngestError] = []
        assert list(read_sources([Path(tmp)], on_error=folder_errors.append)) == []
        assert [str(e) for e in folder_errors] == [str(errors[0]).replace(str(path), str(path), 1)]
    tally("3: files with no text (empty, whitespace, front matter only, HTML without visible text)", 1, 1)


_CHARSETS = {
    "iso-8859-1": "àéîõüñç ÀÉÎÕÜ ß £ ¥ plain",
    "windows-1252": "àéî “quotes” – dash € plain",
    "koi8-r": "привет мир Плотность plain",
    "shift_jis": "日本語のテキスト カタカナ plain",
    "iso-8859-7": "ελληνικά κείμενο plain",
}


@SETTINGS
@given(
    charset=st.sampled_from(sorted(_CHARSETS)),
    picks=st.lists(st.integers(0, 200), min_size=1, max_size=40),
    meta_form=st.sampled_from(["<meta charset=\"{}\">", "<meta http-equiv=\"Content-Type\" content=\"text/html; charset={}\">"]),
)
def test_html_is_decoded_with_its_declared_charset(charset, picks, meta_form) -> None:
    alphabet = _CHARSETS[charset]
    words = "".join(alphabet[p % len(alphabet)] for p in picks)
    text = " ".join(words.split()) or "plain"
    html = f"<html><head>{meta_form.format(charset)}<title>T</title></head><body><p>{text}</p></body></html>"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.html"
        path.write_bytes(html.encode(charset))
        assert read_file(path).text == text
    tally("3: HTML in a declared charset (decoded, not refused)", 1, 0)


def test_html_bytes_outside_the_declared_charset_are_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.html"
    path.write_bytes(b'<meta charset="utf-8">\n<p>caf\xe9</p>')
    with pytest.raises(IngestError, match=r"bad\.html:2: invalid UTF-8 at byte 29 \(0xe9\)"):
        read_file(path)
    path.write_bytes(b'<meta charset="no-such-charset"><p>x</p>')
    with pytest.raises(IngestError, match=r"declared charset 'no-such-charset' is unknown"):
        read_file(path)


_yaml_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20),
    st.lists(st.integers(0, 99), max_size=4),
)
_keys = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda k: k not in ("path", "ext", "title"))


@SETTINGS
@given(meta=st.dictionaries(_keys, _yaml_values, max_size=6))
def test_markdown_front_matter_is_yaml_metadata(meta) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "note.md"
        fm = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) if meta else ""
        path.write_text(f"---\n{fm}---\n# Heading\n\nBody text.\n", encoding="utf-8")
        doc = read_file(path)
        assert doc.title == "Heading" and doc.text == "# Heading\n\nBody text.\n"
        assert doc.metadata == {"path": "note.md", "ext": "md", **meta}
    tally("3: YAML front matter (parsed into metadata)", 1, 0)


def test_front_matter_dates_become_iso_text_and_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.md"
    path.write_text("---\npublished: 2024-03-01\ntags:\n  - a\n  - b\n---\nbody\n", encoding="utf-8")
    assert read_file(path).metadata == {"path": "d.md", "ext": "md", "published": "2024-03-01", "tags": ["a", "b"]}
    path.write_text("---\nok: 1\nlist: [a, b\n---\nbody\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"d\.md:\d: front matter: invalid YAML: "):
        read_file(path)
    path.write_text("---\n- just\n- a list\n---\nbody\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"d\.md:2: front matter: expected YAML 'key: value' lines, got list"):
        read_file(path)


def test_a_malformed_csv_header_is_one_located_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    # A bare carriage return inside an unquoted header field: a lone CR ends a line (Excel for Mac's CSV, as pandas
    # reads it: test_s22_break_fixes), so the header is "_id,te" and the text column is missing, said once.
    path.write_bytes(b"_id,te\rxt\n1,a\n")
    errors: list[IngestError] = []
    assert list(read_sources(path, on_error=errors.append)) == []
    assert [str(e) for e in errors] == [f"{path}:1: text: no such column (columns: _id, te)"]
