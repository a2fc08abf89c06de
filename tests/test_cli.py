"""The command line end to end on the bundled sample corpus, with the real default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimvec.cli import app

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "corpus.jsonl"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def sample_col(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "col"
    code, out, err = run("index", SAMPLE, "--collection", path, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["indexed"] == summary["documents"] == sum(1 for _ in open(SAMPLE))
    return path


def test_search_json_shape(sample_col):
    code, out, _ = run("search", sample_col, "vitamin D and bone fractures", "-k", "3", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["query"] == "vitamin D and bone fractures"
    assert len(data["hits"]) == 3
    ids = {json.loads(line)["_id"] for line in open(SAMPLE)}
    for hit in data["hits"]:
        assert {"id", "score", "title", "snippet", "metadata"} <= set(hit)
        assert hit["id"] in ids
    assert data["hits"][0]["metadata"]["topic"] == "bone"


def test_search_with_filter(sample_col):
    code, out, _ = run("search", sample_col, "immune evasion", "-k", "5", "--filter", '{"topic": "cancer"}', "--json")
    assert code == 0
    hits = json.loads(out)["hits"]
    assert hits and all(h["metadata"]["topic"] == "cancer" for h in hits)


def test_info_and_delete(sample_col, tmp_path):
    import shutil

    col = tmp_path / "c"
    shutil.copytree(sample_col, col)
    code, out, _ = run("info", col, "--json")
    info = json.loads(out)
    assert code == 0 and info["model"] == "bge-small-en-v1.5" and info["dim"] == 384  # the default model
    assert info["ram_bytes_per_doc"] > 0 and info["disk_bytes_per_doc"] > info["ram_bytes_per_doc"]
    first = json.loads(open(SAMPLE).readline())["_id"]
    code, out, _ = run("delete", col, first, "missing-id", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 1, "requested": 2}
    code, out, _ = run("info", col, "--json")
    assert json.loads(out)["documents"] == info["documents"] - 1
    code, out, _ = run("check", col, "--json")
    assert code == 0 and json.loads(out)["ok"] is True


@pytest.mark.parametrize("args,needle", [
    (["search", "{missing}", "q"], "no slimvec collection"),
    (["search", "{col}", "   "], "query is empty"),
    (["search", "{col}", "q", "--filter", "{bad"], "not valid JSON"),
    (["search", "{col}", "q", "--filter", '{"a": {"$near": 1}}'], "unknown operator"),
    (["search", "{col}", "q", "-k", "0"], "k: Input should be greater than or equal to 1"),
    (["index", "{tmp}/nope.jsonl", "--collection", "{tmp}/x"], "no such file"),
    (["index", str(SAMPLE), "--collection", "{col}", "--model", "/nonexistent-model"], "unknown model"),
])
def test_user_errors_are_one_line(sample_col, tmp_path, args, needle):
    subst = {"{missing}": str(tmp_path / "missing"), "{col}": str(sample_col), "{tmp}": str(tmp_path)}
    for key, value in subst.items():
        args = [a.replace(key, value) for a in args]
    code, out, err = run(*args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_records_skipped_and_reported(sample_col, tmp_path):
    import shutil

    col = tmp_path / "c"
    shutil.copytree(sample_col, col)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "good-1", "text": "A fine new document about sleep."}\n{"_id": "x"\n{"_id": "no-text"}\n')
    code, out, err = run("index", bad, "--collection", col, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["indexed"] == 1 and summary["skipped"] == 2
    assert "bad.jsonl:2" in err and "bad.jsonl:3" in err and "text" in err
    code, out, err = run("index", bad, "--collection", col, "--strict")
    assert code == 2 and "bad.jsonl:2" in err
    code, out, _ = run("check", col, "--json")
    assert json.loads(out)["ok"] is True
