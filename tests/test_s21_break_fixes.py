"""Faults found breaking bb79bc4 (a static model's fusion weight kept as the manifest's model_fusion_weight)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEncoder, StaticLikeEncoder, registered_encoders
from test_model_fusion_weight import _docs, _scores

from slimvec import Collection
from slimvec.encoders.static import STATIC_FUSION_WEIGHT
from slimvec.profiles import load_profile

STATIC = "fake-static"



def _beir(root: Path, n: int = 12) -> Path:
    data = root / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in _docs(n)))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "river water"}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return data


def _drop_model_weight(path: Path) -> None:
    m = json.loads((path / "manifest.json").read_text())
    del m["model_fusion_weight"]
    (path / "manifest.json").write_text(json.dumps(m))


# Before: the preflight took a collection with build.json as built and skipped reading the corpus, but `build` then
# rebuilt it (it lacked the model's weight): the cached collection was deleted first, and a bad corpus record was
# met only in the middle of the rebuild, leaving a half-built collection in its place.
def test_eval_checks_the_corpus_before_rebuilding_a_collection_that_lacks_the_models_weight(tmp_path):
    from slimvec.errors import IngestError
    from slimvec.evaluation.runner import run_eval

    data = _beir(tmp_path)
    with registered_encoders(StaticLikeEncoder(dim=32, name=STATIC)):
        profile = load_profile("hybrid").model_copy(update={"model": STATIC})
        path = Path(run_eval(data, profile, out=tmp_path / "out")["collection"])
        _drop_model_weight(path)
        with open(data / "corpus.jsonl", "a") as f:
            f.write("{not json\n")
        with pytest.raises(IngestError, match=r"corpus.jsonl:13"):
            run_eval(data, profile, out=tmp_path / "out")
        assert (path / "build.json").exists()  # the cached collection is left as it was
        with Collection.open(path) as col:
            assert len(col) == 12


# Before: a cached collection of a profile whose searches fuse nothing (exact-f32: dense only) was re-encoded whole
# because its manifest lacked the model's weight, which none of its evaluation's searches would use.
def test_eval_reuses_a_collection_whose_mode_does_not_fuse_with_the_models_weight(tmp_path):
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.runner import build, collection_dir

    data = _beir(tmp_path)
    with registered_encoders(StaticLikeEncoder(dim=32, name=STATIC)):
        ds = load_dataset(data)
        for name, rebuilt in (("exact-f32", False), ("hybrid", True)):
            profile = load_profile(name).model_copy(update={"model": STATIC})
            path = collection_dir(tmp_path / "out", ds, profile)
            assert build(ds, profile, path, None, False)["reused"] is False
            _drop_model_weight(path)
            assert build(ds, profile, path, None, False)["reused"] is (not rebuilt)


# Before: a migration's target was created from the stored profile alone, so BM25 (or SPLADE) enabled after the
# collection was made was gone after the switch, and `--mode hybrid`, which fused with the model's weight before,
# failed ("needs the bm25 index").
@pytest.mark.parametrize("old, new", [("fake-tr", STATIC), (STATIC, "fake-tr")])
def test_a_migration_keeps_the_retrievers_enabled_after_creation(tmp_path, old, new):
    from slimvec.migrate.runner import migrate

    with registered_encoders(StaticLikeEncoder(dim=32, name=STATIC), FakeEncoder(dim=24, name="fake-tr")):
        path = tmp_path / "col"
        with Collection.create(path, profile="exact-f32", model=old) as col:
            col.add(_docs(60))
            col.enable("bm25")
        migrate(path, new, sample=40, batch=16, fit_only=True)
        with Collection.open(path) as col:
            assert col.target.manifest["retrievers"] == ["dense", "bm25"]
            during = _scores(col, mode="hybrid")  # answered by the old collection until the switch
        migrate(path, new, sample=40, batch=16)
        with Collection.open(path) as col:
            assert col.manifest["model"] == new and col.manifest["retrievers"] == ["dense", "bm25"]
            after = _scores(col, mode="hybrid")
            assert [[i for i, _ in q] for q in after] and after != during
            if new == STATIC:
                assert after == _scores(col, mode="hybrid", fusion_weights=[STATIC_FUSION_WEIGHT, 1.0])
            assert _every_bm25_score(col) == _bm25_alone(tmp_path / "fresh", new)  # an index of every document


def _every_bm25_score(col) -> list[list[tuple[str, float]]]:
    # every document scored, sorted by id: the migration stores its sample first, so ties break in another order
    hits = col.search_many(["river water", "topic 3 stone"], k=60, mode="bm25", rerank="none")
    return [sorted((h.id, round(float(h.score), 6)) for h in q) for q in hits]


def _bm25_alone(path: Path, model: str) -> list[list[tuple[str, float]]]:
    with Collection.create(path, profile="exact-f32", model=model) as col:
        col.add(_docs(60))
        col.enable("bm25")
        return _every_bm25_score(col)


# Before: an export carried the profile but not the retrievers enabled after creation, so an import of an exact-f32
# collection that had enabled BM25 came back without it: `--mode hybrid` (fused with the model's weight) failed.
@pytest.mark.parametrize("kind", ["parquet", "lancedb", "qdrant"])
def test_an_export_round_trip_keeps_the_retrievers_enabled_after_creation(tmp_path, kind):
    from slimvec.interop.rows import export_collection, import_records

    with registered_encoders(StaticLikeEncoder(dim=32, name=STATIC)):
        with Collection.create(tmp_path / "col", profile="exact-f32", model=STATIC) as col:
            col.add(_docs(40))
            col.enable("bm25")
            want = _scores(col, mode="hybrid")
            target = f"{kind}:{tmp_path / 'export'}" + (".parquet" if kind == "parquet" else "")
            export_collection(col, target)
        with import_records(target, tmp_path / "back") as col:
            assert col.manifest["retrievers"] == ["dense", "bm25"]
            assert col.manifest["model_fusion_weight"] == STATIC_FUSION_WEIGHT
            assert _scores(col, mode="hybrid") == want
        # a profile given to the import is taken as it is: it names the retrievers
        with import_records(target, tmp_path / "given", profile="exact-f32") as col:
            assert col.manifest["retrievers"] == ["dense"]


# Before: the new manifest field was not checked: a damaged value failed every hybrid search with a bare ValueError
# or TypeError naming no file, or (true) fused at [1.0, 1.0] without a word.
@pytest.mark.parametrize("bad", ["abc", [0.2], True, -1.0])
def test_a_damaged_model_fusion_weight_is_named_when_the_collection_opens(tmp_path, bad):
    from slimvec.distributed import create_sharded
    from slimvec.errors import CollectionError

    enc = StaticLikeEncoder(dim=32, name=STATIC)
    with Collection.create(tmp_path / "col", profile="hybrid", encoder=enc) as col:
        col.add(_docs(20))
    create_sharded(tmp_path / "sharded", shards=2, profile="hybrid", encoder=enc).close()
    for manifest in (tmp_path / "col" / "manifest.json", tmp_path / "sharded" / "shards.json"):
        m = json.loads(manifest.read_text())
        m["model_fusion_weight"] = bad
        manifest.write_text(json.dumps(m))
        with pytest.raises(CollectionError, match=rf"{manifest.name}.*'model_fusion_weight' must be a finite number"):
            Collection.open(manifest.parent, enc)


# Before: a collection of session 20 (the model's [0.2, 1.0] kept in its profile, fusion_weights_from_model) used
# them as profile weights for any fuser, so `fusion="weighted"` min-max fused with the weights measured for
# softmax, while the same collection made today fuses weighted at equal weights.
def test_a_session_20_collection_fuses_as_one_made_today(tmp_path):
    enc = StaticLikeEncoder(dim=32, name=STATIC)
    hybrid = load_profile("hybrid").model_copy(update={"name": "mine"})
    for name in ("today", "s20"):
        with Collection.create(tmp_path / name, profile=hybrid, encoder=enc) as col:
            col.add(_docs(40))
    manifest = tmp_path / "s20" / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["model_fusion_weight"]
    m["profile"]["fusion_weights"] = [STATIC_FUSION_WEIGHT, 1.0]
    m["fusion_weights_from_model"] = True
    manifest.write_text(json.dumps(m))
    with Collection.open(tmp_path / "today", enc) as today, Collection.open(tmp_path / "s20", enc) as s20:
        assert s20.info()["fusion"] == today.info()["fusion"]
        for options in ({}, {"fusion": "softmax"}, {"fusion": "weighted"}, {"fusion": "rrf"},
                        {"fusion": "weighted", "fusion_weights": [0.5, 1.0]}):
            assert _scores(s20, **options) == _scores(today, **options), options
        assert _scores(s20, fusion="weighted") == _scores(s20, fusion="weighted", fusion_weights=[1.0, 1.0])
    Collection.open_or_create(tmp_path / "s20", profile=hybrid, encoder=enc).close()  # still its settings


# Before: the router of a sharded collection made by session 20 copied the model's weights into its profile without
# the mark its shards carry, so its searches too min-max fused fusion="weighted" with the softmax weights.
def test_a_session_20_sharded_collection_fuses_as_one_made_today(tmp_path):
    from slimvec.distributed import create_sharded

    enc = StaticLikeEncoder(dim=32, name=STATIC)
    for name in ("today", "s20"):
        with create_sharded(tmp_path / name, shards=2, profile="hybrid", encoder=enc) as col:
            col.add(_docs(40))
    root = tmp_path / "s20"
    for manifest in [root / "shards.json", *sorted(root.glob("shards/*/manifest.json"))]:
        m = json.loads(manifest.read_text())
        del m["model_fusion_weight"]
        m["profile"]["fusion_weights"] = [STATIC_FUSION_WEIGHT, 1.0]
        if manifest.name == "manifest.json":  # session 20 marked the shards' weights, not the router's
            m["fusion_weights_from_model"] = True
        manifest.write_text(json.dumps(m))
    with Collection.open(tmp_path / "today", enc) as today, Collection.open(root, enc) as s20:
        assert s20.info()["fusion"] == today.info()["fusion"]
        for options in ({}, {"fusion": "weighted"}, {"fusion": "rrf"}):
            assert _scores(s20, **options) == _scores(today, **options), options
