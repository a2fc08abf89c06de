"""BEIR dataset folders: split discovery, query filtering by qrels, and errors naming the missing file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slimvec.errors import IngestError
from slimvec.evaluation.datasets import BeirDataset, load_dataset

# Same convention as conftest.py: the shared data folder beside the repository, or $SLIMVEC_DATA.
DATA = Path(os.environ.get("SLIMVEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def test_scifact_test_split_counts() -> None:
    ds = load_dataset(DATA / "scifact")
    assert ds.name == "scifact"
    assert ds.corpus_path == (DATA / "scifact" / "corpus.jsonl").resolve()
    assert ds.splits() == ["test", "train"]
    qrels = ds.qrels("test")
    # Official BEIR numbers (SOURCE.md): 300 test queries, 339 judged pairs, all grade 1.
    assert len(qrels) == 300
    assert sum(len(docs) for docs in qrels.values()) == 339
    assert {g for docs in qrels.values() for g in docs.values()} == {1}
    queries = ds.queries("test")
    # queries.jsonl has 1,109 claims (train + test); only the 300 judged in test are returned.
    assert set(queries) == set(qrels)
    assert all(isinstance(t, str) and t for t in queries.values())


def test_nfcorpus_test_and_dev_counts() -> None:
    ds = load_dataset(DATA / "nfcorpus")
    assert ds.splits() == ["dev", "test", "train"]
    assert len(ds.queries("test")) == 323
    assert len(ds.queries("dev")) == 324
    test_qrels = ds.qrels("test")
    assert sum(len(d) for d in test_qrels.values()) == 12_334
    # Graded relevance survives loading: 576 pairs of grade 2 (SOURCE.md).
    assert sum(g == 2 for d in test_qrels.values() for g in d.values()) == 576


def test_missing_split_is_a_clear_error() -> None:
    ds = load_dataset(DATA / "scifact")
    assert not ds.has_split("dev")
    assert ds.has_split("test")
    with pytest.raises(IngestError, match=r"no 'dev' split.*available splits: test, train"):
        ds.qrels("dev")
    with pytest.raises(IngestError, match="dev"):
        ds.queries("dev")


def test_returned_dicts_are_copies() -> None:
    ds = load_dataset(DATA / "scifact")
    first = ds.qrels("test")
    first.clear()
    assert len(ds.qrels("test")) == 300


def _fake_dataset(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "a"}\n')
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n')
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td1\t1\n")
    return root


def test_load_dataset_names_the_missing_file(tmp_path: Path) -> None:
    root = _fake_dataset(tmp_path / "toy")
    ds = load_dataset(root, name="toy-set")
    assert isinstance(ds, BeirDataset)
    assert ds.name == "toy-set"
    assert ds.queries("test") == {"q2": "second"}

    (root / "queries.jsonl").unlink()
    with pytest.raises(IngestError, match="queries.jsonl"):
        load_dataset(root)
    (root / "corpus.jsonl").unlink()
    with pytest.raises(IngestError, match="corpus.jsonl"):
        load_dataset(root)
    with pytest.raises(IngestError, match="no such folder"):
        load_dataset(tmp_path / "nowhere")


def test_qrels_folder_required(tmp_path: Path) -> None:
    root = _fake_dataset(tmp_path / "toy")
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(IngestError, match=r"qrels.*test.tsv"):
        load_dataset(root)
    (root / "qrels").rmdir()
    with pytest.raises(IngestError, match="qrels"):
        load_dataset(root)


def test_judged_query_missing_from_queries_file(tmp_path: Path) -> None:
    root = _fake_dataset(tmp_path / "toy")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td1\t1\nq7\td1\t1\n")
    with pytest.raises(IngestError, match="'q7'"):
        load_dataset(root).queries("test")
