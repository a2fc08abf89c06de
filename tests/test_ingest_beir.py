"""BEIR folders: corpus via read_sources, queries and qrels; pinned against the real SciFact files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from slimvec.errors import IngestError
from slimvec.ingest import load_qrels, load_queries, read_sources

SCIFACT = Path(os.environ.get("SLIMVEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "scifact"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_scifact_corpus_pins_count_and_first_and_last_records() -> None:
    lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    # Pinned from the data file itself (SOURCE.md: 5,183 docs), not from what the reader returns.
    assert len(lines) == 5183
    assert (first["_id"], last["_id"]) == ("4983", "198309074")
    docs = list(read_sources([SCIFACT], strict=True))
    assert len(docs) == 5183
    assert docs[0].id == "4983"
    assert docs[0].title == first["title"]
    assert docs[0].text == first["text"]
    assert docs[0].metadata == {}  # BEIR's empty `metadata: {}` is merged, not nested
    assert docs[-1].id == "198309074"
    assert docs[-1].text == last["text"]


def test_scifact_queries_and_test_qrels() -> None:
    queries = load_queries(SCIFACT)
    assert len(queries) == 1109
    assert queries["0"] == "0-dimensional biomaterials lack inductive properties."
    qrels = load_qrels(SCIFACT, "test")
    assert len(qrels) == 300
    assert sum(len(docs) for docs in qrels.values()) == 339
    assert qrels["1"] == {"31715818": 1}
    assert set(qrels) <= set(queries)
    assert len(load_qrels(SCIFACT, "train")) == 809


def test_missing_split_lists_available_splits() -> None:
    with pytest.raises(IngestError) as e:
        load_qrels(SCIFACT, "dev")
    assert str(e.value) == f"{SCIFACT}/qrels/dev.tsv: no such split 'dev'; available splits: test, train"


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "", "text": "x", "metadata": {}}\n', encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "what?"}\n\n{"_id": 2, "text": "why?"}\n', encoding="utf-8"
    )
    return tmp_path


def test_small_beir_folder(beir: Path) -> None:
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\r\n2 d1 2\n\n", encoding="utf-8"
    )
    assert load_queries(beir) == {"q1": "what?", "2": "why?"}
    assert load_qrels(beir, "test") == {"q1": {"d1": 1, "d2": 0}, "2": {"d1": 2}}
    assert [d.id for d in read_sources([beir])] == ["d1"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "query-id\tcorpus-id\tscore\nq1\td1\n",
            "2: expected 3 tab-separated fields (query-id corpus-id score), got 2",
        ),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", "2: score: expected an integer, got 'high'"),
        ("q\tc\trel\n", "1: score: expected an integer, got 'rel'"),
        ("query-id\tcorpus-id\tscore\nq1\t\t1\n", "2: corpus-id: empty"),
    ],
)
def test_bad_qrels_lines_name_file_line_and_field(beir: Path, content: str, problem: str) -> None:
    path = beir / "qrels" / "test.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(IngestError) as e:
        load_qrels(beir, "test")
    assert str(e.value) == f"{path}:{problem}"


def test_no_qrels_folder_and_no_splits(beir: Path) -> None:
    with pytest.raises(IngestError) as e:
        load_qrels(beir, "test")
    assert str(e.value) == f"{beir}/qrels/test.tsv: no such split 'test'; available splits: none"
    (beir / "qrels").rmdir()
    with pytest.raises(IngestError) as e:
        load_qrels(beir, "test")
    assert str(e.value).startswith(f"{beir}/qrels: no such folder")


def test_bad_or_duplicate_queries_are_errors(beir: Path) -> None:
    path = beir / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n', encoding="utf-8")
    with pytest.raises(IngestError) as e:
        load_queries(beir)
    assert str(e.value) == f"{path}:2: _id: duplicate id 'q1' (first seen at {path}:1)"
    path.write_text('{"_id": "q1"}\n', encoding="utf-8")
    with pytest.raises(IngestError) as e:
        load_queries(beir)
    assert str(e.value) == f"{path}:1: text: missing"


def test_missing_folder_or_queries_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as e:
        load_queries(tmp_path / "nope")
    assert str(e.value) == f"{tmp_path / 'nope'}: no such file or directory"
    with pytest.raises(IngestError) as e:
        load_queries(tmp_path)
    assert str(e.value) == f"{tmp_path / 'queries.jsonl'}: no such file or directory"
    with pytest.raises(IngestError) as e:
        load_qrels(tmp_path / "nope", "test")
    assert str(e.value) == f"{tmp_path / 'nope'}: no such file or directory"


def test_bundled_sample_corpus_is_unchanged_scifact_with_topics() -> None:
    originals = {}
    for line in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        originals[rec["_id"]] = rec
    docs = list(read_sources([SAMPLES / "corpus.jsonl"], strict=True))
    assert 40 <= len(docs) <= 60
    topics = [d.metadata["topic"] for d in docs]
    assert set(topics) <= {"cancer", "bone", "cardio", "neuro", "infection", "other"}
    assert topics.count("cancer") >= 8 and topics.count("bone") >= 8
    for doc in docs:
        assert set(doc.metadata) == {"topic", "source"} and doc.metadata["source"] == "scifact"
        assert (doc.title, doc.text) == (originals[doc.id]["title"], originals[doc.id]["text"])
