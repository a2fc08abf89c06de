"""JSONL, CSV and Parquet tables: one Document per record, errors naming file, line and field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimvec.documents import Document
from slimvec.errors import IngestError
from slimvec.ingest import FieldMap
from slimvec.ingest.tables import iter_table


def split(items):
    """(documents, error messages, positions of all items)."""
    docs = [item for _, item in items if isinstance(item, Document)]
    errors = [str(item) for _, item in items if isinstance(item, IngestError)]
    return docs, errors, [pos for pos, _ in items]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- JSONL ------------------------------------------------------------------------------------------------


def test_jsonl_beir_record_with_nested_metadata_merged(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "corpus.jsonl",
        [
            json.dumps(
                {"_id": "d1", "title": "T1", "text": "one", "metadata": {"year": 2020, "tags": ["a"]}}
            ),
            "",
            "   ",
            json.dumps({"_id": 42, "text": "two", "lang": "en", "metadata": {}}),
            json.dumps({"_id": "d3", "title": None, "text": "", "metadata": "not an object"}),
        ],
    )
    docs, errors, positions = split(list(iter_table(path, FieldMap())))
    assert errors == []
    assert positions == [1, 4, 5]
    assert docs == [
        Document(id="d1", text="one", title="T1", metadata={"year": 2020, "tags": ["a"]}),
        Document(id="42", text="two", title="", metadata={"lang": "en"}),
        Document(id="d3", text="", title="", metadata={"metadata": "not an object"}),
    ]


def test_jsonl_key_at_top_level_and_in_nested_metadata_must_agree(tmp_path: Path) -> None:
    # Flattening `metadata` would keep one of two different values without a word (it kept the top one until
    # session 14): the line is refused instead; equal values are one key.
    path = write_lines(
        tmp_path / "c.jsonl", [json.dumps({"_id": "1", "text": "t", "k": "top", "metadata": {"k": "nested"}}),
                               json.dumps({"_id": "2", "text": "t", "k": "same", "metadata": {"k": "same"}})]
    )
    (_, err), (_, doc) = iter_table(path, FieldMap())
    assert isinstance(err, IngestError) and str(err).startswith(f"{path}:1: metadata key 'k' is given twice")
    assert doc.metadata == {"k": "same"}


def test_jsonl_custom_field_map_and_metadata_selection(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "c.jsonl",
        [
            json.dumps(
                {
                    "docid": "x",
                    "headline": "H",
                    "body": "B",
                    "year": 1999,
                    "noise": 1,
                    "metadata": {"lang": "de"},
                }
            ),
        ],
    )
    fields = FieldMap(
        id_field="docid",
        title_field="headline",
        text_field="body",
        metadata_fields=["year", "lang", "absent"],
    )
    ((_, doc),) = iter_table(path, fields)
    assert doc == Document(id="x", text="B", title="H", metadata={"year": 1999, "lang": "de"})


def test_jsonl_bad_records_are_errors_naming_line_and_field(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"_id": "ok1", "text": "fine"}),
            '{"_id": "x", "text": "unterminated}',
            "[1, 2]",
            json.dumps({"text": "no id"}),
            json.dumps({"_id": "y"}),
            json.dumps({"_id": "z", "text": 7}),
            json.dumps({"_id": "w", "text": "t", "title": ["list"]}),
            json.dumps({"_id": 1.5, "text": "t"}),
            json.dumps({"_id": "  ", "text": "t"}),
            json.dumps({"_id": True, "text": "t"}),
            json.dumps({"_id": "ok2", "text": "also fine"}),
        ],
    )
    docs, errors, _ = split(list(iter_table(path, FieldMap())))
    assert [d.id for d in docs] == ["ok1", "ok2"]
    assert errors == [
        f"{path}:2: malformed JSON: Unterminated string starting at (column 22)",
        f"{path}:3: expected a JSON object, got array",
        f"{path}:4: _id: missing",
        f"{path}:5: text: missing",
        f"{path}:6: text: expected a string, got number",
        f"{path}:7: title: expected a string or integer, got array",
        f"{path}:8: _id: expected a string or integer, got number",
        f"{path}:9: _id: empty",
        f"{path}:10: _id: expected a string or integer, got boolean",
    ]


def test_jsonl_invalid_utf8_line_is_an_error_and_reading_continues(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"_id": "a", "text": "x"}\n{"_id": "b", "text": "caf\xe9"}\n{"_id": "c", "text": "y"}\n'
    )
    docs, errors, _ = split(list(iter_table(path, FieldMap())))
    assert [d.id for d in docs] == ["a", "c"]
    # byte offset counts from the start of the file: 3 (BOM) + 26 (line 1) + 25 (up to the bad byte)
    assert errors == [f"{path}:2: invalid UTF-8 at byte 54 (0xe9)"]


# --- CSV --------------------------------------------------------------------------------------------------


def test_csv_rows_become_documents_with_typed_metadata_and_empty_cells_missing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\ufeff_id,title,text,year\n"
        '1,First,"plain text",2001\n'
        "\n"
        '2,Second,"a quoted, multi-line\nfield",2002\n'
        "3,,third,\n",
        encoding="utf-8",
    )
    items = list(iter_table(path, FieldMap()))
    docs, errors, positions = split(items)
    assert errors == []
    assert positions == [2, 4, 6]  # each record is named by the line it starts on
    assert docs == [
        Document(id="1", text="plain text", title="First", metadata={"year": 2001}),
        Document(id="2", text="a quoted, multi-line\nfield", title="Second", metadata={"year": 2002}),
        Document(id="3", text="third", title="", metadata={}),
    ]


def test_csv_missing_column_is_an_error_naming_the_header_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.csv", ["id,title,body", "1,a,b"])
    items = list(iter_table(path, FieldMap()))
    # with the column an export names it by, as a JSONL record's field (test_s22_break3_fixes)
    assert [str(item) for _, item in items] == [f"{path}:1: _id: no such column (columns: id, title, body); the file "
                                                "has column 'id': read it with --id-field id"]
    items = list(iter_table(path, FieldMap(id_field="id")))
    assert [str(item) for _, item in items] == [f"{path}:1: text: no such column (columns: id, title, body); the "
                                                "file has column 'body': read it with --text-field body"]


def test_csv_bad_rows_are_errors_and_good_rows_survive(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.csv", ["_id,text", "1,ok", "2", "3,x,extra", ",no id", "4,fine"])
    docs, errors, _ = split(list(iter_table(path, FieldMap())))
    assert [d.id for d in docs] == ["1", "4"]
    assert errors == [
        f"{path}:3: row has 1 fields, header has 2",
        f"{path}:4: row has 3 fields, header has 2",
        f"{path}:5: _id: empty",
    ]


def test_csv_invalid_utf8_stops_the_file_with_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"_id,text\n1,ok\n2,caf\xe9\n3,never read\n")
    docs, errors, _ = split(list(iter_table(path, FieldMap())))
    assert [d.id for d in docs] == ["1"]
    assert errors == [f"{path}:3: invalid UTF-8 at byte 19 (0xe9)"]


# --- Parquet ----------------------------------------------------------------------------------------------


def test_parquet_rows_become_documents_with_json_ready_metadata(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "_id": pa.array([10, 11, 12], pa.int64()),
            "title": ["A", None, "C"],
            "text": ["alpha", "beta", None],
            "when": [dt.date(2020, 1, 2), dt.date(2021, 3, 4), None],
            "score": [0.5, 1.5, 2.5],
        }
    )
    pq.write_table(table, path)
    docs, errors, positions = split(list(iter_table(path, FieldMap())))
    assert positions == [0, 1, 2]
    assert docs == [
        Document(id="10", text="alpha", title="A", metadata={"when": "2020-01-02", "score": 0.5}),
        Document(id="11", text="beta", title="", metadata={"when": "2021-03-04", "score": 1.5}),
    ]
    assert errors == [f"{path}:row 2: text: missing"]


def test_parquet_metadata_selection_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"doc": ["a"], "body": ["b"], "x": [1], "y": [2]}), path)
    ((_, doc),) = iter_table(path, FieldMap(id_field="doc", text_field="body", metadata_fields=["y"]))
    assert doc == Document(id="a", text="b", title="", metadata={"y": 2})
    ((_, err),) = iter_table(path, FieldMap(id_field="doc"))
    assert str(err) == f"{path}: text: no such column (columns: doc, body, x, y)"


def test_parquet_binary_metadata_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"_id": ["a"], "text": ["b"], "blob": [b"\x00\x01"]}), path)
    ((_, err),) = iter_table(path, FieldMap())
    assert str(err) == f"{path}:row 0: blob: binary values cannot be metadata"


def test_damaged_parquet_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    items = list(iter_table(path, FieldMap()))
    assert len(items) == 1
    pos, err = items[0]
    assert pos is None
    assert str(err).startswith(f"{path}: cannot read Parquet: ")


def test_unknown_table_extension_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not a table file"):
        iter_table(tmp_path / "x.tsv", FieldMap())
