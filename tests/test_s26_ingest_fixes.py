"""Session 26 ingest fixes: each test names the fault it holds fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.documents import Section

SRC = Path(__file__).resolve().parents[1] / "src"


# ---- 1. Parquet nanosecond times, timestamps and durations -----------------------------------------------------

# Only a top-level time64[ns] column kept its nanoseconds: one inside a list, struct or map was cut to
# microseconds ("00:00:01" for 1.000000123 s), and a timestamp[ns] or duration[ns] kept them only through pandas
# (not a slimvec dependency), without which its file could not be read at all.
def test_parquet_nanoseconds_at_any_depth_are_kept(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from slimvec.ingest import read_sources

    sec = 1_000_000_000
    noon = 12 * 3600 * sec
    table = pa.table({
        "_id": ["a", "b"], "text": ["x", "y"],
        "times": pa.array([[noon + 5, noon + 7_000], None], pa.list_(pa.time64("ns"))),
        "when": pa.array([{"at": 86_400 * sec + 1, "n": 1}, {"at": None, "n": 2}],
                         pa.struct([("at", pa.timestamp("ns")), ("n", pa.int64())])),
        "zoned": pa.array([[sec + 42], [-1]], pa.large_list(pa.timestamp("ns", tz="Asia/Kolkata"))),
        "offset": pa.array([30 * 60 * sec + 9, 0], pa.timestamp("ns", tz="-03:00")),
        "lap": pa.array([{"k": 2 * sec + 5}, {}], pa.map_(pa.string(), pa.duration("ns"))),
    })
    pq.write_table(table, tmp_path / "t.parquet")
    got = [d.metadata for d in read_sources([tmp_path / "t.parquet"], strict=True)]
    assert got == [
        {"times": ["12:00:00.000000005", "12:00:00.000007"], "when": {"at": "1970-01-02T00:00:00.000000001", "n": 1},
         "zoned": ["1970-01-01T05:30:01.000000042+05:30"], "offset": "1969-12-31T21:30:00.000000009-03:00",
         "lap": {"k": 2.000000005}},
        {"times": None, "when": {"at": None, "n": 2}, "zoned": ["1970-01-01T05:29:59.999999999+05:30"],
         "offset": "1969-12-31T21:00:00-03:00", "lap": {}},
    ]


_NO_PANDAS = """
import sys
class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pandas":
            raise ImportError("pandas is not installed here")
sys.meta_path.insert(0, NoPandas())
from slimvec.ingest import read_sources
errors = []
docs = list(read_sources([sys.argv[1]], on_error=errors.append))
print(repr(([d.metadata for d in docs], [str(e) for e in errors], "pandas" in sys.modules)))
"""


def test_parquet_nanosecond_timestamps_read_without_pandas(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"_id": ["a"], "text": ["x"],
                             "ts": pa.array([1_600_000_000_000_000_123], pa.timestamp("ns")),
                             "utc": pa.array([1_600_000_000_000_000_123], pa.timestamp("ns", tz="UTC")),
                             "d": pa.array([1_000_000_123], pa.duration("ns"))}), tmp_path / "t.parquet")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", _NO_PANDAS, str(tmp_path / "t.parquet")], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(([{"ts": "2020-09-13T12:26:40.000000123", "utc": "2020-09-13T12:26:40.000000123+00:00",
                                  "d": 1.000000123}], [], False))


def test_parquet_timestamp_in_an_unknown_zone_is_a_one_line_error(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from slimvec.errors import IngestError
    from slimvec.ingest import read_sources

    table = pa.table({"_id": ["a"], "text": ["x"], "ts": pa.array([5], pa.timestamp("ns", tz="UTC"))})
    schema = table.schema.set(2, pa.field("ts", pa.timestamp("ns", tz="Nowhere/Atlantis")))
    pq.write_table(table.cast(schema), tmp_path / "t.parquet")
    with pytest.raises(IngestError, match=r"t\.parquet: .*unknown time zone 'Nowhere/Atlantis'"):
        list(read_sources([tmp_path / "t.parquet"], strict=True))


# ---- 3. Given sections come back as given -------------------------------------------------------------------------

# A section longer than the chunk window was cut into token windows trimmed to their tokens, and `get` rebuilds a
# section from its chunks: a section given as [0, 155) came back as [3, 152) (its edge whitespace lost), so the
# document fetched was not the document stored.
@pytest.mark.parametrize("text, spans", [
    ("   " + "word " * 30 + "  \n\n" + "other " * 20 + "\n  ", [(0, 155), (155, 280)]),
    ("\n\n" + "alpha beta. " * 12 + "\t", [(0, 147)]),
    ("x " * 5 + "  " + "gamma " * 20 + "   " + "end", [(0, 10), (10, 132), (132, 138)]),
])
def test_get_gives_back_long_sections_with_their_spans_as_given(tmp_path, text, spans):
    sections = tuple(Section(f"s{i}", a, b) for i, (a, b) in enumerate(spans))
    assert spans[-1][1] == len(text)
    enc = FakeEncoder(max_tokens=8)
    with Collection.create(tmp_path / "c", encoder=enc, chunk_tokens=8, chunk_overlap=2) as col:
        col.add([Document("d", text, "", {}, sections)])
        got = col.get("d")
        assert [(s.id, s.start, s.end) for s in got.sections] == [(s.id, s.start, s.end) for s in sections]
        calls = enc.calls
        assert col.upsert([Document("d", text, "", {}, sections)]) == 1 and enc.calls == calls  # unchanged
        for h in col.search("gamma word alpha", k=5, unit="section"):
            assert text[h.chunk_start : h.chunk_end].strip()


# ---- 2. HTML text: what is not page text, titles, headings -----------------------------------------------------

# The fallback text of <video>, <audio> and <canvas> (shown only by a browser that cannot play or draw them) was
# indexed as page text and glued to its neighbours ("Your browser videoaudio fallback"); script and style never
# appear, wherever they sit.
@pytest.mark.parametrize("html, text", [
    ("<p>a</p><video src=v.mp4>Your browser does not support video</video><p>b</p>", "a\n\nb"),
    ("<p>a</p><audio><source src=x.ogg>No audio</audio><audio>here</audio>b", "a\n\nb"),
    ("<p>a <canvas>draw fallback</canvas>b</p>", "a b"),
    ("<table><tr><td>a<script>evil()</script></td><td><style>td{}</style>b</td></tr></table>", "a b"),
    ("<p>x</p><svg><title>Logo</title><text>label</text><script>s()</script></svg><noscript>enable JS</noscript>",
     "x"),
    ("<p>see <math><mi>x</mi><mo>+</mo><mn>1</mn></math></p>", "see x+1"),
])
def test_html_drops_media_fallback_and_never_keeps_code(tmp_path, html, text):
    from slimvec.ingest import read_sources

    (tmp_path / "page.html").write_text(f"<html><body>{html}</body></html>", encoding="utf-8")
    assert [d.text for d in read_sources([tmp_path / "page.html"])] == [text]


# An SVG's <title> (a tooltip) was taken as the page's title when the page had none of its own, or came first.
@pytest.mark.parametrize("html, title", [
    ("<body><svg><title>Logo</title></svg><p>text</p></body>", "page"),
    ("<svg><title>Logo</title></svg><title>Real one</title><p>text</p>", "Real one"),
    ("<head><title>Head title</title></head><body><svg><title>Logo</title></svg><p>text</p></body>", "Head title"),
])
def test_html_title_is_never_an_svg_title(tmp_path, html, title):
    from slimvec.ingest import read_sources

    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    assert [d.title for d in read_sources([tmp_path / "page.html"])] == [title]


# A heading with inline markup ("Hello<b>World</b>", shown "HelloWorld") or a <br> (two lines) was looked for in
# the text as "Hello World" / "Two Lines" on one line, not found, and so was no section at all.
def test_html_headings_with_markup_or_line_breaks_are_sections(tmp_path):
    from slimvec.ingest import read_sources

    html = ("<h1>Hello<b>World</b></h1><p>body one</p><h2>Two<br>Lines</h2><p>body two</p>"
            "<h2><span>Q</span>&amp;<i>A</i> <em>time</em></h2><p>body three</p>")
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    [doc] = read_sources([tmp_path / "page.html"])
    assert doc.text == "HelloWorld\n\nbody one\n\nTwo\nLines\n\nbody two\n\nQ&A time\n\nbody three"
    assert [(s.id, doc.text[s.start : s.end], s.path) for s in doc.sections] == [
        ("helloworld", "HelloWorld\n\nbody one", ("HelloWorld",)),
        ("two-lines", "Two\nLines\n\nbody two", ("HelloWorld", "Two Lines")),
        ("qa-time", "Q&A time\n\nbody three", ("HelloWorld", "Q&A time")),
    ]


# ---- 4. Upsert change detection: the same JSON value, keys in any order -------------------------------------------

# The rule, stated in README and `Collection.upsert`: metadata is unchanged when it is the same JSON value with
# every object's keys in any order; the type of a value counts (1, 1.0, true and "1" are four values: `get`,
# `$type` filters and exports tell them apart), and so does the order of a list.
@pytest.mark.parametrize("before, after, same", [
    ({"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": None}}, {"b": {"y": None, "x": [1, {"q": 2, "p": 1}]}, "a": 1},
     True),
    ({"a": 1}, {"a": 1.0}, False),
    ({"a": 1}, {"a": True}, False),
    ({"a": 0}, {"a": False}, False),
    ({"a": 1.0}, {"a": True}, False),
    ({"a": 1}, {"a": "1"}, False),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}, False),
    ({"a": None}, {}, False),
])
def test_upsert_compares_metadata_as_json_values_with_keys_in_any_order(tmp_path, before, after, same):
    enc = FakeEncoder()
    with Collection.create(tmp_path / "c", encoder=enc) as col:
        col.add([Document("d", "some text here", "T", before)])
        calls = enc.calls
        assert col.unchanged([Document("d", "some text here", "T", after)]) == ({"d"} if same else set())
        assert col.upsert([Document("d", "some text here", "T", after)]) == 1
        assert (enc.calls == calls) is same
        assert col.get("d").metadata == (before if same else after)
        assert [type(v) for v in col.get("d").metadata.values()] == [type(v) for v in (before if same else after).values()]


# Front matter timestamps had the same fault: PyYAML cuts a fraction to microseconds, so `2020-01-01
# 12:30:05.123456789` was stored as "2020-01-01T12:30:05.123456".
def test_front_matter_timestamps_keep_every_fraction_digit(tmp_path):
    from slimvec.ingest import read_sources

    (tmp_path / "a.md").write_text(
        "---\nns: 2020-01-01 12:30:05.123456789\nseven: 2001-12-14T21:59:43.1234567Z\n"
        "zeros: 2001-12-14 21:59:43.123456000\nshort: 2001-12-14t21:59:43.10-05:00\n"
        "nested: {at: [2020-01-01T00:00:00.000000001+01:00]}\nday: 2020-01-02\n---\n# T\nbody\n", encoding="utf-8")
    [doc] = read_sources([tmp_path / "a.md"], strict=True)
    assert {k: v for k, v in doc.metadata.items() if k not in ("path", "ext")} == {
        "ns": "2020-01-01T12:30:05.123456789", "seven": "2001-12-14T21:59:43.1234567+00:00",
        "zeros": "2001-12-14T21:59:43.123456", "short": "2001-12-14T21:59:43.100000-05:00",
        "nested": {"at": ["2020-01-01T00:00:00.000000001+01:00"]}, "day": "2020-01-02"}


# ---- 5, 6. Metadata keys and numpy values: one rule for every way in ------------------------------------------------

# The empty key is refused by the same check as the other keys no filter can name, in every reader too, with the
# record (file and line or row) and the field named in one line.
def test_every_reader_refuses_an_empty_metadata_key_naming_record_and_field(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import json

    import pyarrow.parquet as pq

    from slimvec.ingest import read_sources

    rows = [{"_id": "ok", "text": "fine"}, {"_id": "a", "text": "x", "": 1},
            {"_id": "b", "text": "x", "metadata": {"": 2}}, {"_id": "c", "text": "x", "m": {"k": {"": 3}}}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pq.write_table(pa.table({"_id": ["p"], "text": ["x"], "": [1]}), tmp_path / "r.parquet")
    (tmp_path / "f.md").write_text('---\n"": 1\n---\nbody\n', encoding="utf-8")
    errors: list = []
    docs = list(read_sources([tmp_path / "r.jsonl", tmp_path / "r.parquet", tmp_path / "f.md"],
                             on_error=errors.append))
    assert [d.id for d in docs] == ["ok"]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'r.jsonl'}:2: '': key: empty, which no filter can name",
        f"{tmp_path / 'r.jsonl'}:3: '': key: empty, which no filter can name",
        f"{tmp_path / 'r.jsonl'}:4: m.k.'': key: empty, which no filter can name",
        f"{tmp_path / 'r.parquet'}:row 0: '': key: empty, which no filter can name",
        f"{tmp_path / 'f.md'}: '': key: empty, which no filter can name",
    ]


# numpy scalars are the values they hold on both sides: stored as Python int/float/bool in metadata, matched as
# those in filters; a NaN or infinity is refused in metadata as a Python float's is.
@pytest.mark.parametrize("value, plain", [("int64", 2021), ("int8", -3), ("uint32", 7), ("float32", 0.5),
                                          ("float16", 1.5), ("float64", 2.25), ("bool_", True), ("bool_", False)])
def test_numpy_scalars_in_metadata_and_filters_are_the_values_they_hold(tmp_path, value, plain):
    import numpy as np

    scalar = getattr(np, value)(plain)
    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as col:
        col.add([Document("d", "hello world", metadata={"v": scalar, "l": [scalar], "o": {"v": scalar}})])
        got = col.get("d").metadata
        assert got == {"v": plain, "l": [plain], "o": {"v": plain}} and type(got["v"]) is type(plain)
        for flt in ({"v": scalar}, {"v": plain}, {"o.v": scalar}, {"v": {"$in": [scalar]}}):
            assert [h.id for h in col.search("hello", filter=flt)] == ["d"], flt


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_numpy_nan_and_infinity_in_metadata_are_refused_as_python_floats_are(tmp_path, bad):
    import numpy as np

    from slimvec.errors import IngestError

    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as col:
        for value in (float(bad), np.float32(bad), np.float64(bad)):
            with pytest.raises(IngestError, match=r"^document 'd' \(position 0\): metadata is not JSON-serialisable: "
                                                  rf"o\.v: non-finite number \({bad}\); nothing from this call was stored$"):
                col.add([Document("d", "hello world", metadata={"o": {"v": value}})])
        assert len(col) == 0
