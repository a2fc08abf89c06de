"""Sample queries a user gives in a file (for `slimvec tune`): one per line, a JSONL file, or a BEIR folder."""

from __future__ import annotations

from pathlib import Path

from slimvec.errors import IngestError
from slimvec.ingest.beir import load_qrels, load_queries
from slimvec.ingest.tables import iter_json_records, utf8_lines
from slimvec.records import query_problem


def read_queries(path: Path, split: str | None = None) -> list[str]:
    """Query texts from `path`, in file order:
    - a BEIR folder: its queries.jsonl, or with `split` only the queries judged in qrels/<split>.tsv (tune on
      train or dev queries, report on test);
    - a .jsonl/.json file: each line an object whose "text" field (BEIR's) is a string;
    - any other file: one query per non-blank line (UTF-8).
    Raises IngestError naming the file and line of a bad record, or an empty file."""
    if path.is_dir():
        queries = load_queries(path)
        where = path / "queries.jsonl"
        if not split:
            return [_checked(text, f"{where}: query {qid!r}: text") for qid, text in queries.items()]
        judged = load_qrels(path, split)
        missing = [qid for qid in judged if qid not in queries]
        if missing:
            raise IngestError(f"{where}: query {missing[0]!r} judged in qrels/{split}.tsv is missing")
        if not judged:
            raise IngestError(f"{path / 'qrels' / f'{split}.tsv'}: judges no queries")
        return [_checked(queries[qid], f"{where}: query {qid!r}: text") for qid in judged]
    if split:
        raise IngestError(f"{path}: --split applies to a BEIR folder, not to a file")
    if not path.is_file():
        raise IngestError(f"{path}: no such file or directory")
    texts: list[str] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for lineno, rec in iter_json_records(path):
            if isinstance(rec, IngestError):
                raise rec
            text = rec.get("text")
            if not isinstance(text, str) or not text.strip():
                raise IngestError(f"{path}:{lineno}: text: missing or not a non-empty string")
            texts.append(_checked(text, f"{path}:{lineno}: text"))
    else:
        for lineno, line in utf8_lines(path):
            if isinstance(line, IngestError):
                raise line
            if line.strip():
                texts.append(_checked(line.strip(), f"{path}:{lineno}"))
    if not texts:
        raise IngestError(f"{path}: holds no queries")
    return texts


def _checked(text: str, where: str) -> str:
    """`text`, or IngestError at `where` (file:line) when `Collection.tune` would refuse it (`query_problem`)."""
    if problem := query_problem(text):
        raise IngestError(f"{where}: {problem}")
    return text
