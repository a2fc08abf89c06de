"""Moving a collection to and from the stores users already have: Qdrant (local path), LanceDB and Parquet.

Every target holds the same thing: one record per alive chunk row, with the document id, chunk number and
character span, the chunk text, the document's title and metadata, the whole document text on its first chunk,
and the float32 vector (`rows.ChunkRecord`). `export_collection(col, "qdrant:PATH")` writes them;
`read_records("lancedb:PATH")` reads them back and `import_records` builds a slimvec collection from them
without re-encoding (same model). Multi-vector token vectors and sparse indexes are not carried: they are
rebuilt (BM25) or refused (tokens) on import.
"""

from slimvec.interop.rows import ChunkRecord, export_collection, import_records, parse_target, read_records

__all__ = ["ChunkRecord", "export_collection", "import_records", "parse_target", "read_records"]
