"""Checks `eval`, `sweep` and `plan` run on their inputs before any encoding, so a bad dataset or option
fails in one line at once instead of after the corpus has been embedded and searched.

What is checked: the dataset folder and split exist; every judged query has a text (`queries.jsonl`);
query ids and judged doc ids obey the id rule (`slimvec.ids`); query texts can be encoded (no lone
surrogate, NUL, or empty text); profile names can name a run file; and, when a collection still has
to be built, every corpus record reads exactly as the build will read it (strict: the first bad record
stops the run, naming file, line and field) and some document judged relevant is in the corpus.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from slimvec.documents import has_content
from slimvec.errors import ConfigError, IngestError
from slimvec.evaluation.datasets import BeirDataset, Qrels, load_dataset
from slimvec.ids import id_problem
from slimvec.ingest import read_sources
from slimvec.ingest.files import file_identity
from slimvec.profiles import Profile
from slimvec.records import text_problem


def check_eval_inputs(
    dataset_dir: str | os.PathLike[str],
    profiles: Sequence[Profile],
    split: str = "test",
    max_queries: int | None = None,
    corpus: bool = True,
    corpus_path: Path | None = None,
    unit: str = "document",
) -> BeirDataset:
    """The opened dataset once every input of an evaluation is checked; IngestError or ConfigError otherwise.

    `corpus=False` skips reading the corpus (when every collection is already built, nothing reads it);
    `corpus_path`: the file or folder indexed instead of the dataset's corpus.jsonl; `unit`: what the qrels judge
    ("document" ids are checked against the corpus; "section" ids are the records' sections').
    """
    if max_queries is not None and max_queries < 1:
        raise ConfigError(f"--max-queries must be at least 1, got {max_queries}")
    for p in profiles:
        if not p.name or "/" in p.name or "\x00" in p.name or p.name in (".", ".."):
            raise ConfigError(f"profile name {p.name!r} cannot name a run file (empty, '/', NUL, '.' or '..')")
    ds = load_dataset(dataset_dir)
    _, qrels = check_judged(ds, split, "evaluate")
    relevant = {doc_id for docs in qrels.values() for doc_id, rel in docs.items() if rel > 0}
    qrels_path = ds.qrels_dir / f"{split}.tsv"
    if corpus:
        source = corpus_path or ds.corpus_path
        ids = {doc.id for doc in read_sources([corpus_source(ds, corpus_path)], strict=True)}
        if not ids:
            raise IngestError(f"{source}: no documents")
        # Judgements of another dataset (or another id scheme) score every query 0 without a word otherwise.
        if unit == "document" and relevant.isdisjoint(ids):
            raise IngestError(f"{qrels_path}: none of the {len(relevant):,} documents judged relevant is in {source} "
                              "(judgements of another corpus, or of sections: --unit section?): every score would "
                              "be 0")
    return ds


def check_judged(ds: BeirDataset, split: str, purpose: str = "evaluate") -> tuple[dict[str, str], Qrels]:
    """(queries, qrels) of `split` once they can label a run: some judgement, some document judged relevant, ids
    obeying the id rule, every judged query a text that can be searched; IngestError naming the file and query
    otherwise. `purpose` names the work in the message ("evaluate", "calibrate on")."""
    qrels = ds.qrels(split)
    qrels_path = ds.qrels_dir / f"{split}.tsv"
    if not qrels:
        raise IngestError(f"{qrels_path}: no judgements (the file is empty or holds only a header): nothing to "
                          f"{purpose}")
    queries = ds.queries(split)
    for qid, docs in qrels.items():
        if problem := id_problem(qid):
            raise IngestError(f"{qrels_path}: query-id {qid!r}: {problem}")
        for doc_id in docs:
            if problem := id_problem(doc_id):
                raise IngestError(f"{qrels_path}: corpus-id {doc_id!r} (query {qid!r}): {problem}")
    queries_path = ds.path / "queries.jsonl"
    for qid, text in queries.items():
        problem = text_problem(text) or (None if has_content(text) else "empty (or only invisible characters)")
        if problem:
            raise IngestError(f"{queries_path}: query {qid!r}: text: {problem}")
    # Grades of 0 (or below) only: every metric is 0 for any ranking, a result that reads as a model's failure.
    if not any(rel > 0 for docs in qrels.values() for rel in docs.values()):
        raise IngestError(f"{qrels_path}: no judgement marks a document relevant (every score is 0 or below): "
                          f"no ranking can find a relevant document (every metric 0); nothing to {purpose}")
    return queries, qrels


def corpus_source(ds: BeirDataset, corpus_path: Path | None) -> Path:
    """What an evaluation indexes: `corpus_path` when given, else the dataset's folder, read as `slimvec index` reads
    a BEIR folder (its corpus.jsonl named as a plain table refused the title-only records BEIR corpora hold), also
    when `corpus_path` names that file (by any path: a dataset whose corpus.jsonl is a link, as git-annex and DVC
    keep files, was told apart by its resolved path and read as a plain table)."""
    if corpus_path is None or file_identity(corpus_path) == file_identity(ds.corpus_path):
        return ds.path
    return corpus_path


def needs_build(path: Path) -> bool:
    """True when the collection at `path` has not been built to completion (see `runner.build`)."""
    return not (path / "build.json").exists()
