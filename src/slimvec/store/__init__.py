"""Persistence: the SQLite + vector-file store, the metadata filter compiler and the row-to-document map.

All SQL of slimvec lives in this package.
"""

from slimvec.store.store import DB, FORMAT, FORMAT_VERSION, MANIFEST, VECTORS, Store, StoredChunk

__all__ = ["DB", "FORMAT", "FORMAT_VERSION", "MANIFEST", "VECTORS", "Store", "StoredChunk"]
