"""The command line's hybrid options: --bm25/--sparse indexes, --mode, --min-relevance (real models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimvec import Collection
from slimvec.cli import app
from slimvec.evaluation.calibrate import fit_calibrator

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "corpus.jsonl"
runner = CliRunner()


def run(*args: object) -> tuple[int, str, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def col(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli-hybrid") / "col"
    # WordLlama for the dense part: these tests are about the flags, and SPLADE already runs over every document
    code, out, err = run("index", SAMPLE, "--collection", path, "--bm25", "--sparse", "--model", "wordllama", "--json")
    assert code == 0, err
    return path


def _hits(col: Path, query: str, *extra: object) -> list[dict]:
    code, out, err = run("search", col, query, "-k", "5", "--json", *extra)
    assert code == 0, err
    return json.loads(out)["hits"]


def test_index_flags_keep_the_indexes(col):
    code, out, _ = run("info", col, "--json")
    assert json.loads(out)["retrievers"] == ["dense", "bm25", "sparse"]
    assert (col / "index" / "bm25" / "index.json").exists() and (col / "index" / "sparse" / "index.json").exists()


@pytest.mark.parametrize("mode", ["dense", "bm25", "sparse", "hybrid", "hybrid-sparse"])
def test_every_mode_finds_the_bone_papers(col, mode):
    hits = _hits(col, "vitamin D and bone fractures", "--mode", mode)
    assert len(hits) == 5 and hits[0]["metadata"]["topic"] == "bone"


def test_unknown_mode_and_uncalibrated_cutoff_are_user_errors(col):
    code, _, err = run("search", col, "bone", "--mode", "fuzzy")
    assert code == 2 and "unknown search mode" in err
    code, _, err = run("search", col, "bone", "--mode", "hybrid", "--min-relevance", "0.5")
    assert code == 2 and "no calibration" in err


def test_min_relevance_after_calibration(col):
    docs = [json.loads(line) for line in open(SAMPLE)]
    topics = {"bone": "bone health, vitamin D and fractures", "cancer": "tumour growth and cancer immunity",
              "infection": "bacterial and viral infection", "cardio": "heart disease and blood pressure",
              "neuro": "brain and nervous system disorders"}
    queries = {t: q for t, q in topics.items()}
    qrels = {t: {d["_id"]: int(d["metadata"]["topic"] == t) for d in docs} for t in topics}
    with Collection.open(col) as c:
        fit_calibrator(c, queries, qrels, mode="hybrid", depth=15)
    everything = _hits(col, topics["bone"], "--mode", "hybrid")
    kept = _hits(col, topics["bone"], "--mode", "hybrid", "--min-relevance", "0.5")
    assert all("relevance" in h for h in everything)
    assert [h["id"] for h in kept] == [h["id"] for h in everything if h["relevance"] >= 0.5]


def test_sparse_model_flag_names_a_bad_directory(col, tmp_path):
    code, out, err = run("index", SAMPLE, "--collection", col, "--sparse-model", tmp_path / "nope")
    assert code == 2 and "nope" in err and "not a local SPLADE model" in err
    code, out, err = run("index", SAMPLE, "--collection", col, "--sparse-model", "splade-tiny", "--json")
    assert code == 0, err  # the model the collection already keeps: accepted, nothing rebuilt


def test_weighted_fusion_flags(col):
    rrf = _hits(col, "vitamin D and bone fractures", "--mode", "hybrid", "--fusion", "rrf")
    weighted = _hits(col, "vitamin D and bone fractures", "--mode", "hybrid", "--fusion", "weighted", "--weights", "0,1")
    bm25 = _hits(col, "vitamin D and bone fractures", "--mode", "bm25")
    assert [h["id"] for h in weighted] == [h["id"] for h in bm25]  # all the weight on BM25: its order
    assert max(h["score"] for h in rrf) < 2 / 60 < max(h["score"] for h in weighted)
    code, out, err = run("search", col, "bones", "--mode", "hybrid", "--fusion", "weighted", "--weights", "a,b")
    assert code == 2 and "--weights" in err
