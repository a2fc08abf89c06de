"""Session 24 breaker (configuration surface): each test failed before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.codecs import make_codec
from slimvec.errors import ConfigError
from slimvec.profiles import profile_from_dict

DOCS = [Document(f"d{i}", f"text number {i} about apples and pears w{i % 13} v{i % 7} u{i % 5}") for i in range(300)]


# ---- codec specs: numbers are ASCII digits in the stage's range ----------------------------------
@pytest.mark.parametrize("spec, needle", [
    ("pq:4_8", "pq sub-quantizers M"),  # int() read 48: a typo of 4x8 became 48 sub-quantizers
    ("pq:+48", "pq sub-quantizers M"),
    ("pq:٣", "pq sub-quantizers M"),  # Arabic-Indic three
    ("pq:48x٨", "pq bits"),
    ("pq:48x", "pq bits"),  # a trailing x took the default 8 bits
    ("pq:48.0", "pq sub-quantizers M"),
    ("rbinary:٢", "rbinary bits"),
    ("truncate:1_28", "truncate dimension"),
    ("pca:١٩٢ > float8", "pca dimension"),
    ("rotate:-5 > int8", "rotate seed"),  # passed the spec check, then failed every fit
    ("residual:٥١٢:2", "residual centroids"),
])
def test_codec_spec_numbers_are_ascii_digits_in_range(spec, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        make_codec(spec)
    assert "\n" not in str(e.value) and "got" in str(e.value)
    with pytest.raises(ConfigError, match="codec"):
        profile_from_dict({"name": "p", "codec": spec})


@pytest.mark.parametrize("spec", ["pq:4x8", "pq:16", "rbinary:2:rotate", "truncate:16 > int8", "pca:16 > float8",
                                  "rotate:3 > int8", "rotate > binary", "pq: 8"])
def test_codec_specs_written_in_digits_still_parse(spec):
    make_codec(spec)


def test_negative_rotation_seed_no_longer_leaves_the_collection_uncompressed(tmp_path):
    # Before: "rotate:-5 > int8" made the collection, every fit then raised numpy's ValueError (swallowed as "too
    # few rows"), and search stayed float32 for good, at float32's RAM.
    with pytest.raises(ConfigError, match="rotate seed"):
        Collection.create(tmp_path / "c", profile={"name": "p", "codec": "rotate:-5 > int8"}, encoder=FakeEncoder())
    assert not (tmp_path / "c").exists()
    with Collection.create(tmp_path / "ok", profile={"name": "p", "codec": "rotate:5 > int8"},
                           encoder=FakeEncoder()) as col:
        col.add(DOCS)
        assert col.info()["ram_bytes_per_doc"] < 32 * 4  # int8 codes, not float32 rows


# ---- profiles: strict types, one line naming the field and the value --------------------------------
@pytest.mark.parametrize("field, value, extra", [
    ("nprobe", "8", {"codec": "binary", "index": "ivf"}),  # lax mode read it as 8
    ("nprobe", True, {"codec": "binary", "index": "ivf"}),  # ... and this as 1
    ("oversample", 1.0, {}),
    ("compact_threshold", "0.3", {}),
    ("compact_threshold", True, {}),  # read as 1.0: compact only when every row is dead
    ("target_recall", "0.9", {}),
    ("rescore", "yes", {"codec": "binary"}),
    ("rescore", "off", {"codec": "binary"}),  # read as False
    ("rescore", 1, {"codec": "binary"}),
    ("contextual_prefix", "1", {}),
    ("chunk_overlap", False, {}),
    ("fusion_weights", ["0.3", "0.7"], {"retrievers": ["dense", "bm25"], "mode": "hybrid"}),
    ("fusion_weights", [True, False], {"retrievers": ["dense", "bm25"], "mode": "hybrid"}),
    ("fusion_temperature", "2", {}),
    ("ef_search", "64", {"index": "hnsw"}),
])
def test_profile_values_of_the_wrong_type_are_refused_not_coerced(field, value, extra):
    with pytest.raises(ConfigError) as e:
        profile_from_dict({"name": "p", **extra, field: value}, source="my.json")
    msg, shown = str(e.value), value[0] if isinstance(value, list) else value  # a list names its bad item
    assert msg.startswith(f"my.json: {field}") and msg.endswith(f"got {shown!r}") and "\n" not in msg, msg


@pytest.mark.parametrize("field", ["target_recall", "compact_threshold", "late_weight", "fusion_temperature",
                                   "token_pool"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_profile_nan_and_infinity_are_named_as_such(field, value):
    with pytest.raises(ConfigError, match=f"{field}: Input should be a finite number, got {value!r}"):
        profile_from_dict({"name": "p", field: value})


def test_profiles_as_json_and_numpy_give_them_still_load(tmp_path):
    prof = profile_from_dict({"name": "p", "retrievers": ["dense", "bm25"], "mode": "hybrid",
                              "fusion_weights": [np.float32(0.5), 1], "oversample": np.int64(4),
                              "target_recall": 1, "codec": "binary", "rescore": np.bool_(True)})
    assert prof.fusion_weights == (0.5, 1.0) and prof.oversample == 4 and prof.rescore is True
    assert prof.target_recall == 1.0
    for name in ("exact-f32", "hybrid-multivector", "binary-ivf-rescore", "multivector-muvera", "bm25-cjk"):
        from slimvec.profiles import BUILTIN

        dumped = json.loads(json.dumps(BUILTIN[name].model_dump(mode="json")))  # as a manifest stores it
        assert profile_from_dict(dumped) == BUILTIN[name]


# ---- retrievers named twice; token vectors no retriever reads ---------------------------------------
@pytest.mark.parametrize("retrievers", [["dense", "dense"], ["dense", "bm25", "bm25"], ["bm25", "bm25"]])
def test_a_retriever_named_twice_is_refused_before_anything_is_written(tmp_path, retrievers):
    # Before: the manifest kept the list as written (["dense", "dense"]) and every sync ran the retriever twice.
    twice = retrievers[-1]
    with pytest.raises(ConfigError, match=f"retriever {twice!r} is named twice"):
        Collection.create(tmp_path / "c", retrievers=retrievers, encoder=FakeEncoder())
    with pytest.raises(ConfigError, match=f"retrievers: .*retriever {twice!r} is named twice"):
        profile_from_dict({"name": "p", "retrievers": retrievers, "mode": retrievers[0]})
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("extra", [{}, {"retrievers": ["dense", "bm25"], "mode": "hybrid"},
                                   {"tokens": "int8", "token_rescore": 5}])
def test_token_vectors_without_a_retriever_to_read_them_are_refused(tmp_path, extra):
    # Before: a token file (40x the dense rows here) was written at every add and never read.
    profile = {"name": "p", "tokens": "float16", **extra}
    with pytest.raises(ConfigError, match=r"tokens '(float16|int8)' keeps token vectors for the multivector "
                                          r"retriever, which this profile's retrievers \(dense(, bm25)?\) lack"):
        Collection.create(tmp_path / "c", profile=profile, encoder=FakeEncoder())
    assert not (tmp_path / "c").exists()
    ok = {**profile, "retrievers": ["dense", "multivector"], "mode": "multivector"}
    ok.pop("fusion_weights", None)
    with Collection.create(tmp_path / "mv", profile=ok, encoder=FakeEncoder()) as col:
        col.add(DOCS[:20])
        assert [h.id for h in col.search("apples w3", k=1)]


def test_collections_recorded_before_these_rules_still_open_and_validate(tmp_path):
    from slimvec.profiles import recorded_profile

    old = {"name": "p", "retrievers": ["dense", "bm25", "bm25"], "mode": "hybrid", "tokens": "float16"}
    prof = recorded_profile(old, {"max_tokens": 64, "overlap": 32, "mode": "tokens"})
    assert prof.retrievers == ("dense", "bm25") and prof.tokens is None
    with Collection.create(tmp_path / "c", retrievers=["dense", "bm25"], encoder=FakeEncoder()) as col:
        col.add(DOCS[:30])
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["retrievers"] = manifest["profile"]["retrievers"] = ["dense", "bm25", "bm25"]  # as written before
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert len(col.search("apples w3", k=3, mode="hybrid")) == 3


@pytest.mark.parametrize("retrievers, needle", [
    ("dense", "retrievers must be a list of names, e.g. \\['dense', 'bm25'\\], not one string 'dense'"),
    ([], "at least one retriever is needed"),  # was taken as "not given": the profile's retrievers, silently
])
def test_create_retrievers_must_be_a_list_naming_one_at_least(tmp_path, retrievers, needle):
    with pytest.raises(ConfigError, match=needle):
        Collection.create(tmp_path / "c", profile="hybrid", retrievers=retrievers, encoder=FakeEncoder())
    assert not (tmp_path / "c").exists()


# ---- HTTP: one status per kind of error --------------------------------------------------------------
def test_http_an_add_of_a_stored_id_is_a_409_conflict_and_stores_nothing(keyed_client):
    from _server_util import AUTH, snapshot

    c, col = keyed_client
    before = snapshot(col)
    r = c.post("/api/collections/col/documents", json=[{"id": "new", "text": "fresh"}, {"id": "d1", "text": "x"}],
               headers=AUTH)
    assert r.status_code == 409 and "'d1' (position 1) is already stored" in r.json()["detail"], r.text
    assert snapshot(col) == before
    r = c.post("/api/collections/col/documents", json=[{"id": "z", "text": "a"}, {"id": "z", "text": "b"}],
               headers=AUTH)
    assert r.status_code == 400, r.text  # the request's own repeat: not a conflict with what is stored
    r = c.post("/api/collections/col/documents?upsert=true", json=[{"id": "d1", "text": "replaced"}], headers=AUTH)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body, field", [
    ({"q": "bone", "mode": "hybridd"}, "mode"),  # was 400, where mode "BM25" and fusion "rfr" were 422
    ({"q": "bone", "with_payload": "no"}, "with_payload"),  # was read as false
    ({"q": "bone", "with_payload": 0}, "with_payload"),
    ({"q": "bone", "mode": "dense", "fusion_weights": ["1"]}, "fusion_weights"),
    ({"q": "bone", "fusion_temperature": "2"}, "fusion_temperature"),
])
def test_http_search_values_no_collection_takes_are_422_naming_the_field(keyed_client, body, field):
    c, _ = keyed_client
    r = c.post("/api/collections/col/search", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", field]
    r = c.post("/api/collections/col/search", json={"q": "bone", "mode": "bm25"})
    assert r.status_code == 400 and "does not keep" in r.json()["detail"]  # this collection's limit: 400


def test_http_get_search_mode_and_temperature_as_post(keyed_client):
    c, _ = keyed_client
    r = c.get("/api/collections/col/search", params={"q": "bone", "mode": "hybridd"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "mode"], r.text
    r = c.get("/api/collections/col/search", params={"q": "bone", "mode": "hybrid", "fusion_temperature": "nan"})
    assert r.status_code == 422 and "finite" in r.json()["detail"][0]["msg"], r.text


@pytest.mark.parametrize("path, body", [
    ("tune", {"reset": "true"}),  # was read as true: the stored queries forgotten
    ("field-indexes", {"fields": ["year"], "drop": "yes"}),
])
def test_http_write_flags_are_json_booleans(keyed_client, path, body):
    from _server_util import AUTH

    c, _ = keyed_client
    r = c.post(f"/api/collections/col/{path}", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "bool_type", r.text


def test_python_search_options_are_strict_too(tmp_path):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as col:
        col.add(DOCS[:10])
        with pytest.raises(ConfigError, match="with_payload: Input should be a valid boolean, got 'no'"):
            col.search("apples", with_payload="no")
        with pytest.raises(ConfigError, match="unknown search mode 'hybridd'"):
            col.search("apples", mode="hybridd")
        assert col.search("apples", k=2, with_payload=np.bool_(False))


# ---- slimvec plan: a budget is a finite number of bytes -------------------------------------------------
@pytest.mark.parametrize("budget", [float("inf"), float("nan"), 0, -1.0, "200", True])
def test_plan_refuses_a_budget_that_is_not_a_finite_positive_number_before_reading_anything(tmp_path, budget):
    from slimvec.evaluation.planner import plan

    # before: inf evaluated every candidate and chose "within inf RAM bytes/doc"; no dataset is read first here
    with pytest.raises(ConfigError, match="--max-ram-bytes-per-doc must be a finite number > 0"):
        plan(tmp_path / "no-such-dataset", budget)
