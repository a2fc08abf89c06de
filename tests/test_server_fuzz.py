"""Random requests against every endpoint: never a 500, and a rejected request changes nothing."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from _server_util import AUTH, KEY, make_collection, snapshot
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimvec.server import create_app

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=20)
fields = st.sampled_from(["year", "topic", "tags", "odd", "_id", "a.b", "bad field", "", "$eq", "x" * 300])
ops = st.sampled_from(["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$regex", "$and"])
conds = st.one_of(scalars, st.dictionaries(ops, st.one_of(scalars, st.lists(scalars, max_size=4)), max_size=3))
filters = st.recursive(
    st.dictionaries(fields, conds, max_size=3),
    lambda c: st.one_of(st.fixed_dictionaries({"$and": st.lists(c, max_size=3)}),
                        st.fixed_dictionaries({"$or": st.lists(c, max_size=3)}),
                        st.fixed_dictionaries({"$not": c}), st.dictionaries(fields, c, max_size=2)),
    max_leaves=8,
)
surrogate_text = st.text(alphabet=st.characters(codec=None), max_size=30) | st.just("\ud800") | st.just("a\x00b")


def raw_json(value) -> bytes:
    """JSON as a client might send it, with NaN and lone surrogates passed through as escapes."""
    return json.dumps(value, allow_nan=True, ensure_ascii=True).encode()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    col = make_collection(tmp_path_factory.mktemp("fuzz") / "col")
    app = create_app({"col": col}, api_key=KEY, max_body_bytes=32 * 1024, max_batch=20)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, col
    col.close()


def send(client, method, url, body=None, **kw):
    headers = {**AUTH, **kw.pop("headers", {})}
    if body is not None:
        headers["content-type"] = "application/json"
        kw["content"] = body
    return client.request(method, url, headers=headers, **kw)


@SETTINGS
@given(q=surrogate_text, k=st.integers(-5, 2000) | st.text(max_size=5), flt=filters | json_values,
       mode=st.sampled_from(["dense", "DENSE", "hybrid", "", "x" * 40]))
def test_search_get_never_500(env, q, k, flt, mode):
    client, col = env
    before = snapshot(col)
    params = {"q": q, "k": str(k), "filter": json.dumps(flt, allow_nan=True, ensure_ascii=False), "mode": mode}
    # percent-encode raw bytes as a hostile client could (lone surrogates included)
    qs = "&".join(f"{n}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for n, v in params.items())
    r = client.get("/api/collections/col/search?" + qs)
    assert r.status_code < 500, r.text
    assert r.status_code in (200, 400, 422), r.text
    assert "detail" in r.json() or "hits" in r.json()
    assert snapshot(col) == before


@SETTINGS
@given(body=st.fixed_dictionaries({"q": surrogate_text}, optional={"k": json_values | st.integers(0, 2000),
                                                                   "filter": filters | json_values, "mode": json_values})
       | json_values)
def test_search_post_never_500(env, body):
    client, col = env
    r = send(client, "POST", "/api/collections/col/search", raw_json(body))
    assert r.status_code in (200, 400, 413, 422), r.text


doc_like = st.fixed_dictionaries(
    {"id": surrogate_text | json_values, "text": surrogate_text | json_values},
    optional={"title": surrogate_text | json_values, "metadata": json_values, "extra": json_values},
)


@SETTINGS
@given(body=st.lists(doc_like, max_size=25) | json_values, upsert=st.sampled_from(["true", "false", "maybe", ""]))
def test_documents_post_never_500_and_rejections_change_nothing(env, body, upsert):
    client, col = env
    before = snapshot(col)
    r = send(client, "POST", f"/api/collections/col/documents?upsert={upsert}", raw_json(body))
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code != 200:
        assert snapshot(col) == before, r.text
    assert col.check() == []


@SETTINGS
@given(body=json_values | st.fixed_dictionaries({"ids": st.lists(surrogate_text | json_values, max_size=5)}))
def test_delete_never_500(env, body):
    client, col = env
    before = snapshot(col)
    r = send(client, "DELETE", "/api/collections/col/documents", raw_json(body))
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code != 200:
        assert snapshot(col) == before


@SETTINGS
@given(content=st.binary(max_size=400) | st.lists(json_values, max_size=5).map(
    lambda v: b"\n".join(raw_json(x) for x in v)), name=st.text(max_size=40))
def test_upload_never_500(env, content, name):
    client, col = env
    before = snapshot(col)
    r = client.post("/api/collections/col/documents/upload", files={"file": (name or "f", content)}, headers=AUTH)
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code != 200:
        assert snapshot(col) == before


@SETTINGS
@given(path=st.text(max_size=30), method=st.sampled_from(["GET", "DELETE", "POST", "PUT", "PATCH"]))
def test_random_paths_never_500(env, path, method):
    client, col = env
    r = client.request(method, "/api/collections/" + quote(path.encode("utf-8", "surrogatepass")), headers=AUTH)
    assert r.status_code < 500, (path, r.text)


def test_deep_nesting_is_400_not_500(env):
    client, col = env
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    r = send(client, "POST", "/api/collections/col/search", b'{"q": "x", "filter": ' + deep + b"}")
    assert r.status_code in (400, 422)
    r = client.get("/api/collections/col/search", params={"q": "x", "filter": "[" * 20_000})
    assert r.status_code in (400, 422) and "filter" in r.text
    r = send(client, "POST", "/api/collections/col/documents", b'[{"id": "d", "text": "t", "metadata": ' + deep + b"}]")
    assert r.status_code in (400, 413, 422)


# ---- schemathesis against the OpenAPI schema ------------------------------------------------
def test_openapi_schema_never_500(tmp_path):
    """~100 schemathesis cases spread over every operation in /openapi.json (with the API key)."""
    import schemathesis
    col = make_collection(tmp_path / "col")
    app = create_app({"col": col}, api_key=KEY, max_body_bytes=32 * 1024, max_batch=20)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 10
    seen = set()

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=st.one_of(*[op.as_strategy() for op in operations]), real_name=st.booleans())
    def run(case, real_name):
        if real_name and "name" in (case.path_parameters or {}):
            case.path_parameters["name"] = "col"
        seen.add((case.method, case.path))
        response = case.call(headers=AUTH)
        assert response.status_code < 500, (case.method, case.path, case.path_parameters, case.body, response.text)

    run()
    print(f"schemathesis exercised {len(seen)} of {len(operations)} operations")
    assert col.check() == []
    col.close()
