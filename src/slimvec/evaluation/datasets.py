"""BEIR-format evaluation datasets: a folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from slimvec.errors import IngestError
from slimvec.ingest.beir import load_qrels, load_queries

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class BeirDataset:
    """One BEIR dataset on disk; queries and qrels are read on first use and kept."""

    name: str
    path: Path
    corpus_path: Path
    # Parsed files, filled lazily; excluded from equality/hash so two handles on one folder compare equal.
    _cache: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @property
    def qrels_dir(self) -> Path:
        """The folder holding one `<split>.tsv` per split."""
        return self.path / "qrels"

    def splits(self) -> list[str]:
        """Names of the splits that have a qrels file, sorted."""
        return sorted(p.stem for p in self.qrels_dir.glob("*.tsv") if p.is_file())

    def has_split(self, name: str) -> bool:
        """True when `qrels/<name>.tsv` exists."""
        return (self.qrels_dir / f"{name}.tsv").is_file()

    def qrels(self, split: str = "test") -> Qrels:
        """{query id: {doc id: grade}} for `split`; IngestError naming the available splits if missing."""
        if not split or Path(split).name != split:  # "../x" names no split of this dataset
            raise IngestError(f"{self.name}: {split!r} is not a split name (the name of a file in qrels/, without "
                              f".tsv); available splits: {', '.join(self.splits()) or 'none'}")
        if not self.has_split(split):
            available = ", ".join(self.splits()) or "none"
            raise IngestError(
                f"{self.name}: no {split!r} split ({self.qrels_dir / (split + '.tsv')} missing); "
                f"available splits: {available}"
            )
        key = f"qrels:{split}"
        if key not in self._cache:
            self._cache[key] = load_qrels(self.path, split)
        cached: Qrels = self._cache[key]  # type: ignore[assignment]
        return {qid: dict(docs) for qid, docs in cached.items()}  # copies: callers may edit theirs

    def queries(self, split: str = "test") -> dict[str, str]:
        """{query id: text} for the queries judged in `split` (queries.jsonl holds every split's queries)."""
        judged = self.qrels(split)
        if "queries" not in self._cache:
            self._cache["queries"] = load_queries(self.path)
        all_queries: dict[str, str] = self._cache["queries"]  # type: ignore[assignment]
        missing = [qid for qid in judged if qid not in all_queries]
        if missing:
            shown = ", ".join(repr(q) for q in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise IngestError(
                f"{self.path / 'queries.jsonl'}: {len(missing)} queries judged in qrels/{split}.tsv "
                f"are missing: {shown}"
            )
        return {qid: all_queries[qid] for qid in judged}


def load_dataset(path: str | os.PathLike[str], name: str | None = None) -> BeirDataset:
    """Open a BEIR dataset folder, checking its files exist; the name defaults to the folder name."""
    root = Path(path).expanduser()
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise IngestError(f"{root}: {what} (expected a BEIR dataset: corpus.jsonl, queries.jsonl, qrels/)")
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (root / required).is_file():
            raise IngestError(f"{root / required}: missing (a BEIR dataset has corpus.jsonl, queries.jsonl, "
                              "qrels/)")
    qrels_dir = root / "qrels"
    if not qrels_dir.is_dir():
        raise IngestError(f"{qrels_dir}: missing (a BEIR dataset keeps its judgements in qrels/<split>.tsv)")
    if not any(qrels_dir.glob("*.tsv")):
        raise IngestError(f"{qrels_dir}: no <split>.tsv files (e.g. qrels/test.tsv)")
    root = root.resolve()
    return BeirDataset(name=name or root.name, path=root, corpus_path=root / "corpus.jsonl")
