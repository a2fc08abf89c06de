"""The data half of compaction: a collection's stored documents and live chunk rows copied into a new store.

Deleted and replaced documents leave their chunk rows dead in the vector file (rows are never reused, so a
commit stays an append). Compaction copies what is alive into a fresh directory: documents in insertion order
with their ids, texts and metadata; chunk rows renumbered 0..n-1 in their old order, so every tie between
rows still breaks the same way (`slimvec.scoring`); their float32 vectors, checksummed per block of rows. The
derived files (codes, lists, BM25, token files) are the business of the layers above (`slimvec.compaction`).
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from slimvec.store.store import DB, VECTORS, Store, field_index_paths
from slimvec.store.switch import KEEP

BLOCK = 65536  # vector rows copied, and checksummed in `batches`, per step

# What compaction writes itself in the new generation; everything else at the top of the collection
# directory (calibration.json, an evaluation's build.json...) is copied as it is.
WRITTEN = (DB, f"{DB}-wal", f"{DB}-shm", "manifest.json", "vectors", "tokens", "index")


def live_rows(store: Store) -> np.ndarray:
    """(n,) int64 ascending: the chunk rows of stored documents, i.e. the old row of each compacted row."""
    return np.sort(store.alive_rows())


def copy_live(store: Store, dest: Path, keep: np.ndarray, rows: int) -> Store:
    """Create at `dest` (absent or empty) a store with `store`'s documents and live chunk rows only.

    keep: `live_rows(store)` and rows: the committed rows it was taken from, both read under the same writer
    lock: new row i is old row keep[i]. The new store's state is rows = n, dead = 0 and generation = the old
    generation + 1; its field indexes are the old ones. The old database is read through the new store's own
    connection (attached), never through `store.db`: searches through the same handle use that connection
    meanwhile, and a sqlite3 connection must not be used by two threads at once. The caller holds `store`'s
    writer lock. Returns the new store (open). Raises OSError / sqlite3.Error on a failed write (dest is then
    the caller's to remove).
    """
    new = Store.create(Path(dest), store.manifest)
    cur = new.db.cursor()
    cur.execute("ATTACH DATABASE ? AS old", (str(store.path / DB),))
    try:
        (generation,) = cur.execute("SELECT value FROM old.state WHERE key = 'generation'").fetchone()
        if indexed := field_index_paths(cur, "old"):  # before the documents: their triggers fill the new terms
            new.create_field_index(sorted(indexed))
        crcs = _copy_vectors(store, new, keep, rows)
        with new._transaction() as tx:
            tx.execute("INSERT INTO documents (id, title, text, metadata) "
                       "SELECT id, title, text, metadata FROM old.documents ORDER BY rowid")
            tx.execute("INSERT INTO chunks (row, doc_id, idx, start, end, section_id, heading_path) "
                       "SELECT ROW_NUMBER() OVER (ORDER BY row) - 1, doc_id, idx, start, end, section_id, "
                       "heading_path FROM old.chunks ORDER BY row")
            tx.executemany("INSERT INTO batches VALUES (?, ?, ?)", crcs)
            tx.execute("UPDATE state SET value = ? WHERE key = 'rows'", (len(keep),))
            tx.execute("UPDATE state SET value = ? WHERE key = 'generation'", (int(generation) + 1,))
    finally:
        cur.execute("DETACH DATABASE old")
    return new


def _copy_vectors(store: Store, new: Store, keep: np.ndarray, rows: int) -> list[tuple[int, int, int]]:
    """Write the kept float32 rows (of the first `rows`) to the new vector file (fsynced); returns its
    `batches` rows."""
    crcs: list[tuple[int, int, int]] = []
    if not store.dim:
        return crcs
    old = store.vectors(rows)
    with open(new.path / VECTORS, "wb") as f:
        for s in range(0, len(keep), BLOCK):
            block = np.ascontiguousarray(old[keep[s : s + BLOCK]], dtype=np.float32).tobytes()
            f.write(block)
            crcs.append((s, min(s + BLOCK, len(keep)), zlib.crc32(block)))
        f.flush()
        os.fsync(f.fileno())
    return crcs


def copy_other_files(src: Path, dest: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy every top-level file and folder of collection `src` that compaction does not write itself (nor
    the lock files, nor the names in `skip`) into `dest`."""
    for p in Path(src).iterdir():
        if p.name in WRITTEN or p.name in KEEP or p.name in skip or p.name.startswith(".done-"):
            continue
        if p.is_dir():
            shutil.copytree(p, Path(dest) / p.name)
        else:
            shutil.copy2(p, Path(dest) / p.name)
