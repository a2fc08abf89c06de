"""Compaction: a collection rewritten without its dead rows, as a new generation swapped in whole.

Deletes and upserts leave chunk rows dead (a commit only appends), still on disk and, for codes and float32
exact search, in RAM. `Collection.compact()` (and `slimvec compact DIR`, and a write that leaves more than the
profile's `compact_threshold` of the rows dead) writes DIR/compaction/target/, an ordinary collection directory
holding only the live rows, while readers keep searching the current files:

- documents, chunks and float32 vectors (`store.compact.copy_live`), rows renumbered in their old order;
- token files byte for byte (`TokenStore.copy_rows`);
- derived indexes cut down rather than rebuilt where a retriever can (`compacted(keep)`: codes and IVF lists
  with the same fitted codec and centroids, SPLADE rows; the BM25 score matrix is kept, its dropped rows
  counted in the statistics until the next add rebuilds it, as without compaction), so results stay identical;
  the others (HNSW graphs) are rebuilt from the new vector file when the staged collection is opened once;
- every other file of DIR (calibration.json, ...) as it is.

Then `store.switch` swaps it in (atomic for readers, rolled forward after a crash). The writer lock is held
throughout, so no commit lands on the old generation meanwhile. A crash before the switch's intent leaves
DIR/compaction/, which the next compaction removes; nothing counts until the switch.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.multivector.retriever import TOKENS_DIR, keeps_tokens
from slimvec.multivector.tokenstore import TokenStore
from slimvec.store import Store
from slimvec.store.compact import copy_live, copy_other_files

STAGE = "compaction"  # DIR/compaction/: the generation being written, gone once switched
TARGET = "target"
DEFAULT_THRESHOLD = 0.3  # dead share of the rows above which a write compacts (profile `compact_threshold`)
DEFAULT_MIN_DEAD = 1000  # and at least this many dead rows (profile `compact_min_dead`), as Qdrant's vacuum


def due(store: Store) -> bool:
    """Whether the profile asks for a compaction now: dead rows above `compact_threshold` of the committed
    rows (None: never automatically) and at least `compact_min_dead` of them."""
    prof = store.manifest.get("profile") or {}
    share = prof.get("compact_threshold", DEFAULT_THRESHOLD)
    dead, rows = store.dead_rows or 0, store.committed_rows
    return share is not None and dead >= int(prof.get("compact_min_dead", DEFAULT_MIN_DEAD)) and dead > share * rows


def reclaimable(store: Store, tokens_disk_bytes: int = 0, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """What `info` shows: {"dead_rows", "dead_share" (of committed rows), "reclaimable_disk_bytes"}: the dead
    rows' share of the row-aligned files (vectors, tokens, index), an estimate before compaction measures it,
    plus all of DIR/compaction/ (a staged generation a killed compaction left, which the next one removes; one
    being written by a compaction running now counts too, though most of it will then replace the current files).
    usage: `store.disk_usage()` when the caller has it (one directory walk for both)."""
    dead, rows = store.dead_rows or 0, store.committed_rows
    share = dead / rows if rows else 0.0
    usage = store.disk_usage() if usage is None else usage
    size = usage.get("vectors", 0) + usage.get("index", 0)
    return {"dead_rows": dead, "dead_share": round(share, 4),
            "reclaimable_disk_bytes": int(round(share * (size + tokens_disk_bytes))) + usage.get(STAGE, 0)}


def write_generation(store: Store, keep: np.ndarray, compacted: Iterable[Any], rows: int) -> Path:
    """Write DIR/compaction/target/ holding `keep`'s rows (see the module doc) and return its path.

    keep: (n,) int64 ascending, the live rows of the first `rows` committed rows; compacted: retrievers already
    cut down to them (their `save` writes the staged index/). The caller holds the writer lock; searches through
    the same handle may go on, so nothing here uses `store.db` (`copy_live`). On error the staging folder is
    removed.
    """
    stage = store.path / STAGE
    shutil.rmtree(stage, ignore_errors=True)  # a compaction killed before its switch: leftovers only
    stage.mkdir()
    target = stage / TARGET
    try:
        new = copy_live(store, target, keep, rows)
        try:
            tokens = store.path / TOKENS_DIR
            # Only where MaxSim reads them: a MUVERA collection without it made before it stopped storing tokens
            # has a token file that no longer grows with the rows: the next compaction drops it.
            if (tokens / "meta.json").is_file() and keeps_tokens(store.manifest):
                TokenStore.open(tokens).copy_rows(target / TOKENS_DIR, keep, rows)
            for retriever in compacted:
                retriever.save(target / "index")
            copy_other_files(store.path, target, skip=(STAGE,))
        finally:
            new.close()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target


def discard(path: Path) -> None:
    """Remove a staged generation that will not be switched in."""
    shutil.rmtree(Path(path) / STAGE, ignore_errors=True)
