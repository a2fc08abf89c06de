"""Faults found by session 21's second breaker in that session's changes, each with the behaviour it now has."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, registered_encoders

from slimvec import Collection, Document
from slimvec.errors import ConfigError

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _docs(n: int = 40) -> list[Document]:
    return [Document(f"d{i}", f"word{i} common river text {i % 3}") for i in range(n)]


# ---- search_many's `encoded` keyword (000fac7) ------------------------------------------------------
# Collection.search_many took `encoded=True` (the vectors are the query texts encoded by the caller, so a zero row
# finds nothing instead of being refused), but a sharded collection and a migrating one refused the keyword
# ("unknown search option 'encoded'"), so code written for one collection failed on them. And any truthy value
# passed: encoded="no" let a caller's zero vector through silently.
def test_a_sharded_collection_takes_encoded_as_a_plain_one(tmp_path):
    from slimvec.distributed import create_sharded

    enc = FakeEncoder()
    v = enc.encode_queries(["word3 common"])
    with Collection.create(tmp_path / "col", profile="hybrid", encoder=enc) as col:
        col.add(_docs())
        plain = col.search_many(["word3 common", "word4"], vectors=np.vstack([v, 0 * v]), encoded=True)
    sharded = create_sharded(tmp_path / "sh", shards=2, profile="hybrid", encoder=enc)
    try:
        sharded.add(_docs())
        got = sharded.search_many(["word3 common", "word4"], vectors=np.vstack([v, 0 * v]), encoded=True)
        assert [[h.id for h in q] for q in got] == [[h.id for h in q] for q in plain]
        with pytest.raises(ConfigError, match="^query vector 0 is all zeros"):  # not encoded: still refused
            sharded.search_many(["word3 common"], vectors=0 * v)
    finally:
        sharded.close()


def test_a_migrating_collection_takes_encoded_and_checks_vectors_it_cannot_use(tmp_path):
    from slimvec.migrate import runner
    from slimvec.migrate.merged import MigratingCollection
    from slimvec.search.rerank import DenseReranker

    with registered_encoders(FakeEncoder(dim=32, name="b2-32"), FakeEncoder(dim=48, name="b2-48")):
        with Collection.create(tmp_path / "col", model="b2-32", profile="hybrid") as col:
            col.add(_docs())
        runner.start(tmp_path / "col", "b2-48", adapter="procrustes", sample=20)
        with Collection.open(tmp_path / "col") as col:
            assert isinstance(col, MigratingCollection)
            v = FakeEncoder(dim=48).encode_queries(["word3 common"])
            assert col.search_many(["word3 common"], vectors=0 * v, encoded=True, mode="dense") == [[]]
            assert col.search_many(["word3 common"], vectors=v, encoded=True, mode="dense")[0]
            # hybrid is the old collection's search, which cannot use the new model's vectors; it dropped them
            # unchecked, so a zero or misshapen vector passed silently
            with pytest.raises(ConfigError, match="^query vector 0 is all zeros"):
                col.search_many(["word3 common"], vectors=0 * v, mode="hybrid")
            with pytest.raises(ConfigError, match=r"^search_many\(vectors=...\): query vectors of dimension 7 during "
                                                  r"the migration to 'b2-48'"):
                col.search_many(["word3 common"], vectors=np.ones((3, 7), np.float32), mode="hybrid")
            assert col.search_many(["word3 common"], vectors=v, mode="hybrid")[0][0].id == "d3"
            assert col.search_many(["word3 common"], vectors=v, mode="hybrid", rerank="dense")[0][0].id == "d3"
            assert col.search_many(["word3 common"], vectors=v, rerank=DenseReranker())[0][0].id == "d3"


@pytest.mark.parametrize("value", ["no", 1, None, "False"])
def test_encoded_must_be_a_bool(tmp_path, value):
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add(_docs())
        with pytest.raises(ConfigError, match=r"^encoded must be True or False, not "):
            col.search_many(["word3 common"], vectors=np.zeros((1, 32), np.float32), encoded=value)


# ---- benchmarks pass rerank_depth only where a reranker runs (b459025) ----------------------------------
# benchmarks/rerank_cross_encoder.py searched its first stage with rerank="none" and rerank_depth, which a search
# now refuses ("rerank_depth applies to reranking"): the benchmark failed on its first query.
class _FakeCrossEncoder:
    name = "fake-ce"
    needs_text = True
    needs_vectors = False

    def load(self) -> None:
        pass

    def score(self, query, candidates) -> np.ndarray:
        return np.arange(len(candidates.rows), dtype=np.float32)


def test_the_cross_encoder_benchmark_times_its_first_stage_without_a_rerank_depth(tmp_path, monkeypatch):
    from slimvec.search import rerank

    monkeypatch.setattr(rerank, "cross_encoder", lambda model=None: _FakeCrossEncoder())
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("b2_rerank_ce", BENCHMARKS / "rerank_cross_encoder.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "b2_rerank_ce", bench)
    spec.loader.exec_module(bench)
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add(_docs())
        rows = bench.time_uncached(col, ["word3 common"])
    assert [r[0] for r in rows] == [0, *bench.DEPTHS]


# ---- one resolved file is one document (b79f0bb): a file keeps its own name over a link to it ----------------
# In one folder, 'a.txt' -> 'b.txt' sorts first, so the walk read the file as 'a.txt' and passed 'b.txt' over. A
# collection indexed before the link was made held 'b.txt'; an upsert rerun after it stored 'a.txt' and skipped
# 'b.txt', whose stored text then never changed again, however the file was edited.
@pytest.mark.parametrize("ray", [False, True])
def test_a_file_in_a_folder_keeps_its_own_name_over_a_link_sorting_before_it(tmp_path, monkeypatch, ray, request):
    from typer.testing import CliRunner

    from slimvec.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "b.txt").write_text("original river text", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with registered_encoders(FakeEncoder(name="fake-b2")):
        if ray:
            request.getfixturevalue("ray_cluster")
            from slimvec.distributed.ingest import index

            def run() -> None:
                # Ray workers load the model themselves: a registered name of this process is not theirs
                index([docs], tmp_path / "col", workers=1, model="wordllama", on_skip=lambda _: None)
        else:
            def run() -> None:
                res = CliRunner().invoke(app, ["index", "docs", "-c", "col", "--model", "fake-b2"])
                assert res.exit_code == 0, res.output

        run()
        (docs / "a.txt").symlink_to("b.txt")
        (docs / "b.txt").write_text("edited mountain text", encoding="utf-8")
        run()
    with Collection.open(tmp_path / "col") as col:
        assert col.get("a.txt") is None and col.get("b.txt").text == "edited mountain text" and len(col) == 1


# ---- a profile's reranker is checked at create (86cc973): a bi-encoder directory must hold a model -----------
# bi-encoder:DIR passed the check when DIR existed at all (an empty folder, a cross-encoder's), so the collection
# was made and every search failed ("no sentence-transformers or model2vec model found"); a cross-encoder
# directory was already checked for its config.json.
@pytest.mark.parametrize("held", [{}, {"config.json": "{}"}])
def test_a_bi_encoder_reranker_directory_without_a_model_is_refused_at_create(tmp_path, held):
    model = tmp_path / "model"
    model.mkdir()
    for name, text in held.items():
        (model / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        Collection.create(tmp_path / "col", profile={"name": "m", "rerank": f"bi-encoder:{model}"}, encoder=FakeEncoder())
    assert str(e.value).startswith(f"rerank: {model}: no sentence-transformers or model2vec model found")
    assert not (tmp_path / "col").exists()


def test_a_bi_encoder_reranker_directory_with_a_model_still_creates_without_loading_it(tmp_path):
    model = tmp_path / "st"
    model.mkdir()
    (model / "modules.json").write_text("[]", encoding="utf-8")  # not loadable: only its kind is looked at
    with Collection.create(tmp_path / "col", profile={"name": "m", "rerank": f"bi-encoder:{model}"},
                           encoder=FakeEncoder()) as col:
        assert col.manifest["profile"]["rerank"] == f"bi-encoder:{model}"
