"""Session 24: which field index drives a filter. The narrowest indexed condition of an AND level (counted through
the index), an $or whose every branch is indexed (the union of the branches' lists), the items of an $and as part
of their level; every other condition checked on the driver's documents. Matches stay the scan's
(tests/test_field_indexes.py holds the differential test over all of them)."""

from __future__ import annotations

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.store.filters import _FIRST_CAP, compile_filter

WIDE, NARROW = '$."wide"', '$."narrow"'


def _driving_path(where: str, params: list) -> list[str]:
    """The JSON path bound first in each `field_terms` select of a compiled filter: the lists SQLite reads."""
    out, at = [], 0
    while (at := where.find("FROM field_terms", at)) >= 0:
        out.append(params[where[:at].count("?")])
        at += 1
    return out


@pytest.fixture()
def col(tmp_path):
    # wide >= 10 holds 90% of the documents, narrow == "x" 2%: an equality and a range of very different widths
    c = Collection.create(tmp_path / "col", encoder=FakeEncoder(dim=8))
    c.add([Document(f"d{i:03d}", "t", metadata={"wide": i % 100, "narrow": "x" if i % 50 == 7 else "y",
                                                 "tags": ["p", "q"] if i % 3 else [], "u": i % 4}) for i in range(400)])
    c.create_field_index(["wide", "narrow", "tags"])
    yield c
    c.close()


def _compiled(col, flt):
    return col.store._compiled(flt)


def test_the_narrowest_condition_drives_whatever_its_operator_or_place(col):
    # Without counts the old order holds (an equality first); with them the narrower list drives either way round.
    assert _driving_path(*compile_filter({"wide": {"$gte": 10}, "narrow": "x"}, indexed=frozenset([WIDE, NARROW]))) \
        == [NARROW]
    for flt in ({"wide": {"$gte": 10}, "narrow": "x"}, {"narrow": "x", "wide": {"$gte": 10}},
                {"$and": [{"wide": {"$gte": 10}}, {"narrow": "x"}]}, {"$and": [{"narrow": "x"}, {"wide": {"$gte": 10}}]},
                {"wide": {"$gte": 10}, "$and": [{"u": 1}, {"narrow": {"$in": ["x"]}}]}):
        assert _driving_path(*_compiled(col, flt)) == [NARROW], flt
    # an equality matching 98% beside a range matching 5%: the range drives (the operator no longer decides)
    for flt in ({"narrow": "y", "wide": {"$lt": 5}}, {"wide": {"$lt": 5}, "narrow": "y"}):
        assert _driving_path(*_compiled(col, flt)) == [WIDE], flt
    want = sorted(f"d{i:03d}" for i in range(400) if i % 100 < 5 and i % 50 != 7)
    assert [d.id for d in col.scroll({"narrow": "y", "wide": {"$lt": 5}}, limit=1000)[0]] == want
    # both lists of an $and were read before (one drove, the other was read whole to test membership)
    where, params = _compiled(col, {"$and": [{"wide": {"$gte": 10}}, {"narrow": "x"}]})
    assert where.count("field_terms") == 1


def test_counting_the_candidates_reads_a_small_multiple_of_the_narrowest(col):
    sizes = {WIDE: 5_000_000, NARROW: 30_000, '$."third"': 4_000_000}
    counted = []

    def estimate(select, params, cap):
        n = min(sizes[params[0]], cap)
        counted.append(n)
        return n

    indexed = frozenset(sizes)
    flt = {"wide": {"$gte": 1}, "third": {"$lt": 9}, "narrow": "x"}
    assert _driving_path(*compile_filter(flt, indexed=indexed, estimate=estimate)) == [NARROW]
    # three candidates, each counted up to the cap that first exceeded the narrowest (8 x), and the smaller caps before
    assert sum(counted) <= 3 * 8 * 30_000 * 8 / 7
    counted.clear()
    sizes[NARROW] = 3
    assert _driving_path(*compile_filter(flt, indexed=indexed, estimate=estimate)) == [NARROW]
    assert sum(counted) <= 3 + 2 * _FIRST_CAP  # one round, each count capped at the first cap
    counted.clear()
    assert _driving_path(*compile_filter({"wide": {"$gte": 1}}, indexed=indexed, estimate=estimate)) == [WIDE]
    assert counted == []  # a lone candidate is not counted


def test_an_or_of_indexed_branches_drives_from_the_union_of_their_lists(col):
    flt = {"$or": [{"narrow": "x"}, {"wide": {"$lt": 3}}]}
    where, params = _compiled(col, flt)
    assert _driving_path(where, params) == [NARROW, WIDE] and "UNION" in where
    assert "json_" not in where  # each branch is exactly its list: no document's JSON is read
    plan = " ".join(r[3] for r in col.store.db.execute(f"EXPLAIN QUERY PLAN SELECT d.id FROM documents d WHERE {where}",
                                                       params))
    assert "SCAN d" not in plan and "field_terms_value" in plan
    want = sorted(f"d{i:03d}" for i in range(400) if i % 50 == 7 or i % 100 < 3)
    assert [d.id for d in col.scroll(flt, limit=1000)[0]] == want and col.count(flt) == len(want)
    # a branch with other conditions: the union drives (each branch's narrowest list: tags "p" holds 2/3), the
    # branches are checked on its documents' JSON
    flt = {"$or": [{"narrow": "x", "u": 3}, {"tags": "p", "wide": {"$lt": 3}}]}
    where, params = _compiled(col, flt)
    assert _driving_path(where, params) == [NARROW, WIDE] and "json_" in where
    want = sorted(f"d{i:03d}" for i in range(400) if (i % 50 == 7 and i % 4 == 3) or (i % 3 and i % 100 < 3))
    assert [d.id for d in col.scroll(flt, limit=1000)[0]] == want
    # a branch without an indexed condition: every document is read, as before
    for flt in ({"$or": [{"narrow": "x"}, {"u": 1}]}, {"$or": [{"narrow": "x"}, {"$not": {"wide": 1}}]}):
        assert "field_terms" not in _compiled(col, flt)[0]


def test_an_or_that_does_not_drive_reads_no_list(col):
    # The equality is narrower than the $or's union: it drives and the $or is checked on its documents' JSON (its
    # branches' lists were each read whole before, to test membership).
    flt = {"narrow": "x", "$or": [{"wide": {"$gte": 10}}, {"wide": 1}]}
    assert _driving_path(*_compiled(col, flt)) == [NARROW]
    want = sorted(f"d{i:03d}" for i in range(400) if i % 50 == 7 and (i % 100 >= 10 or i % 100 == 1))
    assert [d.id for d in col.scroll(flt, limit=1000)[0]] == want
    # and the other way: the $or's union (2% + 1%) is narrower than a wide range beside it
    flt = {"wide": {"$gte": 2}, "$or": [{"narrow": "x"}, {"wide": {"$lt": 4}}]}
    assert _driving_path(*_compiled(col, flt)) == [NARROW, WIDE]
    want = sorted(f"d{i:03d}" for i in range(400) if i % 100 >= 2 and (i % 50 == 7 or i % 100 < 4))
    assert [d.id for d in col.scroll(flt, limit=1000)[0]] == want


def test_exists_true_drives_from_marker_rows_that_hold_empty_arrays_objects_and_nulls(col):
    # A document whose indexed value is [] or an object keeps no value row, yet `$exists: true` matches it: the
    # index keeps a marker row per document holding the key (session 26), which drives; before, $exists was
    # checked on every document's JSON.
    col.add([Document("e1", "t", metadata={"tags": {"k": 1}}), Document("e2", "t", metadata={"wide": 1}),
             Document("e3", "t", metadata={"tags": None, "narrow": "x"})])
    where, params = _compiled(col, {"tags": {"$exists": True}})
    assert _driving_path(where, params) == ['$."tags"'] and "json_" not in where  # the markers are exact
    got = [d.id for d in col.scroll({"tags": {"$exists": True}}, limit=1000)[0]]
    assert "e1" in got and "e3" in got and "d000" in got and "e2" not in got and len(got) == 402  # d000's tags: []
    # $exists: false matches most documents: it never drives
    assert "field_terms" not in _compiled(col, {"tags": {"$exists": False}})[0]
    assert [d.id for d in col.scroll({"tags": {"$exists": False}}, limit=10)[0]] == ["e2"]
    # the narrower list drives: narrow == "x" (8 + e3) beside 402 markers
    flt = {"tags": {"$exists": True}, "narrow": "x"}
    assert _driving_path(*_compiled(col, flt)) == [NARROW]
    assert len(col.scroll(flt, limit=1000)[0]) == 9


def test_exists_markers_are_not_trusted_until_complete(col):
    """An index made before the markers (or again by a slimvec that predates them) has no sentinel: `$exists` is
    read from the JSON until the next create_field_index (or compaction) completes them; `check` finds a missing
    marker on a marked index."""
    db = col.store.db
    with db:  # as a file written before session 26: no markers, no sentinel
        db.execute("DELETE FROM field_terms WHERE kind IN ('exists', 'marked')")
    col.add([Document("n1", "t", metadata={"tags": []})])  # the trigger marks new documents only
    assert "field_terms" not in _compiled(col, {"tags": {"$exists": True}})[0]
    assert col.count({"tags": {"$exists": True}}) == 401
    assert col.check() == []  # unmarked: the markers are not checked, the values are
    assert col.create_field_index(["narrow"]) == []  # nothing new, but the markers are completed
    assert _driving_path(*_compiled(col, {"tags": {"$exists": True}})) == ['$."tags"']
    assert col.count({"tags": {"$exists": True}}) == 401
    with db:  # a lost marker on a marked index: check says so
        db.execute("DELETE FROM field_terms WHERE kind = 'exists' AND doc_id = 'd005' AND path = ?", ('$."tags"',))
    assert any("field index tags" in p for p in col.store.check())


def _random_filter(rnd, depth: int = 0) -> dict:
    from test_field_indexes import PROBES

    out: dict = {}
    for name in rnd.sample(["f", "g", "h", "m.f", "_id"], rnd.randint(1, 2)):
        op = rnd.choice(["=", "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"])
        v = rnd.choice(PROBES) if name != "_id" else rnd.choice(["d001", "d050", "d2", 1])
        if op in ("$gt", "$gte", "$lt", "$lte") and (isinstance(v, bool) or v is None):
            v = rnd.choice(["b", 1, -3, 1.5])
        out[name] = v if op == "=" else {op: True if op == "$exists" and rnd.random() < 0.5 else False} \
            if op == "$exists" else {op: [v, rnd.choice(PROBES)][: rnd.randint(0, 2)]} if op in ("$in", "$nin") \
            else {op: v}
    if depth < 3:
        for key in rnd.sample(["$and", "$or", "$not", None, None], 2):
            if key == "$not":
                out[key] = _random_filter(rnd, depth + 1)
            elif key:
                out[key] = [_random_filter(rnd, depth + 1) for _ in range(rnd.randint(1, 3))]
    return out


def test_random_nested_filters_match_the_scan_and_the_filter_language(tmp_path):
    import random

    from test_field_indexes import _docs, _expected

    def _ids(c, f):  # the store's page and count, without the explanation a filter that matched nothing may raise
        got = [d["id"] for d in c.store.documents_matching(f, None, 10_000)]
        assert c.store.count_matching(f) == len(got)
        return got

    docs = _docs(160, seed=3)
    rnd = random.Random(11)
    filters = [_random_filter(rnd) for _ in range(300)]
    want = [sorted(d.id for d in docs if _expected(d, f)) for f in filters]
    assert sum(map(bool, want)) > 60  # many filters match something: a wrong driver would show
    with Collection.create(tmp_path / "col", encoder=FakeEncoder(dim=8)) as c:
        c.add(docs)
        assert [_ids(c, f) for f in filters] == want  # the JSON scan
        c.create_field_index(["f", "g", "m.f"])  # h is not indexed: branches on it are read from the JSON
        assert [_ids(c, f) for f in filters] == want
        assert sum("field_terms" in c.store._compiled(f)[0] for f in filters) > 50  # the index is read


def test_a_sharded_field_index_that_one_shard_refuses_names_the_shards_that_have_it(tmp_path, monkeypatch):
    from fakes import registered_encoders
    from test_field_indexes import _docs

    from slimvec.distributed.sharded import create_sharded
    from slimvec.errors import BusyError

    enc = FakeEncoder(dim=8)
    with registered_encoders(enc):
        create_sharded(tmp_path / "sh", 3, model=enc.name).close()
        with Collection.open(tmp_path / "sh") as sh:
            sh.add(_docs(60))
            dirs = sh.router["shards"]

            def held(fields, drop):  # as a `sqlite3` shell inside a transaction on shard 1 leaves it
                raise BusyError(f"{dirs[1]}/slimvec.db: another process has held the database's write lock")

            monkeypatch.setattr(sh.shards[1].core, "field_index", held)
            with pytest.raises(BusyError) as err:
                sh.create_field_index(["f", "g"])
            msg = str(err.value)
            assert f"shard 1 ({dirs[1]}) could not make it" in msg and "write lock" in msg
            assert f"shards 0 ({dirs[0]}), 2 ({dirs[2]}) have the index now" in msg
            assert f"slimvec field-index {tmp_path / 'sh'} 'f' 'g'" in msg and "'f' 'g' --drop" in msg
            assert [s.get("field_indexes", []) for s in sh.info()["shards"]] == [["f", "g"], [], ["f", "g"]]
            assert sh.field_indexes() == []  # indexed in every shard: none yet
            monkeypatch.undo()
            assert sh.create_field_index(["f", "g"]) == ["f", "g"]  # made in shard 1 now; the others had them
            assert [s.get("field_indexes") for s in sh.info()["shards"]] == [["f", "g"]] * 3


@pytest.mark.parametrize(("listed", "named"), [(["n", "a..b"], '"a..b"'), (["_id"], '"_id"'), ([3], "3"),
                                               ("n", '"n"')])
def test_an_import_names_the_export_and_the_field_index_it_cannot_make(tmp_path, listed, named):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from slimvec.cli import app
    from slimvec.errors import ConfigError
    from slimvec.interop import import_records
    from slimvec.interop.parquet import _KEY, _schema
    from slimvec.interop.rows import FORMAT, ChunkRecord, meta_json, to_row

    vec = np.full(256, 1 / 16, np.float32)  # the bundled static model's dimension: cheap to load
    rows = [to_row(ChunkRecord("a", 0, 0, 5, "", "alpha", "alpha", {"n": 1}, vec))]
    meta = meta_json({"format": FORMAT, "model": "wordllama", "dim": 256, "field_indexes": listed}).encode()
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema(256).with_metadata({_KEY: meta})), path)
    with pytest.raises(ConfigError) as err:
        import_records(f"parquet:{path}", tmp_path / "col")
    assert str(err.value).startswith(f"parquet:{path}: ") and named in str(err.value)
    assert not (tmp_path / "col").exists()
    res = CliRunner().invoke(app, ["import", f"parquet:{path}", "-c", str(tmp_path / "col")])
    assert res.exit_code == 2 and str(path) in res.output and named in res.output


def test_http_documents_reads_the_page_and_its_count_in_one_snapshot(col, monkeypatch):
    from _server_util import AUTH, KEY
    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    scroll = col.scroll

    def scroll_then_another_process_commits(*args):
        page = scroll(*args)
        with Collection.open(col.path, col.encoder) as other:  # a second handle: its commit is not this handle's to wait for
            other.add([Document("zz-late", "t", metadata={"narrow": "x"})])
        return page

    monkeypatch.setattr(col, "scroll", scroll_then_another_process_commits)
    with TestClient(create_app({"col": col}, api_key=KEY), raise_server_exceptions=False) as client:
        r = client.get("/api/collections/col/documents", params={"filter": '{"narrow": "x"}', "limit": 100},
                       headers=AUTH)
    body = r.json()
    assert r.status_code == 200, body
    assert len(body["documents"]) == 8 and body["next_offset"] is None  # i % 50 == 7
    assert body["count"] == 8  # the late document is in neither (9 when the count was read after its commit)
    assert col.count({"narrow": "x"}) == 9


def test_every_count_reads_only_the_index(col):
    from slimvec.store.filters import _counted, _Params, _plan

    params = _Params()
    params.indexed = col.store.field_indexes()
    for flt in ({"narrow": "x"}, {"narrow": None}, {"narrow": {"$in": ["x", 1, None, True]}}, {"wide": {"$gte": 3}},
                {"$or": [{"narrow": "x"}, {"wide": {"$lt": 2}}]}):
        drive = _plan(flt, params, 0)
        plan = " ".join(r[3] for r in col.store.db.execute(
            f"EXPLAIN QUERY PLAN SELECT count(*) FROM ({_counted(drive.sql)} LIMIT 256)", drive.params))
        assert "COVERING INDEX field_terms_value" in plan and "SCAN field_terms" not in plan, (flt, plan)


def test_a_delete_by_filter_reads_the_field_indexes_of_the_state_it_deletes_from(col, monkeypatch):
    from contextlib import contextmanager

    transaction = col.store._transaction

    @contextmanager
    def another_handle_drops_the_index_first():
        with Collection.open(col.path, col.encoder) as other:
            other.drop_field_index("narrow")
        with transaction() as cur:
            yield cur

    monkeypatch.setattr(col.store, "_transaction", another_handle_drops_the_index_first)
    # read before the drop, the index named a list the delete then found empty: nothing was deleted
    assert col.store.delete_matching({"narrow": "x"}) == [f"d{i:03d}" for i in range(400) if i % 50 == 7]


def test_an_or_of_more_branches_than_one_union_holds_is_read_from_the_json(col):
    want = [f"d{i:03d}" for i in range(400) if i % 100 >= 50]
    for n, indexed in ((300, True), (450, False)):  # SQLite refuses a compound SELECT of more than 500
        flt = {"$or": [{"wide": 50 + i} for i in range(n)]}
        assert ("field_terms" in _compiled(col, flt)[0]) == indexed
        assert [d.id for d in col.scroll(flt, limit=1000)[0]] == want and col.count(flt) == len(want)


@pytest.mark.parametrize("read", ["count", "rows", "page"])
def test_a_filtered_read_uses_the_field_indexes_of_the_state_it_reads(col, monkeypatch, read):
    # The list of indexed fields and the query that reads their terms were two statements: another handle's drop
    # landing between them made the compiled filter read an emptied index, and a count, page or search of "x"
    # found nothing.
    indexes = col.store.field_indexes

    def then_another_handle_drops_it():
        held = indexes()
        with Collection.open(col.path, col.encoder) as other:
            other.drop_field_index("narrow")
        return held

    monkeypatch.setattr(col.store, "field_indexes", then_another_handle_drops_it)
    want = [f"d{i:03d}" for i in range(400) if i % 50 == 7]
    if read == "count":
        assert col.store.count_matching({"narrow": "x"}) == len(want)
    elif read == "rows":
        assert len(col.store.rows_matching({"narrow": "x"})) == len(want)  # one chunk per document here
    else:
        assert [d["id"] for d in col.store.documents_matching({"narrow": "x"}, None, 100)] == want
