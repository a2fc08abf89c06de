"""One search plan: the profile's mode by default everywhere, options validated once, the one registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEncoder
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from slimvec import Collection, Document, registry
from slimvec.cli import app as cli_app
from slimvec.errors import ConfigError
from slimvec.profiles import BUILTIN, register_profile
from slimvec.search import SearchOptions, make_plan, modes
from slimvec.search.plan import retrievers_for
from slimvec.server import create_app

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "corpus.jsonl"
QUERY = "vitamin D and bone fractures"


def _sample_docs() -> list[Document]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Document(r["_id"], r["text"], r.get("title", ""), r.get("metadata", {})) for r in rows]


# ---- item 1: the profile's mode is the default -----------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_builtin_profile_searches_without_a_mode(tmp_path, name):
    profile = BUILTIN[name]
    with Collection.create(tmp_path / "c", profile=name, encoder=FakeEncoder(dim=384)) as col:
        # ten of them about vitamins; the sparse profiles run the real SPLADE model, so they get 12 (seven on vitamins)
        col.add(_sample_docs()[8:20] if "sparse" in profile.retrievers else _sample_docs()[:24])
        hits = col.search(QUERY, k=5)
        assert hits, f"{name}: no hits without a mode"
        explicit = col.search(QUERY, k=5, mode=profile.mode)
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in explicit]
        assert any("vitamin" in (h.title + h.snippet).lower() for h in hits)


def test_a_collection_without_dense_vectors_never_runs_the_dense_model(tmp_path):
    """BM25 keeps no dense vectors: adds, upserts and searches must not pay for the model (they once encoded every
    chunk and threw the vectors away)."""
    enc = FakeEncoder(dim=384)
    with Collection.create(tmp_path / "c", profile="bm25", encoder=enc) as col:
        col.add(_sample_docs()[:10])
        col.upsert(_sample_docs()[5:14])
        hits = col.search(QUERY, k=3)
        assert hits and any("vitamin" in (h.title + h.snippet).lower() for h in hits)
        assert col.info()["documents"] == 14
    assert enc.calls == 0


@pytest.fixture(scope="module")
def bm25_collection(tmp_path_factory) -> Path:
    """A real BM25-only collection of the bundled sample, built through the CLI as a user would."""
    path = tmp_path_factory.mktemp("bm25") / "c"
    res = CliRunner().invoke(cli_app, ["index", str(SAMPLE), "-c", str(path), "--profile", "bm25"])
    assert res.exit_code == 0, res.output
    return path


def test_cli_search_uses_the_profile_mode(bm25_collection):
    res = CliRunner().invoke(cli_app, ["search", str(bm25_collection), "vitamin", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert hits and all("vitamin" in (h["title"] + h["snippet"]).lower() for h in hits[:3])
    res = CliRunner().invoke(cli_app, ["search", str(bm25_collection), "vitamin", "--mode", "dense"])
    assert res.exit_code == 2 and "needs the dense index" in res.stderr


def test_http_get_post_and_page_data_use_the_profile_mode(bm25_collection):
    with Collection.open(bm25_collection) as col:
        client = TestClient(create_app({"c": col}))
        got = client.get("/api/collections/c/search", params={"q": "vitamin", "k": 3})
        assert got.status_code == 200, got.text
        assert got.json()["mode"] == "bm25" and got.json()["hits"]
        posted = client.post("/api/collections/c/search", json={"q": "vitamin", "k": 3})
        assert posted.status_code == 200 and posted.json()["hits"] == got.json()["hits"]
        listing = client.get("/api/collections").json()["collections"][0]
        assert listing["mode"] == "bm25" and listing["modes"] == ["bm25"]  # what the web page starts on


# ---- item 2: options declared once, plans checked before any query is scored ------------------------------
def test_options_are_validated_once_with_the_field_named():
    with pytest.raises(ConfigError, match="^k: "):
        SearchOptions.of(k=0)
    with pytest.raises(ConfigError, match="^min_relevance: .*'auto'"):
        SearchOptions.of(min_relevance="sometimes")
    with pytest.raises(ConfigError, match="^fusion_weights: .*>= 0"):
        SearchOptions.of(fusion_weights=[0.5, -1])
    with pytest.raises(ConfigError, match="^fusion_weights: .*at least one weight must be > 0"):
        SearchOptions.of(fusion_weights=[0, 0.0])
    with pytest.raises(ConfigError, match="^fusion_weights applies to fused modes"):  # one ranking: nothing to fuse
        make_plan({}, ["dense"], 384, SearchOptions.of(fusion_weights=[2.0]))
    with pytest.raises(ConfigError, match="unknown search option 'top_k'"):
        SearchOptions.of(top_k=3)
    assert SearchOptions.of(min_relevance=0.25).min_relevance == 0.25
    with pytest.raises(ConfigError, match="^min_relevance: .*the string '0.25'"):  # strict: text is the CLI's to convert
        SearchOptions.of(min_relevance="0.25")
    assert SearchOptions.of(SearchOptions.of(k=7), mode="bm25").k == 7


def test_the_server_schema_is_the_search_options():
    # The HTTP body model adds only the query text to the one declaration of the options.
    from slimvec.server.models import SearchIn

    assert set(SearchIn.model_fields) - set(SearchOptions.model_fields) == {"q"}
    assert SearchIn.model_fields["k"].metadata == SearchOptions.model_fields["k"].metadata


def test_plan_resolves_profile_defaults_and_overrides():
    hybrid = BUILTIN["hybrid-weighted"].model_dump()
    plan = make_plan(hybrid, ["dense", "bm25"], 384, SearchOptions.of(k=5))
    assert (plan.mode, plan.retrievers, plan.fusion, plan.first_stage) == ("hybrid", ("dense", "bm25"), "weighted", 5)
    assert plan.depth == 100  # each ranking goes FUSION_DEPTH deep before fusion
    plan = make_plan(hybrid, ["dense", "bm25"], 384, SearchOptions.of(k=5, mode="bm25", rerank="dense",
                                                                        rerank_depth=30))
    assert (plan.retrievers, plan.fusion, plan.first_stage, plan.depth) == (("bm25",), None, 30, 30)
    assert plan.reranker is not None and plan.needs_query_vectors


@pytest.mark.parametrize("profile,available,dim,options,needle", [
    ({}, ["bm25"], 0, {"mode": "dense"}, "needs the dense index"),
    ({}, ["dense"], 384, {"mode": "semantic"}, "unknown search mode 'semantic'"),
    ({"mode": "hybrid"}, ["dense", "bm25"], 384, {"fusion": "borda"}, "unknown fusion 'borda'"),
    ({"mode": "hybrid"}, ["dense", "bm25"], 384, {"fusion": "weighted", "fusion_weights": [1.0]}, "1 fusion weights"),
    ({"mode": "hybrid"}, ["dense", "bm25"], 384, {"fusion_weights": [1.0, 1.0]}, "not rrf"),
    ({"mode": "bm25"}, ["bm25"], 0, {"rerank": "dense"}, "needs dense vectors"),
    ({}, ["dense"], 384, {"rerank": "dense", "min_relevance": 0.5}, "cannot be combined with reranking"),
    ({}, ["dense"], 384, {"fusion_weights": [1.0, 2.0, 3.0]}, "fusion_weights applies to fused modes .* mode 'dense'"),
])
def test_bad_plans_fail_before_any_query(profile, available, dim, options, needle):
    with pytest.raises(ConfigError, match=needle):
        make_plan(profile, available, dim, SearchOptions.of(**options))


def test_modes_follow_the_registered_retrievers():
    assert modes() == ["dense", "bm25", "hybrid", "hybrid-multivector", "hybrid-sparse", "multivector", "sparse"]
    assert modes(["dense", "bm25"]) == ["dense", "bm25", "hybrid"]
    assert modes(["dense", "bm25", "multivector"]) == ["dense", "bm25", "hybrid", "hybrid-multivector", "multivector"]
    assert retrievers_for("hybrid-sparse", ["dense", "sparse"]) == ("dense", "sparse")


# ---- item 4: one registry ------------------------------------------------------------------------------
def test_registry_names_every_builtin_part_and_loads_it():
    for kind in registry.kinds():
        for name in registry.names(kind):
            assert registry.load(kind, name) is not None, (kind, name)
    for name in registry.names("profile"):
        assert registry.load("profile", name).name == name  # the registry line points at the right profile


def test_registry_refuses_a_taken_name_and_unknown_names_say_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("retriever", "dense", "somewhere.else:build")
    with pytest.raises(ConfigError, match="already registered"):
        register_profile(BUILTIN["bm25"].model_copy(update={"description": "another"}))
    with pytest.raises(ConfigError, match="unknown fuser 'borda': choose one of rrf, weighted, softmax"):
        registry.load("fuser", "borda")


def test_a_new_retriever_is_one_registry_line(tmp_path):
    # A retriever from a test module: registered by name, it becomes a search mode with no other change.
    registry.register("retriever", "first-rows", "retriever_plugin:build")
    try:
        assert "first-rows" in modes()
        with Collection.create(tmp_path / "c", retrievers=["dense", "first-rows"], encoder=FakeEncoder()) as col:
            col.add(_sample_docs()[:5])
            hits = col.search(QUERY, k=3, mode="first-rows")
            assert [h.id for h in hits] == [d.id for d in _sample_docs()[:3]]
    finally:
        registry.unregister("retriever", "first-rows")


def test_a_profile_that_names_only_its_retrievers_searches_what_it_keeps(tmp_path):
    # A profile file {"retrievers": ["bm25"]} keeps the mode field's default, "dense", which the collection cannot
    # run: a search naming no mode must run BM25, not fail with "mode 'dense' needs the dense index".
    plan = make_plan({"mode": "dense", "retrievers": ["bm25"]}, ["bm25"], 0, SearchOptions.of())
    assert (plan.mode, plan.retrievers) == ("bm25", ("bm25",))
    plan = make_plan({"mode": "hybrid"}, ["dense", "bm25"], 384, SearchOptions.of())  # a mode it can run stays
    assert plan.mode == "hybrid"
    with Collection.create(tmp_path / "c", retrievers=["bm25"], encoder=FakeEncoder(max_tokens=256)) as c:
        c.add([Document("a", "cats sit on mats"), Document("b", "dogs run in parks")])
        assert [h.id for h in c.search("cats")] == ["a"]
    with pytest.raises(ConfigError, match="mode 'dense' needs the dense index"):  # asked for by name: refused
        make_plan({"mode": "dense"}, ["bm25"], 0, SearchOptions.of(mode="dense"))


def test_the_mode_help_names_every_search_mode():
    # The CLI's --mode help and the HTTP schema read this description; it once left out the multi-vector modes.
    from slimvec.search.options import SearchOptions
    from slimvec.search.plan import modes

    named = SearchOptions.model_fields["mode"].description.split(":", 1)[1].split("(")[0]
    assert sorted(m.strip() for m in named.split("|")) == sorted(modes())
