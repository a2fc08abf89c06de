"""Qdrant export through qdrant-client's local mode (a directory a Qdrant server can also be fed from): one
point per chunk row, id = UUID5 of (document id, chunk number), dot-product distance, the record's fields as
payload with its position in the export (`ORDER`: Qdrant scrolls by point id, and an import must add the records
in the collection's row order, which breaks ties), the export metadata in the Qdrant collection's own metadata
(`KEY`). Exports made before kept it in the payload of a point with a fixed id (`META_ID`) and a zero vector, which
Qdrant searches returned as a hit (score 0, above every document with a negative score) and counted; they still
read."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slimvec.errors import ConfigError
from slimvec.interop.rows import ChunkRecord, ExportFormat, from_rows, meta_json, to_row

_NS = uuid.UUID("6f1f3d2e-8a7b-4c1d-9e0f-5a4b3c2d1e0f")
META_ID = str(uuid.uuid5(_NS, "slimvec-export-metadata"))
_BATCH = 256
ORDER = "slimvec_order"  # payload key: the record's position in the export
KEY = "slimvec_export"  # collection metadata key: the export metadata (JSON text)


def point_id(doc_id: str, chunk: int) -> str:
    """The stable Qdrant point id of a chunk (UUID5 of document id and chunk number)."""
    return str(uuid.uuid5(_NS, f"{doc_id}\x1f{chunk}"))


def write(path: Path, name: str, records: Iterable[ChunkRecord], meta: dict[str, Any]) -> int:
    """Create collection `name` in a local Qdrant directory. Raises ConfigError when it exists."""
    from slimvec.extras import require

    qdrant_client = require("qdrant_client")
    models = qdrant_client.models
    new_folder = not path.exists()
    client = _client(path)
    created = failed = False
    try:
        if client.collection_exists(name):
            raise ConfigError(f"{path}: Qdrant collection {name!r} already exists; exports never overwrite")
        dim = int(meta["dim"])
        client.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT))
        created = True
        n, batch = 0, []
        for r in records:
            row = {**to_row(r), ORDER: n + len(batch)}
            vector = row.pop("vector").tolist()
            batch.append(models.PointStruct(id=point_id(r.doc_id, r.chunk), vector=vector, payload=row))
            if len(batch) >= _BATCH:
                client.upsert(name, points=batch)
                n, batch = n + len(batch), []
        if batch:
            client.upsert(name, points=batch)
        # The metadata last: it is what makes the collection an export, so one cut short (a killed process, a full
        # disk before the clean-up below) is refused by `read` rather than imported as if it held every record.
        client.update_collection(name, metadata={KEY: meta_json(meta)})
        return n + len(batch)
    except BaseException:
        if created:  # a part would block the rerun ("already exists") and hold the space
            try:
                client.delete_collection(name)
            except Exception:  # noqa: BLE001 - the write's own error is the one to report
                pass
        failed = True
        raise
    finally:
        client.close()
        if failed and new_folder:  # made by this export: nothing of it is left
            shutil.rmtree(path, ignore_errors=True)


def read(path: Path, name: str) -> tuple[dict[str, Any], list[ChunkRecord]]:
    """(export metadata, records) of Qdrant collection `name`. Raises ConfigError when it is not an export."""
    import json

    from slimvec.extras import require

    require("qdrant_client")
    if not path.is_dir():  # qdrant-client would make the folder, leaving one behind for a mistyped path
        raise ConfigError(f"{path}: no such folder" if not path.exists() else f"{path}: not a folder")
    client = _client(path)
    try:
        if not client.collection_exists(name):
            raise ConfigError(f"{path}: no Qdrant collection {name!r}")
        text = (client.get_collection(name).config.metadata or {}).get(KEY)
        if text is None:  # an export made before the metadata moved to the collection
            found = client.retrieve(name, ids=[META_ID], with_payload=True)
            if not found:
                raise ConfigError(f"{path}: Qdrant collection {name!r} is not a slimvec export")
            text = found[0].payload[KEY]
        meta = json.loads(text)
        points, offset = [], None
        while True:
            page, offset = client.scroll(name, limit=_BATCH, offset=offset, with_payload=True, with_vectors=True)
            points += [p for p in page if str(p.id) != META_ID]
            if offset is None:
                break
        if all(isinstance(p.payload.get(ORDER), int) for p in points):  # exports made before it was carried: as read
            points.sort(key=lambda p: p.payload[ORDER])
        return meta, from_rows((f"point {p.id}", {**p.payload, "vector": p.vector}) for p in points)
    finally:
        client.close()


def _client(path: Path) -> Any:
    """qdrant-client's local mode on `path`. Raises ConfigError when another client (process) has it open: local
    mode takes the folder for one client at a time, and says so in a RuntimeError."""
    from slimvec.extras import require

    try:
        return require("qdrant_client").QdrantClient(path=str(path))
    except RuntimeError as e:
        if "already accessed" not in str(e):
            raise
        raise ConfigError(f"{path}: another process has this Qdrant folder open (local mode allows one client at a "
                          "time); close it and run this again") from None


QDRANT = ExportFormat(write, read)
