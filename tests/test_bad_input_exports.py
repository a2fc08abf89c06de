"""Damaged or foreign export files: one ConfigError naming the file, never a pyarrow/json traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimvec.errors import ConfigError
from slimvec.interop import read_records
from slimvec.interop.parquet import _KEY, _schema
from slimvec.interop.rows import FORMAT, ChunkRecord, meta_json, to_row

DIM = 4


def _write(path: Path, rows: list[dict], meta: bytes | None, drop: str | None = None) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(DIM)
    table = pa.Table.from_pylist(rows, schema=schema)
    if drop:
        table = table.drop([drop])
    pq.write_table(table.replace_schema_metadata({_KEY: meta} if meta is not None else None), path)
    return f"parquet:{path}"


def _rows() -> list[dict]:
    vec = np.full(DIM, 0.5, np.float32)
    return [to_row(ChunkRecord("d1", 0, 0, 5, "", "hello", "hello", {}, vec))]


GOOD_META = meta_json({"format": FORMAT, "model": "all-MiniLM-L6-v2", "dim": DIM}).encode()


def test_a_well_formed_file_reads(tmp_path: Path) -> None:
    meta, records = read_records(_write(tmp_path / "ok.parquet", _rows(), GOOD_META))
    assert meta["dim"] == DIM and [r.doc_id for r in records] == ["d1"]


@pytest.mark.parametrize("damage", ["not parquet", "truncated"])
def test_a_damaged_file_is_one_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "x.parquet"
    if damage == "not parquet":
        path.write_text("garbage\n")
    else:
        _write(path, _rows(), GOOD_META)
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match=r"x\.parquet: not a readable slimvec export"):
        read_records(f"parquet:{path}")


@pytest.mark.parametrize(("meta", "drop"), [(b"not json", None), (b'{"format": "slimvec-export-1"}', None),
                                            (GOOD_META, "title"), (GOOD_META, "vector")])
def test_foreign_metadata_or_columns_are_one_error(tmp_path: Path, meta: bytes, drop: str | None) -> None:
    with pytest.raises(ConfigError, match="not a readable slimvec export"):
        read_records(_write(tmp_path / "f.parquet", _rows(), meta, drop))


@pytest.mark.parametrize(("section_id", "heading_path"), [("", None), (7, None), ("s", '"Intro"'),
                                                           ("s", '{"a": 1}'), ("s", '["Intro", 2]'), ("s", "[")])
def test_bad_section_fields_are_one_error(tmp_path: Path, section_id, heading_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = {**_rows()[0], "section_id": section_id, "heading_path": heading_path}
    schema = _schema(DIM).set(_schema(DIM).get_field_index("section_id"), pa.field("section_id", pa.string())
                              if isinstance(section_id, str) else pa.field("section_id", pa.int64()))
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=schema).replace_schema_metadata({_KEY: GOOD_META}), path)
    with pytest.raises(ConfigError, match=r"s\.parquet: not a readable slimvec export \((ValueError|JSONDecodeError)"):
        read_records(f"parquet:{path}")


def test_an_empty_document_id_is_refused_not_stored_as_none(tmp_path: Path) -> None:
    rows = _rows()
    rows[0]["doc_id"] = None
    with pytest.raises(ConfigError, match="doc_id None"):
        read_records(_write(tmp_path / "n.parquet", rows, GOOD_META))


@pytest.mark.parametrize("target", ["parquet:{tmp}/no-such-dir/c.parquet", "qdrant:{tmp}/a-file"])
def test_cli_export_to_an_impossible_path_is_one_line(tmp_path: Path, target: str) -> None:
    from fakes import FakeEncoder
    from typer.testing import CliRunner

    from slimvec import Collection, Document
    from slimvec.cli import app

    (tmp_path / "a-file").write_text("not a directory")
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document("d1", "hello world")])
    res = CliRunner().invoke(app, ["export", str(tmp_path / "col"), "--to", target.format(tmp=tmp_path)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "None:" not in lines[0], res.output
    assert str(tmp_path) in lines[0]


def _static_export(path: Path, damage: str) -> str:
    """A two-document Parquet export for the bundled static model (cheap to load), damaged as asked."""
    dim = 256
    vec = np.full(dim, 1 / 16, np.float32)
    recs = [ChunkRecord("a", 0, 0, 5, "", "alpha", "alpha", {}, vec), ChunkRecord("b", 0, 0, 4, "", "beta", "beta", {}, vec)]
    rows = [to_row(r) for r in recs]
    if damage == "nan":
        rows[1]["vector"] = np.full(dim, np.nan, np.float32)
    elif damage == "repeated chunk":
        rows.append(dict(rows[0]))
    elif damage == "metadata not an object":
        rows[1]["metadata"] = "[1, 2]"
    elif damage == "long vector":
        rows[1]["vector"] = vec * 3
    meta = meta_json({"format": FORMAT, "model": "wordllama", "dim": dim}).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=_schema(dim).with_metadata({_KEY: meta})), path)
    return f"parquet:{path}"


@pytest.mark.parametrize("damage", ["nan", "repeated chunk", "metadata not an object", "long vector"])
def test_a_refused_import_leaves_nothing_and_can_be_rerun(tmp_path: Path, damage: str) -> None:
    from slimvec.errors import IngestError
    from slimvec.interop import import_records

    target = tmp_path / "col"
    with pytest.raises(IngestError, match="document 'a'|document 'b'"):
        import_records(_static_export(tmp_path / "bad.parquet", damage), target)
    assert not target.exists()
    with import_records(_static_export(tmp_path / "good.parquet", "none"), target) as col:
        assert len(col) == 2 and col.check() == []


@pytest.mark.parametrize("name", ["bad/name", "a b", "x" * 129])
def test_a_bad_table_name_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    from slimvec.interop.rows import parse_target

    with pytest.raises(ConfigError, match="#NAME may hold only"):
        parse_target(f"lancedb:{tmp_path / 'lance'}#{name}")
    assert parse_target(f"lancedb:{tmp_path / 'lance'}#my_table-1.v2")[2] == "my_table-1.v2"
    assert not (tmp_path / "lance").exists()


def test_an_import_of_non_unit_vectors_is_refused_or_normalised_on_request(tmp_path: Path) -> None:
    from slimvec.errors import IngestError
    from slimvec.interop import import_records

    source = _static_export(tmp_path / "long.parquet", "long vector")
    with pytest.raises(IngestError, match=r"document 'b' chunk 0: the given vector has L2 norm 3, not 1.*--normalize"):
        import_records(source, tmp_path / "refused")
    with import_records(source, tmp_path / "col", normalize=True) as col:
        stored = np.asarray(col.store.vectors(2))
        assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6) and col.check() == []
        assert np.allclose(stored[0], stored[1])  # b's row, 3x a's, became a's direction
