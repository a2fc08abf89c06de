"""The router manifest of a sharded collection and the routing rule (document id -> shard).

A sharded collection is a directory holding `shards.json` (format version, shard directories, routing rule,
the shared profile and model) and one ordinary slimvec collection per shard under `shards/NNN/`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from slimvec.atomic import write_json_atomic
from slimvec.errors import CollectionError
from slimvec.store.store import model_weight_problem

ROUTER_FILE = "shards.json"
FORMAT_VERSION = 1
ROUTING = "blake2b-64-mod"  # the only rule so far: see `shard_of`


def shard_of(doc_id: str, shards: int) -> int:
    """The shard (0 <= s < shards) that owns `doc_id`: the first 8 bytes of BLAKE2b(UTF-8 id), big-endian, mod
    `shards`. Stable across processes, machines and Python versions (unlike the salted built-in `hash`)."""
    # surrogatepass: an id no shard can hold (a lone surrogate) still has an owner to be asked, and answers "not
    # stored" as one collection does; every storable id encodes to the same bytes either way
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_dirs(shards: int) -> list[str]:
    """Shard directories relative to the router directory: shards/000, shards/001, ..."""
    return [f"shards/{i:03d}" for i in range(shards)]


def is_sharded(path: str | Path) -> bool:
    """Whether `path` holds a sharded collection's router manifest."""
    return (Path(path) / ROUTER_FILE).is_file()


def write_router(path: Path, manifest: dict[str, Any]) -> None:
    """Write the router manifest atomically (temp file, fsync, rename)."""
    write_json_atomic(path / ROUTER_FILE, manifest)


def read_router(path: Path) -> dict[str, Any]:
    """The router manifest of `path`. Raises CollectionError naming the file and the problem."""
    f = path / ROUTER_FILE
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CollectionError(f"{path}: no sharded collection here ({ROUTER_FILE} missing)") from None
    except json.JSONDecodeError as e:
        raise CollectionError(f"{f}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if m.get("format_version") != FORMAT_VERSION:
        raise CollectionError(f"{f}: format version {m.get('format_version')!r} unknown to this slimvec "
                              f"(it reads {FORMAT_VERSION})")
    if m.get("routing") != ROUTING:
        raise CollectionError(f"{f}: routing rule {m.get('routing')!r} unknown (this slimvec routes by {ROUTING})")
    shards = m.get("shards")
    if not isinstance(shards, list) or not shards or not all(isinstance(s, str) for s in shards):
        raise CollectionError(f"{f}: field 'shards' must be a non-empty list of shard directories")
    if problem := model_weight_problem(m):  # the router plans every search with it
        raise CollectionError(f"{f}: {problem}")
    return m
