"""The command line as README describes it, run as a user runs it (a child `python -m slimvec` process).

README: "User errors (...) print one line and exit with status 2", and `slimvec get my-col doc-1` prints
"a stored document". These go through the real entry point, not typer's CliRunner, which bypasses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slimvec import Collection, Document

SRC = Path(__file__).resolve().parents[1] / "src"
TAIL = "zebrafishmarkerword"


def slimvec(*args: object, columns: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "slimvec", *map(str, args)], capture_output=True, text=True,
                          env=env)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(".lock")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def col(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("s26docs") / "col"
    long_text = " ".join(f"Sentence {i} about calcium and bone density." for i in range(60)) + f" {TAIL}."
    with Collection.create(path) as c:
        c.add([Document("long", long_text, title="A long record"),
               Document("short", "Volcanoes emit sulfur dioxide.", title="Volcanoes")])
    return path


def test_get_by_id_prints_the_whole_text(col):
    res = slimvec("get", col, "long")
    assert res.returncode == 0, res.stderr
    assert TAIL in res.stdout  # the last word of a ~2,800-character text: nothing cut
    assert "…" not in res.stdout


def test_listing_still_shows_the_start_of_each_document(col):
    res = slimvec("get", col)
    assert res.returncode == 0, res.stderr
    assert "Sentence 0 about calcium" in res.stdout and TAIL not in res.stdout and "…" in res.stdout


@pytest.mark.parametrize("args, names", [
    (["search", "{col}"], "'query'"),                          # missing argument
    (["search", "{col}", "bones", "-k", "abc"], "'-k'"),        # a value of the wrong type
    (["search", "{col}", "bones", "--bogus"], "--bogus"),       # unknown option
    (["get", "{col}", "--limit", "0"], "'--limit'"),            # out of range
    (["delete", "{col}", "short", "--filter"], "'--filter'"),   # option without its value
    (["serach", "{col}", "bones"], "'serach'"),                 # unknown command
])
def test_usage_errors_are_one_line_with_status_2(col, args, names):
    before = digest(col)
    res = slimvec(*[a.format(col=col) for a in args])
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and names in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert digest(col) == before
    res = slimvec("get", col, "short")
    assert res.returncode == 0 and "Volcanoes" in res.stdout


def test_help_and_bare_command_still_print_help():
    res = slimvec("search", "--help")
    assert res.returncode == 0 and "--min-relevance" in res.stdout
    res = slimvec()
    assert res.returncode == 2 and "Commands" in res.stdout + res.stderr


@pytest.mark.parametrize("command", ["profiles", "models"])
def test_listed_names_are_never_cut_on_an_80_column_terminal(command):
    listed = json.loads(slimvec(command, "--json").stdout)
    names = list(listed) if command == "profiles" else [card["name"] for card in listed]
    assert "pca-half-float8-rescore" in names or "colbert-small-tokens" in names
    res = slimvec(command, columns=80)
    assert res.returncode == 0, res.stderr
    shown = {line.split("│")[1].strip().rstrip(" *") for line in res.stdout.splitlines() if line.startswith("│")}
    assert set(names) <= shown, sorted(set(names) - shown)
