"""Qdrant export through qdrant-client's local mode (a directory a Qdrant server can also be fed from): one
point per chunk row, id = UUID5 of (document id, chunk number), dot-product distance, the record's fields as
payload with its position in the export (`ORDER`: Qdrant scrolls by point id, and an import must add the records
in the collection's row order, which breaks ties), the export metadata in the Qdrant collection's own metadata
(`KEY`). Exports made before kept it in the payload of a point with a fixed id (`META_ID`) and a zero vector, which
Qdrant searches returned as a hit (score 0, above every document with a negative score) and counted; they still
read."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.errors import ConfigError
from slimvec.interop.rows import ChunkRecord, ExportFormat, from_row, meta_json, to_row

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
    client = qdrant_client.QdrantClient(path=str(path))
    try:
        if client.collection_exists(name):
            raise ConfigError(f"{path}: Qdrant collection {name!r} already exists; exports never overwrite")
        dim = int(meta["dim"])
        client.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT),
                                 metadata={KEY: meta_json(meta)})
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
        return n + len(batch)
    finally:
        client.close()


def read(path: Path, name: str) -> tuple[dict[str, Any], list[ChunkRecord]]:
    """(export metadata, records) of Qdrant collection `name`. Raises ConfigError when it is not an export."""
    import json

    from slimvec.extras import require

    client = require("qdrant_client").QdrantClient(path=str(path))
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
        return meta, [from_row({**p.payload, "vector": np.asarray(p.vector, np.float32)}) for p in points]
    finally:
        client.close()


QDRANT = ExportFormat(write, read)
