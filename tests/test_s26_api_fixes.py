"""Session 26 API fixes (collection API, CLI, HTTP server, profiles); each test fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest
from _migration_util import migrating_beside_copy
from _server_util import make_collection
from fakes import FakeEncoder, registered_encoders
from fastapi.testclient import TestClient

from slimvec import Collection
from slimvec.documents import Document
from slimvec.errors import ConfigError
from slimvec.migrate import runner
from slimvec.migrate.merged import MigratingCollection
from slimvec.profiles import profile_from_dict, recorded_profile
from slimvec.search.options import SearchOptions
from slimvec.server import create_app

OLD, NEW = "fake-bow", "fake-bow-rolled"


class RolledEncoder(FakeEncoder):
    """Another model of the same dimension: the bag of words of FakeEncoder with its coordinates rotated, so its
    vectors scored against the old model's rows rank at random."""

    def _vec(self, text: str) -> np.ndarray:
        return np.roll(super()._vec(text), 11)


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"cells protein {i} cancer risk word{i % 7} other{i % 3} tag{i}") for i in range(n)]


# ---- 1. search_vectors during a migration names the model of its vectors ----------------------------------------
# A migration to a model of the same dimension took the new model's vectors as the old one's: scored against the
# old rows without a word (the dimension check could not tell them apart).
@pytest.fixture()
def same_dim_migration(tmp_path):
    old, new = FakeEncoder(dim=32, name=OLD), RolledEncoder(dim=32, name=NEW)
    with migrating_beside_copy(tmp_path, old, new, _docs(60)) as (col, before):
        yield col, before, old, new


def test_search_vectors_of_equal_dimensions_during_a_migration_must_name_their_model(same_dim_migration):
    col, _, _, new = same_dim_migration
    v = new.encode_queries(["cells protein"])
    with pytest.raises(ConfigError, match=rf"search_vectors during the migration from '{OLD}' to '{NEW}': both "
                                          rf"models' vectors have dimension 32.*model='{OLD}'.*model='{NEW}'"):
        col.search_vectors(v, k=5)
    with pytest.raises(ConfigError, match=rf"model 'other' is neither the collection's \('{OLD}'\) nor"):
        col.search_vectors(v, k=5, model="other")


def test_search_vectors_scores_each_model_in_its_own_space(same_dim_migration):
    col, before, old, new = same_dim_migration
    for q in ("cells protein", "cancer risk word3", "other1 tag5"):
        vo, vn = old.encode_queries([q]), new.encode_queries([q])
        # the old model's: the old collection, whole until the switch
        got = [(h.id, h.score) for h in col.search_vectors(vo, k=8, model=OLD)[0]]
        assert got == [(h.id, h.score) for h in before.search_vectors(vo, k=8)[0]] and len(got) == 8
        # the new model's: the dense search through the migration, as a text search with those vectors runs it
        through = [(h.id, h.score) for h in col.search_vectors(vn, k=8, model=NEW)[0]]
        assert through == [(h.id, h.score) for h in col.search_many([q], vectors=vn, k=8, mode="dense",
                                                                   rerank="none", model=NEW)[0]]
        assert len(through) == 8 and np.isfinite([s for _, s in through]).all()
    with pytest.raises(ConfigError, match="must be the NEW model's"):
        col.search_vectors(np.ones((1, 16), np.float32), k=3, model=NEW)


def test_search_many_vectors_are_named_by_model_too(same_dim_migration):
    """The mirror of search_vectors: a plain collection's search_many(vectors=...) takes its own model's vectors and
    a migrating one the new model's, so old-model vectors of the same dimension were scored as the new model's."""
    col, before, old, new = same_dim_migration
    q = "cancer risk word3"
    vo, vn = old.encode_queries([q]), new.encode_queries([q])
    with pytest.raises(ConfigError, match=rf"^search_many during the migration from '{OLD}' to '{NEW}': both models' "
                                          r"vectors have dimension 32, .*name them: model="):
        col.search_many([q], vectors=vo, k=8, mode="dense")
    got = [(h.id, h.score) for h in col.search_many([q], vectors=vo, k=8, mode="dense", model=OLD)[0]]
    assert got == [(h.id, h.score) for h in before.search_many([q], vectors=vo, k=8, mode="dense")[0]]
    assert len(got) == 8
    through = [(h.id, h.score) for h in col.search_many([q], vectors=vn, k=8, mode="dense", model=NEW)[0]]
    assert through == [(h.id, h.score) for h in col.search_vectors(vn, k=8, model=NEW)[0]]
    with pytest.raises(ConfigError, match="is neither the collection's"):
        col.search_many([q], vectors=vo, k=8, model="bge-small-en-v1.5")
    with pytest.raises(ConfigError, match=r"^search_many: the query vectors are 'x''s"):
        before.search_many([q], vectors=vo, k=8, model="x")


def test_search_vectors_refuses_vectors_named_as_another_models(tmp_path):
    enc = FakeEncoder(dim=32, name=OLD)
    with registered_encoders(enc), Collection.create(tmp_path / "col", encoder=enc) as col:
        col.add(_docs(12))
        v = enc.encode_queries(["cells protein"])
        assert col.search_vectors(v, k=3, model=OLD) == col.search_vectors(v, k=3)
        with pytest.raises(ConfigError, match=rf"search_vectors: the query vectors are 'bge-small-en-v1.5''s, but this "
                                              rf"collection holds '{OLD}''s"):
            col.search_vectors(v, k=3, model="bge-small-en-v1.5")


# ---- 2. calibrate refuses before any search, also through a handle opened before the migration -----------------
# Only the migrating handle refused up front: a handle opened before `migrate` started (a long-lived Python session)
# ran every judged query's search, then heard at set_calibrator that writes are refused.
def test_calibrate_through_a_handle_opened_before_the_migration_refuses_before_any_search(tmp_path):
    from slimvec.errors import CollectionError
    from slimvec.evaluation.calibrate import fit_calibrator

    old, new = FakeEncoder(dim=32, name=OLD), RolledEncoder(dim=32, name=NEW)
    with registered_encoders(old, new):
        with Collection.create(tmp_path / "col", encoder=old) as col:
            col.add(_docs(40))
        with Collection.open(tmp_path / "col", encoder=old) as col:
            assert not isinstance(col, MigratingCollection)
            runner.start(tmp_path / "col", NEW, sample=20, encoder=new)
            queries = {f"q{i}": f"cells protein {i}" for i in range(5)}
            qrels = {q: {f"d{i}": 1} for i, q in enumerate(queries)}
            calls = old.calls
            with pytest.raises(CollectionError, match=f"a migration to '{NEW}' is under way; writes are refused"):
                fit_calibrator(col, queries, qrels, mode="dense")
            assert old.calls == calls  # no query was encoded, nothing searched
        assert not (tmp_path / "col" / "calibration.json").exists()


# ---- 4. strict numbers in a search body --------------------------------------------------------------------------
@pytest.fixture()
def client(tmp_path):
    col = make_collection(tmp_path / "col")
    with TestClient(create_app({"col": col}, api_key=None), raise_server_exceptions=False) as c:
        yield c
    col.close()


# The other numeric fields of the body (k, rerank_depth, fusion_weights, fusion_temperature) were strict already.
@pytest.mark.parametrize("value", ["0.5", "1", " .5", "1e-1"])
def test_a_search_body_refuses_min_relevance_sent_as_a_string(client, value):
    r = client.post("/api/collections/col/search", json={"q": "bone", "min_relevance": value})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "min_relevance"]


def test_min_relevance_takes_numbers_and_auto_and_its_text_only_from_the_cli_and_get(client):
    assert SearchOptions.of(min_relevance=0.5).min_relevance == 0.5
    assert SearchOptions.of(min_relevance=np.float32(0.25)).min_relevance == 0.25
    assert SearchOptions.of(min_relevance="AUTO").min_relevance == "auto"
    with pytest.raises(ConfigError, match=r"^min_relevance: .*the string '0.5' \(send the number itself"):
        SearchOptions.of(min_relevance="0.5")
    # a query parameter is text: GET converts it and reaches the search (no calibration: the same 400 as POST's)
    got = client.get("/api/collections/col/search", params={"q": "bone", "min_relevance": "0.5"})
    posted = client.post("/api/collections/col/search", json={"q": "bone", "min_relevance": 0.5})
    assert got.status_code == posted.status_code == 400 and "calibrat" in got.json()["detail"]
    bad = client.get("/api/collections/col/search", params={"q": "bone", "min_relevance": "half"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "min_relevance"]


# ---- 5. MUVERA without MaxSim stores no token vectors -------------------------------------------------------------
MUVERA_ONLY = {"name": "muvera-only", "tokens": "float16", "muvera": {"reps": 2, "ksim": 2, "dproj": 8}}


def test_a_muvera_profile_without_multivector_encodes_tokens_but_stores_none(tmp_path):
    enc = FakeEncoder(dim=32, name=OLD)
    with registered_encoders(enc), Collection.create(tmp_path / "col", profile=MUVERA_ONLY, encoder=enc) as col:
        col.add(_docs(20))
        col.upsert([Document("d3", "cells protein replaced text")])
        assert not (tmp_path / "col" / "tokens").exists()  # before: a token file grew at every add, never read
        assert col.info()["dim"] == 2 * 4 * 8  # the dense vectors are still FDEs of the tokens
        assert col.search("cells protein 5", k=3)[0].id == "d5"
        assert col.compact()["compacted"] and col.check() == []
        assert not (tmp_path / "col" / "tokens").exists()
    with registered_encoders(enc), pytest.raises(ConfigError, match="token_rescore 8 is never used by this "
                                                                    "profile: it applies to the multivector retriever"):
        Collection.create(tmp_path / "rescored", profile={**MUVERA_ONLY, "tokens": "int8", "token_rescore": 8},
                          encoder=enc)
    assert not (tmp_path / "rescored").exists()


# ---- 6. invalid UTF-8 in a URL is refused, not decoded into another text ------------------------------------------
# The path and query checks for lone surrogates could never fire (the URL decoding turns such bytes into U+FFFD): a
# document id or page offset became another text without a word (a 404 naming an id nobody sent, an empty page).
@pytest.mark.parametrize("method,url,where", [
    ("GET", "/api/collections/col/documents/%ED%A0%80", "path"),
    ("DELETE", "/api/collections/col/documents/d%ED%A0%801", "path"),
    ("GET", "/api/collections/col/documents?offset=%ED%B0%80", "query: parameter 'offset'"),
    ("GET", "/api/collections/col/search?q=bone%FF", "query: parameter 'q'"),
])
def test_invalid_utf8_in_the_url_is_a_422_naming_where(client, method, url, where):
    r = client.request(method, url)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{where}") and "not valid UTF-8" in r.json()["detail"]
    assert client.get("/api/collections/col/documents/d1").status_code == 200
    assert client.get("/api/collections/col/documents", params={"offset": "d2"}).json()["documents"][0]["id"] == "d2"


# ---- 8. settings a profile never reads are refused ----------------------------------------------------------------
@pytest.mark.parametrize("extra,field", [
    ({"oversample": 4}, "oversample"),
    ({"nprobe": 8}, "nprobe"),
    ({"nlist": 64, "index": "hnsw"}, "nlist"),
    ({"ef_search": 64}, "ef_search"),
    ({"target_recall": 0.9}, "target_recall"),
    ({"late_weight": 0.5}, "late_weight"),
    ({"maxsim_depth": 50}, "maxsim_depth"),
    ({"candidates": "bm25", "retrievers": ["dense", "bm25"], "mode": "hybrid"}, "candidates"),
    ({"token_pool": 2.0}, "token_pool"),
    ({"fusion": "rrf"}, "fusion"),
    ({"fusion_temperature": 1.0}, "fusion_temperature"),
    ({"compact_threshold": None, "compact_min_dead": 5}, "compact_min_dead"),
    ({"retrievers": ["bm25"], "mode": "bm25", "codec": "binary"}, "codec"),
])
def test_a_profile_setting_nothing_reads_is_refused_naming_it(tmp_path, extra, field):
    with pytest.raises(ConfigError, match=rf"^profile 'x': {field} .* is never used by this profile: it applies to "):
        Collection.create(tmp_path / "c", profile={"name": "x", **extra}, encoder=FakeEncoder())
    assert not (tmp_path / "c").exists()  # refused before anything is written


def test_settings_that_are_read_stay_allowed_and_recorded_ones_still_open(tmp_path):
    for n, prof in enumerate([{"name": "x", "codec": "binary", "rescore": True, "oversample": 4},
                              {"name": "x", "index": "hnsw", "ef_search": 64, "target_recall": 0.9},
                              {"name": "x", "retrievers": ["dense", "bm25"], "fusion": "rrf"},
                              {"name": "x", "bm25": {"k1": 1.2}}, {"name": "x", "rerank_depth": 20}]):
        Collection.create(tmp_path / f"c{n}", profile=prof, encoder=FakeEncoder()).close()
    # judged once the options apply: a profile file's fusion with the retrievers given beside it is read
    fused = profile_from_dict({"name": "x", "fusion": "rrf"})
    with Collection.create(tmp_path / "fused", profile=fused, retrievers=["dense", "bm25"], encoder=FakeEncoder()) as c:
        assert c.manifest["profile"]["fusion"] == "rrf"
    # a profile recorded before the refusal (a collection's manifest, an export) reads as what it did: the default
    kept = recorded_profile({"name": "x", "oversample": 4, "fusion": "rrf", "nprobe": 3}, None)
    assert (kept.oversample, kept.fusion, kept.nprobe) == (10, "softmax", None)
