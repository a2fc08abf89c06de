"""Parquet export (pyarrow): one row per chunk, the export metadata in the file's key-value metadata."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slimvec.errors import ConfigError
from slimvec.interop.rows import ChunkRecord, ExportFormat, from_rows, meta_json, to_row

_KEY = b"slimvec"


def _schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema([("doc_id", pa.string()), ("chunk", pa.int32()), ("start", pa.int64()), ("end", pa.int64()),
                      ("title", pa.string()), ("text", pa.string()), ("document", pa.string()),
                      ("metadata", pa.string()), ("vector", pa.list_(pa.float32(), dim)),
                      ("section_id", pa.string()), ("heading_path", pa.string())])


def write(path: Path, name: str, records: Iterable[ChunkRecord], meta: dict[str, Any]) -> int:
    """Write `records` to the Parquet file `path` (written to a temporary name, then renamed into place)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        raise ConfigError(f"{path}: already exists; exports never overwrite")
    schema = _schema(int(meta["dim"])).with_metadata({_KEY: meta_json(meta).encode()})
    rows = [to_row(r) for r in records]
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return len(rows)


def read(path: Path, name: str) -> tuple[dict[str, Any], list[ChunkRecord]]:
    """(export metadata, records) of a Parquet export. Raises ConfigError when the file is not one."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(_KEY)
    if meta is None:
        raise ConfigError(f"{path}: not a slimvec export (no slimvec metadata in the Parquet file)")
    return json.loads(meta), from_rows((f"row {i}", r) for i, r in enumerate(table.to_pylist()))


PARQUET = ExportFormat(write, read)
