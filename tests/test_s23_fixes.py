"""Session 23 fixes: each test names the fault it holds fixed."""

from __future__ import annotations

import json

import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app

cli = CliRunner()


@pytest.fixture
def fake_bow():
    with registered_encoders(FakeEncoder(dim=32, name="fake-bow")):
        yield


# `slimvec index` exited 0 when every record was refused and nothing was stored, and an empty folder (or an empty
# table) made an empty collection, rc 0, without a word: a CI script could not tell either from a run that worked.
def test_index_that_stores_nothing_after_skipping_exits_1(tmp_path, fake_bow):
    bad, good, empty = tmp_path / "bad.jsonl", tmp_path / "good.jsonl", tmp_path / "empty"
    bad.write_text('{"text": "a b"}\n{"text": "c d"}\n', encoding="utf-8")
    good.write_text('{"_id": "1", "text": "a b"}\n', encoding="utf-8")
    empty.mkdir()
    (tmp_path / "none.jsonl").write_text("", encoding="utf-8")
    col = tmp_path / "col"
    res = cli.invoke(app, ["index", str(bad), "-c", str(col), "--model", "fake-bow"])
    assert res.exit_code == 1 and "nothing was stored" in res.output and not col.exists()
    res = cli.invoke(app, ["index", str(empty), "-c", str(col), "--model", "fake-bow"])
    assert res.exit_code == 1 and not col.exists()
    assert f"note: {empty}: no file to read (an empty folder; hidden files and folders are not read)" in res.output
    res = cli.invoke(app, ["index", str(tmp_path / "none.jsonl"), "-c", str(col), "--model", "fake-bow", "--json"])
    assert res.exit_code == 1 and not col.exists()
    assert json.loads(res.stdout)["notes"] == [f"{tmp_path / 'none.jsonl'}: no records in it"]
    # partial skips and an unchanged rerun stay 0
    res = cli.invoke(app, ["index", str(bad), str(good), "-c", str(col), "--model", "fake-bow"])
    assert res.exit_code == 0 and "indexed 1 documents (2 skipped)" in res.output, res.output
    res = cli.invoke(app, ["index", str(good), "-c", str(col)])
    assert res.exit_code == 0, res.output
    # into an existing collection: nothing stored, exit 1, and the collection is as it was
    for source in (bad, empty):
        res = cli.invoke(app, ["index", str(source), "-c", str(col)])
        assert res.exit_code == 1 and "collection holds 1 documents" in res.output, res.output
    with Collection.open(col) as c:
        assert c.get("1").text == "a b" and len(c) == 1
    # --strict still stops at the first bad record, exit 2, as before
    res = cli.invoke(app, ["index", str(bad), "-c", str(tmp_path / "strict"), "--model", "fake-bow", "--strict"])
    assert res.exit_code == 2 and "_id: missing" in res.output and not (tmp_path / "strict").exists()
