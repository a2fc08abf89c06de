"""`slimvec migrate` on the command line and migration progress in `info` and the HTTP info endpoint."""

from __future__ import annotations

import json

import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection
from slimvec.cli import app

NEW = "fake-bow-48"
cli = CliRunner()


@pytest.fixture(autouse=True)
def _encoders():
    with registered_encoders(FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=48, name=NEW),
                             FakeEncoder(dim=40, name="fake-bow-other")):
        yield


def _run(*args):
    return cli.invoke(app, [str(a) for a in args])


def test_fit_only_then_status_info_http_then_rerun_finishes(tmp_path, scifact_docs):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(scifact_docs[:80])
    assert _run("migrate", path, "--status", "--json").stdout.strip() == '{\n  "status": "none"\n}'
    res = _run("migrate", path, "--to", NEW, "--fit-only", "--sample", 300, "--json")
    assert res.exit_code == 0, res.output
    started = json.loads(res.stdout)
    assert started["switched"] is False and started["to"] == NEW
    assert {a["adapter"] for a in started["agreement"]} == {"procrustes", "procrustes-ridge"}
    assert len(started["agreement"]) == 7  # procrustes and one procrustes-ridge per ridge of its grid
    status = json.loads(_run("migrate", path, "--status", "--json").stdout)
    native = status["reembedded"]  # the fitting sample's documents, stored in the target at start
    assert 0 < native < 80
    assert status == {"to": NEW, "adapter": started["adapter"], "status": "reembedding", "documents": 80,
                      "reembedded": native, "fraction": round(native / 80, 4)}
    info = json.loads(_run("info", path, "--json").stdout)
    assert info["migration"] == status and info["model"] == "fake-bow"

    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    plain = Collection.open(path / "migration" / "target")  # any collection object: the endpoint reads the files
    plain.path = path  # a server that opened DIR before the migration began holds a plain Collection of it
    with TestClient(create_app({"col": plain}, api_key=None)) as client:
        assert client.get("/api/collections/col").json()["migration"] == status
    plain.close()

    wrong = _run("migrate", path, "--to", "fake-bow-other")
    assert wrong.exit_code == 2 and "under way" in wrong.output
    done = _run("migrate", path, "--to", NEW, "--batch", 16, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["switched"] is True
    assert json.loads(_run("info", path, "--json").stdout)["model"] == NEW
    assert _run("check", path).exit_code == 0


def test_bad_arguments_fail_in_one_line_and_change_nothing(tmp_path, scifact_docs):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(scifact_docs[:30])
    for args, message in ((["--to", NEW, "--adapter", "magic"], "unknown adapter 'magic'"),
                          (["--to", NEW, "--sample", 5], "--sample must be between 20 and 5000"),
                          (["--to", "fake-bow"], "already uses model 'fake-bow'"),
                          (["--to", NEW, "--queries", "both"], "queries must be one of"),
                          (["--to", NEW, "--references", 0], "references must be between 1 and 5000"),
                          ([], "--to MODEL is required")):
        res = _run("migrate", path, *args)
        assert res.exit_code == 2 and message in res.output, res.output
        assert not (path / "migration").exists()


def test_old_model_queries_from_the_command_line(tmp_path, scifact_docs):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(scifact_docs[:60])
        before = [(h.id, h.score) for h in col.search("cells and tumours", k=5)]
    res = _run("migrate", path, "--to", NEW, "--fit-only", "--sample", 40, "--queries", "old-model", "--json")
    assert res.exit_code == 0, res.output
    from slimvec.migrate.state import read_record

    assert read_record(path)["queries"] == "old-model"
    with Collection.open(path) as col:
        during = col.search("cells and tumours", k=5)
    assert len(during) == 5 and {h.id for h in during} & {i for i, _ in before}


def test_references_from_the_command_line(tmp_path, scifact_docs):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(scifact_docs[:60])
    res = _run("migrate", path, "--to", NEW, "--fit-only", "--sample", 40, "--references", 12, "--json")
    assert res.exit_code == 0, res.output
    with Collection.open(path) as col:
        assert len(col.line) == 12
