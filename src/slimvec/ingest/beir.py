"""BEIR dataset folders: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from slimvec.errors import IngestError
from slimvec.ingest.tables import (
    FieldMap,
    Item,
    iter_json_records,
    iter_table,
    record_to_document,
    utf8_lines,
)

# BEIR fixes its field names, so a user's FieldMap for their own tables never applies here.
BEIR_FIELDS = FieldMap()
_QRELS_HEADER = ["query-id", "corpus-id", "score"]


def is_beir_dir(path: Path) -> bool:
    """True for a folder holding a BEIR `corpus.jsonl`."""
    return (path / "corpus.jsonl").is_file()


def iter_corpus(directory: Path) -> Iterator[Item]:
    """The corpus records of a BEIR folder, as `iter_table` yields them."""
    return iter_table(directory / "corpus.jsonl", BEIR_FIELDS)


def load_queries(directory: str | Path) -> dict[str, str]:
    """Query id to query text, from `<directory>/queries.jsonl`."""
    path = _existing_dir(directory) / "queries.jsonl"
    if not path.is_file():
        raise IngestError(f"{path}: no such file or directory")
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, rec in iter_json_records(path):
        if isinstance(rec, IngestError):
            raise rec
        query = record_to_document(rec, BEIR_FIELDS, f"{path}:{lineno}")
        if query.id in queries:
            raise IngestError(
                f"{path}:{lineno}: _id: duplicate id {query.id!r} "
                f"(first seen at {path}:{first_line[query.id]})"
            )
        queries[query.id] = query.text
        first_line[query.id] = lineno
    return queries


def load_qrels(directory: str | Path, split: str) -> dict[str, dict[str, int]]:
    """Query id to {corpus id: relevance}, from `<directory>/qrels/<split>.tsv`."""
    qrels_dir = _existing_dir(directory) / "qrels"
    if not qrels_dir.is_dir():
        raise IngestError(f"{qrels_dir}: no such folder (a BEIR dataset keeps qrels/<split>.tsv)")
    if not split or any(c in split for c in "/\\\x00") or split in (".", ".."):
        raise IngestError(f"split {split!r}: a split is the name of a file in {qrels_dir} (no '/' or '\\')")
    path = qrels_dir / f"{split}.tsv"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in qrels_dir.glob("*.tsv"))) or "none"
        raise IngestError(f"{path}: no such split {split!r}; available splits: {available}")
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for lineno, line in utf8_lines(path):
        if isinstance(line, IngestError):
            raise line
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 3:
            parts = line.split()  # some copies use spaces; ids never contain whitespace
        if lineno == 1 and parts == _QRELS_HEADER:
            continue
        if len(parts) != 3:
            raise IngestError(
                f"{path}:{lineno}: expected 3 tab-separated fields (query-id corpus-id score), "
                f"got {len(parts)}"
            )
        query_id, corpus_id, score = (p.strip() for p in parts)
        if not query_id or not corpus_id:
            raise IngestError(f"{path}:{lineno}: {'query-id' if not query_id else 'corpus-id'}: empty")
        try:
            grade = int(score)
        except ValueError:
            raise IngestError(f"{path}:{lineno}: score: expected an integer, got {score!r}") from None
        judged = qrels.setdefault(query_id, {})
        if judged.get(corpus_id, grade) != grade:  # one of the two grades would be lost without a word
            raise IngestError(f"{path}:{lineno}: query {query_id!r} judges document {corpus_id!r} again with "
                              f"score {grade} (line {first_line[query_id, corpus_id]} gave {judged[corpus_id]})")
        judged[corpus_id] = grade
        first_line.setdefault((query_id, corpus_id), lineno)
    return qrels


def _existing_dir(directory: str | Path) -> Path:
    path = Path(directory)
    if not path.exists():
        raise IngestError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise IngestError(f"{path}: not a folder (expected a BEIR dataset folder)")
    return path
