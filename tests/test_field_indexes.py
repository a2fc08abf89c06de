"""Field indexes (`Collection.create_field_index`): filters on indexed metadata fields read the index instead of
every document's JSON, with the same matches, kept in step with every write and across compaction."""

from __future__ import annotations

import random

import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.errors import CollectionError, FilterError
from slimvec.store.filters import compile_filter, field_path

VALUES = ["a", "b", "1", 1, 2, 2.0, 1.5, -3, True, False, None, ["a", 1], ["b", True, None], [2.0, "c"], [],
          {"x": 1}, {"f": "a"}, 0, "", "é"]
PROBES = ["a", "b", "1", 1, 2, 1.5, -3, True, False, None, 0, "", "c", "é", 3]


def _docs(n: int, seed: int = 0) -> list[Document]:
    rnd = random.Random(seed)
    return [Document(f"d{i:03d}", f"text {i}", metadata={k: rnd.choice(VALUES) for k in ("f", "g", "h")
                                                          if rnd.random() < 0.8} | {"m": {"f": rnd.choice(VALUES)}})
            for i in range(n)]


def _filters() -> list[dict]:
    out: list[dict] = []
    for v in PROBES:
        out += [{"f": v}, {"f": {"$ne": v}}, {"f": {"$in": [v, "b"]}}, {"f": {"$nin": [v]}}, {"m.f": v}]
        if not isinstance(v, bool) and v is not None:
            out += [{"f": {op: v}} for op in ("$gt", "$gte", "$lt", "$lte")]
    out += [{"f": "a", "g": 1}, {"$or": [{"f": 1}, {"g": "b"}]}, {"$not": {"f": True}}, {"f": {"$exists": True}},
            {"f": {"$gte": 1, "$lt": 2}}, {"$and": [{"g": {"$in": [True, None, "a"]}}, {"h": {"$ne": 2}}]}]
    return out + _combined_filters()


def _combined_filters() -> list[dict]:
    """$or (each branch indexed or not), $and, $not and $exists nested, and AND levels whose conditions differ in
    how many documents they match (a wide range beside a narrow equality, in both orders), over arrays and mixed
    types: the cases where the compiler picks a driver, a union of branches, or none."""
    return [
        {"$or": [{"f": "a"}, {"g": 1}]}, {"$or": [{"f": "a"}, {"g": True}, {"h": None}]},
        {"$or": [{"f": "a"}, {"g": {"$gte": 1}}]}, {"$or": [{"f": {"$lt": 0}}, {"f": {"$gt": 1.5}}]},
        {"$or": [{"f": "a", "h": {"$ne": 2}}, {"g": {"$in": [1, "b", None]}}]},
        {"$or": [{"f": 1}, {"h": "a"}]}, {"$or": [{"f": "a"}, {"$not": {"g": 1}}]},
        {"$or": [{"f": "a"}, {"g": {"$exists": False}}]}, {"$or": [{"f": {"$exists": True}}, {"g": 1}]},
        {"$or": [{"$or": [{"f": "a"}, {"f": 1}]}, {"g": "b"}]},
        {"$or": [{"$and": [{"f": "a"}, {"g": {"$lt": 2}}]}, {"m.f": True}]},
        {"$or": [{"$and": [{"f": "a"}, {"h": 1}]}, {"g": "b"}]}, {"$or": [{"h": {"$ne": 1}, "$and": [{"f": "a"}]}, {"g": "b"}]},
        {"$or": [{"f": {"$in": ["a", 1, True, None]}}, {"g": {"$in": [2.0]}}]},
        {"$or": [{"f": "a"}, {"f": {"$in": ["a", 1]}}]}, {"$or": [{"f": {"$in": []}}, {"g": "a"}]},
        {"$or": [{"_id": "d001"}, {"f": "a"}]}, {"$or": [{"f": None}, {"g": None}]},
        {"f": {"$in": ["a", "b", 1]}, "$or": [{"g": 1}, {"g": "a"}]},
        {"g": {"$gt": -5}, "f": {"$in": ["a", "b"]}, "$or": [{"h": 1}, {"h": {"$lte": 0}}]},
        {"f": {"$gte": -10}, "g": "é"}, {"g": "é", "f": {"$gte": -10}},
        {"$and": [{"f": {"$gte": -10}}, {"g": "é"}]}, {"$and": [{"g": "é"}, {"f": {"$gte": -10}}]},
        {"f": {"$ne": "a"}, "$and": [{"g": {"$lte": 2}}, {"$and": [{"h": {"$in": [1, 2, "a", True]}}]}]},
        {"$not": {"$or": [{"f": "a"}, {"g": 1}]}},
        {"$and": [{"f": {"$in": [1, 2.0]}}, {"$not": {"$or": [{"g": True}, {"h": None}]}}]},
        {"f": {"$exists": True}, "g": "a"}, {"m.f": {"$exists": True}}, {"m": {"$exists": True}},
        {"f": {"$exists": True, "$nin": ["a", 1]}}, {"$or": [{"m.f": {"$gte": "a"}}, {"f": {"$lte": -3}}]},
    ]


def _expected(doc: Document, flt: dict) -> bool:
    """The filter language's meaning, written out here in Python for the probes above (README "Metadata filters")."""
    def eq(value, v) -> bool:
        def same(a) -> bool:
            if isinstance(v, bool) or isinstance(a, bool):
                return isinstance(v, bool) and isinstance(a, bool) and a == v
            if v is None:
                return a is None
            if isinstance(v, str) or isinstance(a, str):
                return isinstance(v, str) and isinstance(a, str) and a == v
            return isinstance(a, (int, float)) and a == v
        if isinstance(value, list) and v is not None:
            return any(same(e) for e in value)
        return not isinstance(value, (list, dict)) and same(value)

    def cmp(value, op, v) -> bool:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            return False
        if isinstance(v, str) != isinstance(value, str):
            return False
        return {"$gt": value > v, "$gte": value >= v, "$lt": value < v, "$lte": value <= v}[op]

    def field(name, cond) -> bool:
        m = doc.metadata
        keys = name.split(".")
        for k in keys:
            m = m.get(k, KeyError) if isinstance(m, dict) else KeyError
        value = doc.id if name == "_id" else m
        if not isinstance(cond, dict) or not any(k.startswith("$") for k in cond):
            cond = {"$eq": cond}
        ok = True
        for op, v in cond.items():
            present = value is not KeyError
            if op == "$eq":
                ok &= present and eq(value, v)
            elif op == "$ne":
                ok &= not (present and eq(value, v))
            elif op == "$in":
                ok &= present and any(eq(value, x) for x in v)
            elif op == "$nin":
                ok &= not (present and any(eq(value, x) for x in v))
            elif op == "$exists":
                ok &= present == v
            else:
                ok &= present and cmp(value, op, v)
        return ok

    def obj(o) -> bool:
        ok = True
        for k, v in o.items():
            if k == "$and":
                ok &= all(obj(x) for x in v)
            elif k == "$or":
                ok &= any(obj(x) for x in v)
            elif k == "$not":
                ok &= not obj(v)
            else:
                ok &= field(k, v)
        return ok

    return obj(flt)


def _ids(col, flt) -> list[str]:
    return [d.id for d in col.scroll(flt, limit=10_000)[0]] if col.count(flt) else []


@pytest.fixture()
def col(tmp_path):
    c = Collection.create(tmp_path / "col", encoder=FakeEncoder(dim=16))
    c.add(_docs(160))
    yield c
    c.close()


def test_indexed_filters_match_what_the_filter_language_means_and_use_the_index(col):
    docs = {d.id: d for d in _docs(160)}
    filters = _filters()
    want = [sorted(i for i, d in docs.items() if _expected(d, f)) for f in filters]
    assert [_ids(col, f) for f in filters] == want  # the JSON scan
    assert any(want) and not all(want)
    assert col.create_field_index(["f", "g", "h", "m.f"]) == ["f", "g", "h", "m.f"]
    assert col.field_indexes() == ["f", "g", "h", "m.f"] and col.info()["field_indexes"] == col.field_indexes()
    assert [_ids(col, f) for f in filters] == want  # the index
    for f, w in zip(filters, want):
        rows = col.store.rows_matching(f, explain=False)
        assert sorted({col.store.sections_for_rows(rows.tolist())[r].doc_id for r in rows.tolist()}) == w
    # the index is what SQLite reads for an indexed equality (not a scan of every document's JSON)
    where, params = compile_filter({"f": "a"}, indexed=col.store.field_indexes())
    plan = " ".join(str(r) for r in col.store.db.execute(
        f"EXPLAIN QUERY PLAN SELECT d.id FROM documents d WHERE {where}", params))
    assert "field_terms_value" in plan
    # one indexed list drives a conjunction, the equality before a range (a range read whole as a second list cost
    # more than the scan it replaced); the other conditions are checked on the driver's documents
    where, params = compile_filter({"g": {"$gte": 0}, "f": "a", "h": {"$lt": 5}}, indexed=col.store.field_indexes())
    plan = [str(r) for r in col.store.db.execute(f"EXPLAIN QUERY PLAN SELECT d.id FROM documents d WHERE {where}",
                                                 params)]
    assert sum("field_terms" in r for r in plan) == 1 and where.count("field_terms") == 1
    at = where.index("field_terms")
    assert where[:at].count("?") == params.index('$."f"') and params[params.index('$."f"') + 1] == "a"
    assert col.create_field_index("f") == [] and col.drop_field_index(["g", "nope"]) == ["g"]
    assert col.field_indexes() == ["f", "h", "m.f"] and [_ids(col, f) for f in filters] == want


def test_every_write_and_a_compaction_keep_the_index_in_step(col, tmp_path):
    col.create_field_index(["f", "g"])
    docs = {d.id: d for d in _docs(160)}
    rnd = random.Random(7)
    changed = [Document(i, "changed", metadata={"f": rnd.choice(VALUES), "g": "new"}) for i in sorted(docs)[:70:3]]
    col.upsert(changed)
    docs.update({d.id: d for d in changed})
    col.add([Document("late", "late", metadata={"f": ["a", "z"], "g": 2.0})])
    docs["late"] = Document("late", "late", metadata={"f": ["a", "z"], "g": 2.0})
    gone = sorted(docs)[80:150]
    col.delete(gone)
    col.delete(filter={"g": "new", "f": {"$in": ["a", 1]}})
    for i in [i for i, d in docs.items() if d.metadata.get("g") == "new" and _expected(d, {"f": {"$in": ["a", 1]}})]:
        gone.append(i)
    for i in gone:
        docs.pop(i, None)
    filters = _filters() + [{"g": "new"}, {"g": 2}]

    def check():
        want = [sorted(i for i, d in docs.items() if _expected(d, f)) for f in filters]
        assert [_ids(col, f) for f in filters] == want
        terms = col.store.db.execute("SELECT COUNT(DISTINCT doc_id) FROM field_terms").fetchone()[0]
        assert terms <= len(docs) and col.check() == []

    check()
    col.compact()
    assert col.field_indexes() == ["f", "g"]
    check()
    with Collection.open(col.path) as again:  # another handle reads the same index
        assert [_ids(again, f) for f in filters[:12]] == [_ids(col, f) for f in filters[:12]]


def test_field_names_are_checked_and_a_migrating_collection_refuses_the_write(col, tmp_path):
    for bad in ("_id", "a..b", ""):
        with pytest.raises(FilterError):
            col.create_field_index(bad)
    with pytest.raises(TypeError):
        col.create_field_index([])
    with pytest.raises(TypeError):
        col.create_field_index(3)
    assert col.field_indexes() == []
    assert field_path('"v1.2"') == '$."v1.2"' and col.create_field_index(['"v1.2"', "meta.\"x.y\""]) == \
        ['"v1.2"', 'meta."x.y"']

    from migrate_worker import NEW

    from slimvec.migrate import runner

    enc = FakeEncoder(dim=16)
    new = FakeEncoder(dim=24, name=NEW)
    with registered_encoders(enc, new):
        with Collection.create(tmp_path / "m", encoder=enc) as m:
            m.add(_docs(40))
        runner.start(tmp_path / "m", NEW, sample=20, encoder=new)
        with Collection.open(tmp_path / "m") as m:
            with pytest.raises(CollectionError, match="writes are refused"):
                m.create_field_index("f")


def test_a_sharded_collection_indexes_every_shard_and_filters_as_before(tmp_path):
    from slimvec.distributed.sharded import create_sharded

    enc = FakeEncoder(dim=16)
    with registered_encoders(enc):
        create_sharded(tmp_path / "sh", 3, model=enc.name).close()
        with Collection.open(tmp_path / "sh") as sh:
            sh.add(_docs(90))
            before = [_ids(sh, f) for f in _filters()]
            assert sh.create_field_index(["f", "g"]) == ["f", "g"]
            assert sh.field_indexes() == ["f", "g"] and sh.info()["field_indexes"] == ["f", "g"]
            assert [_ids(sh, f) for f in _filters()] == before
            assert all(s["field_indexes"] == ["f", "g"] for s in sh.info()["shards"])
            with pytest.raises(FilterError):
                sh.create_field_index("_id")


def test_cli_field_index(tmp_path):
    enc = FakeEncoder(dim=16)
    with registered_encoders(enc):
        with Collection.create(tmp_path / "col", encoder=enc) as c:
            c.add(_docs(30))
        res = CliRunner().invoke(app, ["field-index", str(tmp_path / "col"), "f", "m.f"])
        assert res.exit_code == 0 and "indexed: f, m.f" in res.stdout
        res = CliRunner().invoke(app, ["field-index", str(tmp_path / "col"), "--json"])
        assert res.exit_code == 0 and '"m.f"' in res.stdout
        res = CliRunner().invoke(app, ["field-index", str(tmp_path / "col"), "f", "--drop"])
        assert res.exit_code == 0 and "dropped: f" in res.stdout
        res = CliRunner().invoke(app, ["field-index", str(tmp_path / "col"), "_id"])
        assert res.exit_code == 2 and "always indexed" in res.stderr
        with Collection.open(tmp_path / "col") as c:
            assert c.field_indexes() == ["m.f"]


def test_a_migration_keeps_the_field_indexes(tmp_path):
    from migrate_worker import NEW

    from slimvec.migrate import runner

    enc, new = FakeEncoder(dim=16), FakeEncoder(dim=24, name=NEW)
    with registered_encoders(enc, new):
        with Collection.create(tmp_path / "m", encoder=enc) as m:
            m.add(_docs(40))
            m.create_field_index(["f", "m.f"])
            want = [_ids(m, f) for f in _filters()]
        runner.migrate(tmp_path / "m", NEW, sample=20, encoder=new)
        with Collection.open(tmp_path / "m") as m:
            assert m.encoder.name == NEW and m.field_indexes() == ["f", "m.f"]
            assert [_ids(m, f) for f in _filters()] == want


def test_check_finds_a_field_index_out_of_step_with_the_metadata(col):
    col.create_field_index("f")
    assert col.check() == []
    with col.store._transaction() as cur:  # as a hand edit of the file would leave it
        cur.execute("DELETE FROM field_terms WHERE rowid IN (SELECT rowid FROM field_terms LIMIT 3)")
    (problem,) = col.check()
    assert problem.startswith("field index f: ") and "field-index DIR f --drop" in problem
    col.drop_field_index("f")
    col.create_field_index("f")
    assert col.check() == []


def test_http_creates_lists_and_drops_field_indexes(col):
    from _server_util import AUTH, KEY
    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    with TestClient(create_app({"col": col}, api_key=KEY), raise_server_exceptions=False) as client:
        url = "/api/collections/col/field-indexes"
        assert client.post(url, json={"fields": ["f"]}).status_code == 401  # a write: the key is required
        r = client.post(url, json={"fields": ["f", "m.f"]}, headers=AUTH)
        assert r.status_code == 200 and r.json() == {"created": ["f", "m.f"], "field_indexes": ["f", "m.f"]}
        assert client.get("/api/collections/col").json()["field_indexes"] == ["f", "m.f"]
        r = client.post(url, json={"fields": ["_id"]}, headers=AUTH)
        assert r.status_code == 400 and "always indexed" in r.json()["detail"]
        for body in ({"fields": []}, {"fields": ["f"], "extra": 1}, {"fields": "f"}):
            assert client.post(url, json=body, headers=AUTH).status_code == 422
        r = client.post(url, json={"fields": ["f"], "drop": True}, headers=AUTH)
        assert r.json() == {"dropped": ["f"], "field_indexes": ["m.f"]} and col.field_indexes() == ["m.f"]
