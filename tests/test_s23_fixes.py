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


# Metadata from pandas (np.int64, np.float32, np.bool_) was refused ("unsupported value of type numpy.int64") though
# filters took the same values: now stored as the Python value each holds, held to that value's rules.
def test_numpy_scalars_in_metadata_are_stored_as_their_python_values(tmp_path):
    import numpy as np

    meta = {"year": np.int64(2021), "score": np.float32(0.5), "ok": np.bool_(True), "nested": {"n": [np.int8(3)]},
            "plain": 1.5}
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.upsert([Document("a", "hello world", metadata=meta)])
        got = col.get("a").metadata
        assert got == {"year": 2021, "score": 0.5, "ok": True, "nested": {"n": [3]}, "plain": 1.5}
        assert [type(got[k]) for k in ("year", "score", "ok")] == [int, float, bool]
        assert [h.id for h in col.search("hello", filter={"year": 2021, "ok": True})] == ["a"]
        for bad, problem in ((np.float64("nan"), "year: non-finite number (nan)"),
                             (np.array([1, 2]), "year: unsupported value of type numpy.ndarray"),
                             (np.uint64(2**63), f"year: integer {2**63} outside the 64-bit range")):
            with pytest.raises(Exception, match=problem.replace("(", r"\(").replace(")", r"\)")):
                col.upsert([Document("b", "other words", metadata={"year": bad})])
        assert len(col) == 1 and col.get("a").metadata["year"] == 2021


def test_numpy_metadata_through_the_langchain_store(tmp_path):
    import numpy as np

    embeddings = pytest.importorskip("langchain_core.embeddings")
    from slimvec.integrations.langchain import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "lc", embeddings.DeterministicFakeEmbedding(size=16))
    try:
        store.add_texts(["hello world"], [{"year": np.int64(2020)}], ids=["x"])
        assert store.collection.get("x").metadata == {"year": 2020}
    finally:
        store.collection.close()


def test_numpy_metadata_through_the_llama_index_store(tmp_path):
    import numpy as np

    schema = pytest.importorskip("llama_index.core.schema")
    from slimvec.integrations.llama_index import SlimvecVectorStore

    with Collection.create(tmp_path / "li", encoder=FakeEncoder()) as col:
        store = SlimvecVectorStore(col)
        store.add([schema.TextNode(id_="n", text="hello world", metadata={"year": np.int64(2020)})])
        assert [n.metadata for n in store.get_nodes(["n"])] == [{"year": 2020}]


# A metadata key "" was stored (seen through the HTTP add) though no filter can name it; so were keys holding a double
# quote, a backslash or a control character. Keys with a dot or a leading "$" stay: a quoted path names them.
@pytest.mark.parametrize("meta, shown", [({"": 1}, "''"), ({"a": {"": 2}}, "a.''"), ({'a"b': 1}, "'a\"b'"),
                                         ({"a\\b": 1}, "'a\\\\b'"), ({"a\nb": 1}, "'a\\nb'"),
                                         ({"l": [{"": 1}]}, "l.''")])
def test_a_metadata_key_no_filter_can_name_is_refused(tmp_path, meta, shown):
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document("keep", "kept text", metadata={"k": 1})])
        with pytest.raises(Exception) as e:
            col.upsert([Document("ok", "fine"), Document("d", "hello world", metadata=meta)])
        assert str(e.value).startswith(f"document 'd' (position 1): metadata: {shown}: key: ")
        assert "which no filter can name; nothing from this call was stored" in str(e.value)
        assert sorted(col.store.existing_ids(["keep", "ok", "d"])) == ["keep"]


def test_keys_a_quoted_path_names_are_stored_and_filterable(tmp_path):
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document("d", "hello world", metadata={"a.b": 1, "$x": 2, "_id": 3, "  ": 4})])
        for flt in ({'"a.b"': 1}, {'"$x"': 2}, {'"_id"': 3}, {"  ": 4}):
            assert [h.id for h in col.search("hello", filter=flt)] == ["d"], flt


def test_http_add_refuses_an_empty_metadata_key(tmp_path):
    testclient = pytest.importorskip("fastapi.testclient")
    from slimvec.server import create_app

    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        with testclient.TestClient(create_app({"col": col}, api_key=None), raise_server_exceptions=False) as client:
            r = client.post("/api/collections/col/documents", json=[{"id": "d", "text": "x y", "metadata": {"": 1}}])
            assert r.status_code == 400 and "metadata: '': key: empty, which no filter can name" in r.text, r.text
        assert len(col) == 0


# Upsert change detection compared the metadata's JSON text, so the same metadata with its keys in another order
# re-encoded the document and left its old rows dead.
def test_upsert_of_the_same_metadata_in_another_key_order_encodes_nothing(tmp_path):
    enc = FakeEncoder()
    first = [Document(f"d{i}", f"text number {i}", metadata={"a": i, "b": {"x": 1, "y": [1, 2]}, "c": "z"})
             for i in range(3)]
    again = [Document(d.id, d.text, metadata={"c": "z", "b": {"y": [1, 2], "x": 1}, "a": d.metadata["a"]})
             for d in first]
    with Collection.create(tmp_path / "col", encoder=enc) as col:
        col.upsert(first)
        calls = enc.calls
        assert col.unchanged(again) == {"d0", "d1", "d2"}
        assert col.upsert(again) == 3 and enc.calls == calls and col.info()["dead_rows"] == 0
        assert list(col.get("d1").metadata) == ["a", "b", "c"]  # the order first given, as stored
        # a real change is still one: a value, a type (1 -> 1.0, 1 -> true), or a key
        for meta in ({"a": 0, "b": {"x": 1.0, "y": [1, 2]}, "c": "z"}, {"a": 0, "b": {"x": True, "y": [1, 2]}, "c": "z"},
                     {"a": 0, "b": {"x": 1, "y": [2, 1]}, "c": "z"}, {"a": 0, "b": {"x": 1, "y": [1, 2]}}):
            assert col.unchanged([Document("d0", "text number 0", metadata=meta)]) == set(), meta
        col.upsert([Document("d0", "text number 0", metadata={"a": 0, "c": "w"})])
        assert enc.calls == calls + 1 and col.get("d0").metadata == {"a": 0, "c": "w"}


# `fit_calibrator` (`slimvec calibrate`) on a collection under migration ran every judged query's search, then was
# refused by set_calibrator: now refused before any search.
def test_calibrate_under_migration_is_refused_before_any_search(tmp_path, scifact_docs):
    from slimvec.evaluation.calibrate import fit_calibrator
    from slimvec.migrate.merged import MigratingCollection

    old, new = FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=48, name="fake-bow-s23")
    path = tmp_path / "col"
    with Collection.create(path, encoder=old) as col:
        col.add(scifact_docs[:30])
    with registered_encoders(old, new):
        res = cli.invoke(app, ["migrate", str(path), "--to", "fake-bow-s23", "--fit-only"])
        assert res.exit_code == 0, res.output
        with Collection.open(path) as col:
            assert isinstance(col, MigratingCollection)
            calls = (old.calls, new.calls, col.encoder.calls, col.target.encoder.calls)
            queries = {f"q{i}": scifact_docs[i].text[:80] for i in range(5)}
            qrels = {q: {scifact_docs[i].id: 1} for i, q in enumerate(queries)}
            with pytest.raises(Exception, match="a migration to 'fake-bow-s23' is under way; writes are refused"):
                fit_calibrator(col, queries, qrels, mode="dense")
            assert (old.calls, new.calls, col.encoder.calls, col.target.encoder.calls) == calls  # nothing searched
        assert not (path / "calibration.json").exists()


# A killed compaction's DIR/compaction/ counted in info's disk_bytes but not in its reclaimable bytes until the next
# compaction removed it.
def test_a_killed_compactions_stage_counts_as_reclaimable(tmp_path):
    import numpy as np

    from slimvec import compaction

    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"words of document {i}") for i in range(20)])
        before = col.info()
        assert before["reclaimable_disk_bytes"] == 0
        with col.store.writer():  # what a compaction killed before its switch leaves behind
            rows = col.store.committed_rows
            compaction.write_generation(col.store, np.arange(rows, dtype=np.int64), [], rows)
        staged = col.store.disk_usage()["compaction"]
        info = col.info()
        assert staged > 0 and info["disk_bytes"] == before["disk_bytes"] + staged
        assert info["reclaimable_disk_bytes"] == staged
        col.compact()
        assert not (tmp_path / "col" / "compaction").exists() and col.info()["reclaimable_disk_bytes"] == 0


# HTML extraction: a <pre> block lost its newlines and indentation ("def f(): return 1"), and block elements missing
# from the list (<center>, <legend>, <option>...) glued their words to the next ("ab").
@pytest.mark.parametrize("html, text", [
    ("<p>a</p><p>b</p>", "a\n\nb"),
    ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
    ("<p>a<br>b</p>", "a\nb"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>", "a b\n\nc d"),
    ("<span>a</span><span>b</span>", "ab"),  # inline neighbours: a browser shows "ab"
    ("<p>x</p><pre>def f():\n    return 1\n\n\nend  </pre><p>y</p>", "x\n\ndef f():\n    return 1\n\n\nend\n\ny"),
    ("<pre><code>a<br>  b</code></pre>", "a\n  b"),
    ("<center>a</center>b", "a\n\nb"),
    ("<legend>a</legend>b", "a\n\nb"),
    ("<select><option>a</option><option>b</option></select>", "a\n\nb"),
])
def test_html_text_keeps_block_boundaries_and_preformatted_lines(tmp_path, html, text):
    from slimvec.ingest import read_sources

    (tmp_path / "page.html").write_text(f"<html><body>{html}</body></html>", encoding="utf-8")
    assert [d.text for d in read_sources([tmp_path / "page.html"])] == [text]


# A Parquet time64[ns] column lost its nanoseconds (pyarrow's Python value is a datetime.time): "00:00:01" for
# 1.000000123 s, where a timestamp[ns] column keeps them.
def test_parquet_time64_ns_keeps_its_nanoseconds(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from slimvec.ingest import read_sources

    ns = [1_000_000_123, 45_296_000_001_000, 0, None]
    pq.write_table(pa.table({"_id": ["a", "b", "c", "d"], "text": ["x"] * 4, "t": pa.array(ns, pa.time64("ns")),
                             "us": pa.array([v // 1000 if v is not None else None for v in ns], pa.time64("us"))}),
                   tmp_path / "t.parquet")
    got = [(d.metadata.get("t"), d.metadata.get("us")) for d in read_sources([tmp_path / "t.parquet"])]
    assert got == [("00:00:01.000000123", "00:00:01"), ("12:34:56.000001", "12:34:56.000001"),
                   ("00:00:00", "00:00:00"), (None, None)]
