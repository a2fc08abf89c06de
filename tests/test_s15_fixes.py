"""Session 15: a metadata key holding a dot can be named in a filter (in double quotes, as in Qdrant's key paths);
a filter that names such a key unquoted says how to write it; LlamaIndex's flat keys are quoted for it."""

from __future__ import annotations

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import FilterError
from slimvec.store.filters import field_keys

DOCS = [
    Document("flat", "alpha text", metadata={"a.b": 2, "v1.2": "yes"}),
    Document("nested", "beta text", metadata={"a": {"b": 1}, "m": {"v1.2": {"x": 3}}}),
    Document("meta-id", "gamma text", metadata={"_id": "inner", "$x": 5}),
]


@pytest.fixture(scope="module")
def col(tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("dots") / "col", encoder=FakeEncoder())
    c.add(DOCS)
    yield c
    c.close()


def _ids(col, flt) -> set[str]:
    return {h.id for h in col.search("text", k=10, filter=flt)}


@pytest.mark.parametrize("flt,want", [
    ({'"a.b"': 2}, {"flat"}),                         # the one flat key a.b
    ({"a.b": 1}, {"nested"}),                         # unquoted: the path a -> b, as before
    ({'"v1.2"': "yes"}, {"flat"}),
    ({'m."v1.2".x': {"$gte": 3}}, {"nested"}),        # a quoted key inside a path
    ({'"a.b"': {"$exists": True}}, {"flat"}),
    ({'"a.b"': {"$ne": 2}}, {"nested", "meta-id"}),
    ({'"_id"': "inner"}, {"meta-id"}),                # quoted: the metadata key _id, not the document id
    ({"_id": "flat"}, {"flat"}),                      # unquoted: still the document id
    ({'"$x"': 5}, {"meta-id"}),                       # a key starting with $ is no operator once quoted
    ({"$or": [{'"a.b"': 2}, {"a.b": 1}]}, {"flat", "nested"}),
])
def test_quoted_keys_name_one_key(col, flt, want) -> None:
    assert _ids(col, flt) == want


@pytest.mark.parametrize("name,keys", [
    ("a", ["a"]), ("a.b", ["a", "b"]), ('"a.b"', ["a.b"]), ('x."y.z".w', ["x", "y.z", "w"]),
    ('"年份.v2"', ["年份.v2"]), ('"page count"', ["page count"]),
])
def test_field_keys(name, keys) -> None:
    assert field_keys(name) == keys


@pytest.mark.parametrize("name", ['"a', 'a"', '""', '"a"b', 'a."b', 'a..b', '"a\\b"', '"a\nb"', '"a"."', "."])
def test_malformed_quoted_paths_refused(col, name) -> None:
    with pytest.raises(FilterError, match="invalid field name"):
        col.search("text", filter={name: 1})


def test_unquoted_dotted_key_explains_the_quotes(col) -> None:
    with pytest.raises(FilterError, match=r"""'v1\.2'.*written "v1\.2\"""") as e:
        col.search("text", filter={"v1.2": "yes"})
    assert "\n" not in str(e.value)
    with pytest.raises(FilterError, match="misspelt"):  # no flat key of that name either: the old message
        col.search("text", filter={"q.r": 1})


def test_llama_index_filter_key_with_a_dot_is_one_key(col) -> None:
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    from slimvec.integrations.llama_index import to_slimvec_filter

    flt = to_slimvec_filter(MetadataFilters(filters=[MetadataFilter(key="a.b", value=2)]))
    assert _ids(col, flt) == {"flat"}
    plain = to_slimvec_filter(MetadataFilters(filters=[MetadataFilter(key="v1.2", value="yes"),
                                                       MetadataFilter(key="a.b", value=2)]))
    assert _ids(col, plain) == {"flat"}


# ---- an empty model name is refused, never read as the default model -------------------------------------------


@pytest.mark.parametrize("model", ["", "   "])
def test_create_refuses_an_empty_model_name(tmp_path, model) -> None:
    from slimvec.errors import ConfigError

    with pytest.raises(ConfigError, match="model: .*must name a model"):
        Collection.create(tmp_path / "c", model=model)
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_profile_file_with_an_empty_model_is_refused(tmp_path) -> None:
    from slimvec.errors import ConfigError
    from slimvec.profiles import load_profile

    f = tmp_path / "p.json"
    f.write_text('{"name": "mine", "model": ""}')
    with pytest.raises(ConfigError, match="model: .*must name a model"):
        load_profile(file=f)


def test_load_encoder_refuses_an_empty_name_but_none_is_the_default() -> None:
    from slimvec.encoders.registry import DEFAULT_MODEL, load_encoder
    from slimvec.errors import ConfigError

    with pytest.raises(ConfigError, match="model name is empty"):
        load_encoder("")
    assert load_encoder(None).name == DEFAULT_MODEL


def test_migrate_start_refuses_an_empty_target(col) -> None:
    from slimvec.errors import ConfigError
    from slimvec.migrate import runner
    from slimvec.migrate.state import migration_dir

    with pytest.raises(ConfigError, match="model name is empty"):
        runner.start(col.path, "")
    assert not migration_dir(col.path).exists()


# ---- HTTP bodies are parsed once, by the strict parser (the route class, not a second parse) --------------------


def test_http_repeated_key_at_any_depth_is_a_422_naming_it(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from slimvec.server import create_app, routes

    c = Collection.create(tmp_path / "c", encoder=FakeEncoder())
    c.add(DOCS)
    assert not hasattr(routes, "_unique_keys")  # the body is not parsed a second time by a dependency
    with TestClient(create_app({"c": c}), raise_server_exceptions=False) as http:
        body = '{"q": "text", "filter": {"\\"a.b\\"": 2, "\\"a.b\\"": 1}}'
        for kind in ("application/json", "application/json; charset=utf-8"):
            r = http.post("/api/collections/c/search", content=body, headers={"content-type": kind})
            assert r.status_code == 422 and "'\"a.b\"' appears twice" in r.json()["detail"], r.text
        ok = http.post("/api/collections/c/search", json={"q": "text", "filter": {'"a.b"': 2}})
        assert ok.status_code == 200 and [h["id"] for h in ok.json()["hits"]] == ["flat"]
        bad = http.post("/api/collections/c/search", content='{"q": "text",', headers={"content-type": "application/json"})
        assert bad.status_code == 422 and "JSON decode error" in bad.text  # malformed JSON: FastAPI's own answer
    c.close()


# ---- a PQ index searched with every row allowed takes faiss's scan, not the numpy table gathers -----------------


def _pq_index(seed: int, n: int, dim: int, spec: str):  # noqa: ANN202 - (CodecIndex, docs, codec)
    import warnings

    import numpy as np

    from slimvec.codecs import make_codec
    from slimvec.index.compressed import CodecIndex

    docs = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    codec = make_codec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few training rows for 2**bits centroids: the warning is expected
        codec.fit(docs)
    index = CodecIndex(codec, dim)
    index.add(docs)
    return index, docs, codec


def test_pq_search_with_every_row_allowed_scans_in_faiss(monkeypatch) -> None:
    """The retriever passes its alive mask on every search; an all-True mask used to send PQ (which faiss cannot
    filter) down the numpy ADC path, 10x slower at 1M rows (BENCHMARKS.md, Session 15)."""
    import numpy as np

    from slimvec.index.compressed import CodecIndex

    index, docs, codec = _pq_index(3, 600, 64, "pq:8x4")
    queries = docs[:4] + 0.1 * np.random.default_rng(4).standard_normal((4, 64)).astype(np.float32)
    free = index.search(queries, 10)
    scans: list[int] = []
    numpy_scan = CodecIndex._scan

    def counted(self, q, k, mask):  # noqa: ANN001, ANN202 - the real scan, counted
        scans.append(len(q))
        return numpy_scan(self, q, k, mask)

    monkeypatch.setattr(CodecIndex, "_scan", counted)
    everyone = index.search(queries, 10, np.ones(len(docs), bool))
    assert scans == []  # every row allowed: faiss's IndexPQ scan, as without a mask
    np.testing.assert_array_equal(everyone[1], free[1])
    np.testing.assert_array_equal(everyone[0], free[0])
    some = np.ones(len(docs), bool)
    some[free[1][:, 0]] = False  # each query's best row left out (deleted documents, say)
    # A few rows left out: faiss's scan over-fetches and drops them, the same rows and scores as without them.
    wider = index.search(queries, 10 + 4)
    vals, rows = index.search(queries, 10, some)
    assert scans == []
    for i in range(len(queries)):
        kept = ~np.isin(wider[1][i], free[1][:, 0])
        np.testing.assert_array_equal(rows[i], wider[1][i][kept][:10])
        np.testing.assert_array_equal(vals[i], wider[0][i][kept][:10])
    # More rows left out than the over-fetch takes (a real filter): the numpy path, which filters as it scans.
    import slimvec.index.compressed as compressed

    monkeypatch.setattr(compressed, "_PQ_OVERFETCH_SHARE", 0.001)  # 0.6 of 600 rows: 4 left out is too many
    vals, rows = index.search(queries, 10, some)
    assert scans == [4]
    assert not np.isin(rows, free[1][:, 0]).any()
    reference = codec.score(queries, index.codes)
    reference[:, ~some] = -np.inf
    np.testing.assert_allclose(vals, np.sort(reference, axis=1)[:, ::-1][:, :10], atol=1e-5)


def test_pq_search_leaving_out_rows_near_the_end_pads_as_before(monkeypatch) -> None:
    """k + left-out rows may exceed the index: the answer is padded with -1 rows, as a filtered scan pads it."""
    import numpy as np

    import slimvec.index.compressed as compressed

    monkeypatch.setattr(compressed, "_PQ_OVERFETCH_SHARE", 1.0)  # half the rows left out: still the over-fetch
    monkeypatch.setattr(compressed.CodecIndex, "_scan", None)  # which must not reach the numpy scan
    index, docs, _ = _pq_index(5, 20, 16, "pq:4x2")
    mask = np.ones(20, bool)
    mask[::2] = False  # 10 of 20 rows left out, k = 15: only 10 can come back
    vals, rows = index.search(docs[:2], 15, mask)
    assert rows.shape == (2, 15) and (rows[:, 10:] == -1).all() and np.isneginf(vals[:, 10:]).all()
    assert sorted(rows[0, :10]) == list(range(1, 20, 2))
