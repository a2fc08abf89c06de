"""Faults fixed in session 21, each with the behaviour it now has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeEncoder
from typer.testing import CliRunner

from slimvec import Collection
from slimvec.cli import app
from slimvec.errors import ConfigError
from slimvec.profiles import profile_from_dict

SRC = Path(__file__).parent.parent / "src"
TESTS = Path(__file__).parent
cli = CliRunner()


# ---- 1: a profile's reranker is checked at create ------------------------------------------------
# A profile whose rerank named a cross-encoder directory that does not exist, or a model no registry knows, made a
# collection whose every search failed ("cross-encoder '/nope': no such directory"). It is refused at create now,
# by names and directories only (no model is loaded), and nothing is left on disk.
def _bad_specs(tmp_path: Path) -> list[tuple[str, str]]:
    empty = tmp_path / "empty-model"
    empty.mkdir(exist_ok=True)
    return [
        (f"cross-encoder:{tmp_path / 'nope'}", "no such directory"),
        ("cross-encoder:nope-model", "neither a registered model"),
        (f"cross-encoder:{empty}", "no config.json"),
        ("bi-encoder:nope-model", "unknown model 'nope-model'"),
        (f"bi-encoder:{tmp_path / 'nope'}", "unknown model"),
    ]


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("given", ["profile", "dict"])
def test_a_profile_reranker_that_cannot_load_is_refused_at_create(tmp_path, case, given):
    spec, needle = _bad_specs(tmp_path)[case]
    fields = {"name": "mine", "rerank": spec}
    profile = profile_from_dict(fields) if given == "profile" else fields
    with pytest.raises(ConfigError) as e:
        Collection.create(tmp_path / "col", profile=profile, encoder=FakeEncoder())
    message = str(e.value)
    assert message.startswith("rerank: ") and needle in message and "\n" not in message
    assert spec.partition(":")[2] in message  # the value is named
    assert not (tmp_path / "col").exists()


def test_cli_index_refuses_a_profile_file_whose_reranker_cannot_load(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"_id": "a", "text": "alpha"}\n', encoding="utf-8")
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"name": "mine", "rerank": f"cross-encoder:{tmp_path / 'nope'}"}), encoding="utf-8")
    res = cli.invoke(app, ["index", str(tmp_path / "docs.jsonl"), "-c", str(tmp_path / "col"), "--profile-file",
                           str(profile), "--model", "wordllama"])
    assert res.exit_code == 2 and "rerank: cross-encoder" in res.output and str(tmp_path / "nope") in res.output
    assert not (tmp_path / "col").exists()


def test_valid_rerankers_still_create_and_load_no_model_at_create(tmp_path):
    model = tmp_path / "ce"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    specs = ["dense", "cross-encoder", "cross-encoder:ms-marco-minilm-l12", "bi-encoder:minilm", f"cross-encoder:{model}",
             "none"]
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from fakes import FakeEncoder\n"
        "from slimvec import Collection, Document\n"
        "from slimvec.profiles import profile_from_dict\n"
        f"for i, spec in enumerate({specs!r}):\n"
        f"    prof = profile_from_dict({{'name': 'p', 'rerank': spec}})\n"
        f"    with Collection.create({str(tmp_path)!r} + f'/c{{i}}', profile=prof, encoder=FakeEncoder()) as col:\n"
        "        col.add([Document('a', 'alpha beta')])\n"
        "        assert col.search('alpha', rerank='none')[0].id == 'a'\n"
        "loaded = sorted(m for m in ('torch', 'onnxruntime', 'sentence_transformers') if m in sys.modules)\n"
        "print('loaded', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "loaded []" in out.stdout
