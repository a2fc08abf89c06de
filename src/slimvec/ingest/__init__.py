"""Ingest: turn files, folders, JSONL/CSV/Parquet tables and BEIR datasets into Documents."""

from slimvec.ingest.beir import load_qrels, load_queries
from slimvec.ingest.files import read_file
from slimvec.ingest.sources import read_sources
from slimvec.ingest.tables import FieldMap

__all__ = ["FieldMap", "load_qrels", "load_queries", "read_file", "read_sources"]
