"""Bad input, kind 4: typed tables.

Generated CSV columns of integers, decimals, booleans, codes with leading zeros and words, with empty
cells anywhere: every column must come back with the type it was generated with (pyarrow's CSV reader
infers it), empty cells as missing fields, and a field-type map must override the inference (or name the
line and field of a cell that does not convert). On a real SQLite store, a filter whose value type can
never match the stored type must be explained in one line, and one that can match must not be.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from _bad_input import tally
from fakes import FakeEncoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimvec import Collection
from slimvec.documents import Chunk, Document
from slimvec.errors import ConfigError, FilterError, IngestError
from slimvec.ingest import read_sources
from slimvec.store import Store
from slimvec.store.filters import compile_filter, filter_type_mismatch

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# column kind -> (strategy for a cell's value, how the value is written in CSV)
_KINDS = {
    "int": (st.integers(-(10**12), 10**12).filter(lambda v: v == 0 or not str(abs(v)).startswith("0")), str),
    "float": (st.floats(-1e9, 1e9, allow_nan=False).filter(lambda v: not v.is_integer()), repr),
    "bool": (st.booleans(), lambda v: "true" if v else "false"),
    "code": (st.from_regex(r"0[0-9]{2,5}", fullmatch=True), str),  # zip-like codes keep their zero: text
    "word": (st.from_regex(r"[a-z][a-z ]{0,8}[a-z]", fullmatch=True), str),
}
_STORED = {"int": int, "float": float, "bool": bool, "code": str, "word": str}


@st.composite
def typed_table(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=5))
    n = draw(st.integers(1, 15))
    columns = {f"c{j}_{k}": k for j, k in enumerate(kinds)}
    rows = []
    for i in range(n):
        row = {"_id": f"d{i}", "text": f"text of row {i}"}
        for name, kind in columns.items():
            value = None if draw(st.integers(0, 3)) == 0 else draw(_KINDS[kind][0])
            row[name] = value
        rows.append(row)
    return columns, rows


def _write_csv(path: Path, columns: dict[str, str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["_id", "text", *columns])
    for r in rows:
        w.writerow([r["_id"], r["text"], *("" if r[c] is None else _KINDS[k][1](r[c]) for c, k in columns.items())])
    path.write_text(buf.getvalue(), encoding="utf-8")


@SETTINGS
@given(table=typed_table())
def test_csv_columns_get_their_types_and_empty_cells_are_missing(table) -> None:
    columns, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        _write_csv(path, columns, rows)
        errors: list[IngestError] = []
        docs = list(read_sources(path, on_error=errors.append))
    assert errors == []
    assert [d.id for d in docs] == [r["_id"] for r in rows]
    for d, r in zip(docs, rows):
        expected = {c: r[c] for c in columns if r[c] is not None}
        assert d.metadata == expected
        for c, v in d.metadata.items():
            assert type(v) is _STORED[columns[c]], (c, v)
    tally("4: CSV columns typed (int, float, bool, codes, words, empty cells)", len(rows), 0)


@SETTINGS
@given(table=typed_table(), target=st.sampled_from(["str", "float"]))
def test_field_type_map_overrides_the_inference(table, target) -> None:
    columns, rows = table
    numeric = [c for c, k in columns.items() if k in ("int", "float")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        _write_csv(path, columns, rows)
        docs = list(read_sources(path, field_types={c: target for c in numeric}, strict=True))
    for d, r in zip(docs, rows):
        for c in numeric:
            if r[c] is None:
                assert c not in d.metadata
            elif target == "str":
                assert d.metadata[c] == _KINDS[columns[c]][1](r[c])
            else:
                assert d.metadata[c] == float(r[c]) and isinstance(d.metadata[c], float)
    tally("4: field-type overrides", len(rows), 0)


@SETTINGS
@given(table=typed_table())
def test_a_cell_that_does_not_convert_to_the_given_type_names_line_and_field(table) -> None:
    columns, rows = table
    words = [c for c, k in columns.items() if k == "word"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        _write_csv(path, columns, rows)
        errors: list[IngestError] = []
        docs = list(read_sources(path, field_types=[f"{c}=int" for c in words], on_error=errors.append))
    bad_lines = [i + 2 for i, r in enumerate(rows) if any(r[c] is not None for c in words)]
    assert [d.id for d in docs] == [r["_id"] for i, r in enumerate(rows) if i + 2 not in bad_lines]
    assert len(errors) == len(bad_lines)
    for e, line in zip(errors, bad_lines):
        loc, field, problem = str(e).split(": ", 2)
        assert loc == f"{path}:{line}" and field in words and problem.startswith("expected int, got ")
    tally("4: cells that do not convert to the given type", len(rows), len(errors))


def test_field_types_convert_text_values_of_jsonl_and_bad_specs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"_id": "a", "text": "x", "year": "2020", "oa": "true"}\n'
                    '{"_id": "b", "text": "y", "year": "soon"}\n', encoding="utf-8")
    errors: list[IngestError] = []
    docs = list(read_sources(path, field_types=["year=int", "oa=bool"], on_error=errors.append))
    assert [d.metadata for d in docs] == [{"year": 2020, "oa": True}]
    assert [str(e) for e in errors] == [f"{path}:2: year: expected int, got 'soon'"]
    for bad, phrase in ((["year"], "expected FIELD=TYPE"), (["year=date"], "unknown field type 'date'"),
                        ("year=int", "got the string")):
        with pytest.raises(ConfigError, match=phrase):
            read_sources(path, field_types=bad)


# --- filters against stored types -------------------------------------------------------------------------

_values = st.one_of(st.integers(-1000, 1000), st.floats(-1e3, 1e3, allow_nan=False), st.booleans(),
                    st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), st.none())


def _kind(v) -> str:
    return "bool" if isinstance(v, bool) else "null" if v is None else "text" if isinstance(v, str) else "number"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real store whose field `f` holds one kind per generated case: f_number, f_text, f_bool, f_null."""
    path = tmp_path_factory.mktemp("store") / "col"
    s = Store.create(path, {"model": "none", "dim": 2})
    docs = [
        Document("n1", "a", metadata={"f_number": 2020, "f_text": "2020", "f_bool": True, "f_null": None,
                                      "f_list": ["x", "y"]}),
        Document("n2", "b", metadata={"f_number": 1.5, "f_text": "abc", "f_bool": False, "f_null": None,
                                      "f_list": ["z"]}),
    ]
    chunks = [Chunk(d.id, 0, 0, 1, d.text) for d in docs]
    s.commit(docs, chunks, np.zeros((2, 2), dtype=np.float32), replace=False)
    yield s
    s.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["f_number", "f_text", "f_bool", "f_null", "f_list"]),
       op=st.sampled_from(["$eq", "$in", "$gt", "$lte"]), value=_values)
def test_a_filter_that_can_never_match_the_stored_type_says_so(store, field, op, value) -> None:
    if op in ("$gt", "$lte") and (isinstance(value, bool) or value is None):
        return  # refused by compile_filter already (covered in test_filters)
    flt = {field: {op: [value] if op == "$in" else value}}
    stored = {"f_number": "number", "f_text": "text", "f_bool": "bool", "f_null": "null", "f_list": "text"}[field]
    where, params = compile_filter(flt)
    rows = store.filtered_rows(where, params)
    msg = filter_type_mismatch(flt, store.metadata_types)
    if _kind(value) != stored:
        assert len(rows) == 0  # the silent failure this message replaces
        assert msg is not None and msg.startswith(f"filter {field!r}: {op} ") and "can never match" in msg
        assert "\n" not in msg
    else:
        assert msg is None
    tally("4: filters against stored types", 1, int(msg is not None))


def test_filters_on_a_csv_collection_compare_numbers_and_booleans(tmp_path: Path) -> None:
    path = tmp_path / "papers.csv"
    path.write_text("_id,title,text,year,open_access\n"
                    "p1,Bones,Vitamin D and bone health.,2019,true\n"
                    "p2,Sleep,Short sleep and blood pressure.,2021,false\n"
                    "p3,Fibre,Fibre lowers cholesterol.,2023,\n", encoding="utf-8")
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add(read_sources(path, strict=True))
        found = lambda flt: sorted(h.id for h in col.search("health", k=5, filter=flt))
        assert found({"year": {"$gte": 2020}}) == ["p2", "p3"]
        assert found({"open_access": True}) == ["p1"]
        assert found({"open_access": {"$exists": False}}) == ["p3"]
        with pytest.raises(FilterError, match="^filter 'year': \\$eq \"2021\" is text, but 'year' is stored as number"):
            found({"year": "2021"})  # a search says why, instead of matching nothing
        assert filter_type_mismatch({"year": "2021"}, col.store.metadata_types) == (
            "filter 'year': $eq \"2021\" is text, but 'year' is stored as number in this collection, "
            "so it can never match"
        )


def test_a_filter_on_a_field_no_document_has_says_so_and_an_empty_collection_stays_quiet(tmp_path: Path) -> None:
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        assert col.search("health", k=5, filter={"year": 2020}) == []  # nothing stored: nothing to misspell
        col.add([Document("p1", "Vitamin D and bone health.", metadata={"year": 2019, "topic": "bones"}),
                 Document("p2", "Short sleep and blood pressure.", metadata={"year": 2021})])
        with pytest.raises(FilterError, match="^filter 'yeer': no document in this collection has the metadata "
                                              "field 'yeer', so \\$gte 2020 can never match"):
            col.search("health", k=5, filter={"yeer": {"$gte": 2020}})
        with pytest.raises(FilterError, match="^filter 'topc'"):  # in a branch of $or that matched nothing either
            col.search("health", k=5, filter={"$or": [{"topc": "bones"}, {"year": 1999}]})
        # a field only some documents have, and negations of an absent field, are not errors
        assert [h.id for h in col.search("health", k=5, filter={"topic": "bones"})] == ["p1"]
        assert col.search("health", k=5, filter={"topic": "sleep"}) == []
        assert sorted(h.id for h in col.search("health", k=5, filter={"colour": {"$ne": "red"}})) == ["p1", "p2"]
        assert col.search("health", k=5, filter={"$or": [{"colour": "red"}, {"year": 2021}]})[0].id == "p2"
