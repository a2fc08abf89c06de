"""LanceDB export: one table of chunk rows (the columns of `rows.to_row`), the export metadata in a second
table `<name>__slimvec` of one row, so LanceDB users query the vectors with `table.search(v).metric("dot")`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slimvec.errors import ConfigError
from slimvec.interop.rows import ChunkRecord, ExportFormat, from_rows, meta_json, to_row


def write(path: Path, name: str, records: Iterable[ChunkRecord], meta: dict[str, Any]) -> int:
    """Create table `name` in the LanceDB database at `path`. Raises ConfigError when the table exists."""
    import pyarrow as pa

    from slimvec.extras import require
    from slimvec.interop.parquet import _schema

    lancedb = require("lancedb")
    new_folder = not path.exists()
    db = lancedb.connect(str(path))
    if name in _tables(db):
        raise ConfigError(f"{path}: LanceDB table {name!r} already exists; exports never overwrite")
    rows = [to_row(r) for r in records]
    for row in rows:
        row["vector"] = row["vector"].tolist()
    try:
        db.create_table(name, data=pa.Table.from_pylist(rows, schema=_schema(int(meta["dim"]))))
        db.create_table(f"{name}__slimvec", data=[{"meta": meta_json(meta)}])
    except BaseException:
        # A table written in part (a full disk) would block the rerun ("already exists") and hold the space.
        if new_folder:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for table in (name, f"{name}__slimvec"):
                try:
                    db.drop_table(table)
                except Exception:  # noqa: BLE001 - not made, or not droppable: the write's own error is reported
                    pass
        raise
    return len(rows)


def read(path: Path, name: str) -> tuple[dict[str, Any], list[ChunkRecord]]:
    """(export metadata, records) of LanceDB table `name`. Raises ConfigError when it is not an export."""
    from slimvec.extras import require

    lancedb = require("lancedb")
    if not path.is_dir():  # lancedb.connect would make the folder, leaving one behind for a mistyped path
        raise ConfigError(f"{path}: no such folder" if not path.exists() else f"{path}: not a folder")
    db = lancedb.connect(str(path))
    if not {name, f"{name}__slimvec"} <= _tables(db):
        raise ConfigError(f"{path}: no slimvec export table {name!r} in this LanceDB database")
    meta = json.loads(db.open_table(f"{name}__slimvec").to_arrow().to_pylist()[0]["meta"])
    return meta, from_rows((f"row {i}", r) for i, r in enumerate(db.open_table(name).to_arrow().to_pylist()))


def _tables(db: Any) -> set[str]:
    return set(db.list_tables().tables)


LANCEDB = ExportFormat(write, read)
