"""read_sources: dispatch by kind, strict vs. reporting mode, duplicate ids, missing paths."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from slimvec.errors import IngestError
from slimvec.ingest import FieldMap, read_sources


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A folder of files, a BEIR folder, a JSONL, a CSV and a lone Markdown file."""
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("alpha", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.md").write_text("# Bee\nbeta", encoding="utf-8")
    (tmp_path / "docs" / "c.png").write_bytes(b"")
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "corpus.jsonl").write_text(
        '{"_id": "b1", "text": "from beir", "metadata": {}}\n', encoding="utf-8"
    )
    (tmp_path / "t.jsonl").write_text('{"_id": "j1", "text": "from jsonl"}\n', encoding="utf-8")
    (tmp_path / "t.csv").write_text("_id,text\nc1,from csv\n", encoding="utf-8")
    (tmp_path / "lone.md").write_text("lone file", encoding="utf-8")
    return tmp_path


def test_dispatches_each_kind_in_order(mixed: Path) -> None:
    notes: list[str] = []
    paths = [mixed / "docs", mixed / "beir", str(mixed / "t.jsonl"), mixed / "t.csv", mixed / "lone.md"]
    docs = list(read_sources(paths, strict=True, on_skip=notes.append))
    assert [d.id for d in docs] == ["a.txt", "sub/b.md", "b1", "j1", "c1", "lone.md"]
    assert docs[1].title == "Bee"
    assert docs[1].metadata == {"path": "sub/b.md", "ext": "md"}
    assert docs[2].text == "from beir"
    assert notes == [f"{mixed / 'docs'}: skipped 1 file(s) with '.png', e.g. c.png"]


def test_beir_folder_ignores_the_user_field_map(mixed: Path) -> None:
    fields = FieldMap(id_field="docid", text_field="body")
    (mixed / "own.jsonl").write_text('{"docid": "o1", "body": "mine"}\n', encoding="utf-8")
    docs = list(read_sources([mixed / "beir", mixed / "own.jsonl"], fields=fields, strict=True))
    assert [(d.id, d.text) for d in docs] == [("b1", "from beir"), ("o1", "mine")]


def test_nonexistent_path_raises_at_call_even_when_not_strict(mixed: Path) -> None:
    missing = mixed / "nope.jsonl"
    errors: list[IngestError] = []
    with pytest.raises(IngestError) as e:
        read_sources([mixed / "t.jsonl", missing], on_error=errors.append)
    assert str(e.value) == f"{missing}: no such file or directory"
    assert errors == []


def test_unsupported_file_named_directly_raises(mixed: Path) -> None:
    with pytest.raises(IngestError) as e:
        read_sources([mixed / "docs" / "c.png"])
    assert str(e.value).startswith(
        f"{mixed / 'docs' / 'c.png'}: unsupported file type '.png' (supported: .csv, "
    )


def bad_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"_id": "1", "text": "good one"}),
                "{not json",
                json.dumps({"_id": "2"}),
                json.dumps({"text": "no id"}),
                json.dumps({"_id": "3", "text": "good three"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def test_non_strict_reports_errors_and_yields_good_records(tmp_path: Path) -> None:
    path = bad_jsonl(tmp_path)
    (tmp_path / "bad.txt").write_bytes(b"ok\n\x80")
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    errors: list[IngestError] = []
    docs = list(read_sources([path, tmp_path / "bad.txt", tmp_path / "good.txt"], on_error=errors.append))
    assert [d.id for d in docs] == ["1", "3", "good.txt"]
    assert [str(e) for e in errors] == [
        f"{path}:2: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:3: text: missing",
        f"{path}:4: _id: missing",
        f"{tmp_path / 'bad.txt'}:2: invalid UTF-8 at byte 3 (0x80)",
    ]


def test_strict_raises_the_first_error_after_earlier_good_records(tmp_path: Path) -> None:
    path = bad_jsonl(tmp_path)
    seen = []
    with pytest.raises(IngestError) as e:
        for doc in read_sources([path], strict=True):
            seen.append(doc.id)
    assert seen == ["1"]
    assert (
        str(e.value)
        == f"{path}:2: malformed JSON: Expecting property name enclosed in double quotes (column 2)"
    )


def test_default_on_error_logs_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = bad_jsonl(tmp_path)
    with caplog.at_level(logging.WARNING, logger="slimvec.ingest"):
        docs = list(read_sources([path]))
    assert [d.id for d in docs] == ["1", "3"]
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped: {path}:2: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
        f"skipped: {path}:3: text: missing",
        f"skipped: {path}:4: _id: missing",
    ]


def test_duplicate_ids_name_both_locations_and_keep_the_first(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    a.write_text(
        '{"_id": "x", "text": "first"}\n{"_id": "y", "text": "y"}\n{"_id": "x", "text": "again"}\n',
        encoding="utf-8",
    )
    b = tmp_path / "b.csv"
    b.write_text("_id,text\ny,from csv\n", encoding="utf-8")
    errors: list[IngestError] = []
    docs = list(read_sources([a, b], on_error=errors.append))
    assert [(d.id, d.text) for d in docs] == [("x", "first"), ("y", "y")]
    assert [str(e) for e in errors] == [
        f"{a}:3: _id: duplicate id 'x' (first seen at {a}:1)",
        f"{b}:2: _id: duplicate id 'y' (first seen at {a}:2)",
    ]
    with pytest.raises(IngestError, match=r"a\.jsonl:3: _id: duplicate id 'x'"):
        list(read_sources([a, b], strict=True))


def test_duplicate_between_a_file_and_a_table(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.txt").write_text("file", encoding="utf-8")
    table = tmp_path / "t.jsonl"
    table.write_text('{"_id": "note.txt", "text": "record"}\n', encoding="utf-8")
    with pytest.raises(IngestError) as e:
        list(read_sources([tmp_path / "docs", table], strict=True))
    assert (
        str(e.value)
        == f"{table}:1: _id: duplicate id 'note.txt' (first seen at {tmp_path / 'docs' / 'note.txt'})"
    )


def test_duplicate_parquet_row_is_named_by_row_index(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"_id": ["a", "b", "a"], "text": ["1", "2", "3"]}), path)
    with pytest.raises(IngestError) as e:
        list(read_sources([path], strict=True))
    assert str(e.value) == f"{path}:row 2: _id: duplicate id 'a' (first seen at {path}:row 0)"


def test_a_single_path_string_is_accepted(mixed: Path) -> None:
    assert [d.id for d in read_sources(str(mixed / "t.csv"))] == ["c1"]
