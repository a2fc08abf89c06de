"""A static model's declared weight for its dense ranking (`fusion_weight`) is kept in the manifest and applied by
the planner to every softmax fusion of dense + BM25 a search asks for, not only to the profile's own fused mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeEncoder, StaticLikeEncoder

from slimvec import Collection, Document
from slimvec.encoders.static import STATIC_FUSION_WEIGHT
from slimvec.profiles import load_profile

STATIC = "fake-static"



def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"document {i} about topic {i % 7} river {i * 3} water stone {i % 3}") for i in range(n)]


def _scores(col, **options) -> list[list[tuple[str, float]]]:
    hits = col.search_many(["river water", "topic 3 stone", "document 12"], k=8, rerank="none", **options)
    return [[(h.id, round(float(h.score), 6)) for h in q] for q in hits]


# Before: the weight was written into the profile at creation, so a dense-only collection (exact-f32) that enabled
# BM25 later fused `mode="hybrid"` at equal weights, as if the model had declared none.
def test_bm25_enabled_later_fuses_with_the_models_weight(tmp_path):
    enc = StaticLikeEncoder(dim=32, name=STATIC)
    with Collection.create(tmp_path / "col", profile="exact-f32", encoder=enc) as col:
        col.add(_docs(40))
        col.enable("bm25")
        assert col.manifest["model_fusion_weight"] == STATIC_FUSION_WEIGHT
        assert "fusion" not in col.info() and col.info()["model_fusion_weight"] == STATIC_FUSION_WEIGHT
        got = _scores(col, mode="hybrid", fusion="softmax")
        assert got == _scores(col, mode="hybrid", fusion="softmax", fusion_weights=[STATIC_FUSION_WEIGHT, 1.0])
        assert got != _scores(col, mode="hybrid", fusion="softmax", fusion_weights=[1.0, 1.0])
        # weights measured for softmax are not applied to another fuser
        assert _scores(col, mode="hybrid", fusion="weighted") == _scores(col, mode="hybrid", fusion="weighted",
                                                                        fusion_weights=[1.0, 1.0])


# The weight belongs to the model, not to the profile: a hybrid collection's profile keeps fusion_weights unset and
# its searches use the model's, which info() shows; a search's own weights still win.
def test_a_hybrid_profile_keeps_its_weights_unset_and_searches_with_the_models(tmp_path):
    enc = StaticLikeEncoder(dim=32, name=STATIC)
    with Collection.create(tmp_path / "col", profile="hybrid", encoder=enc) as col:
        col.add(_docs(40))
        assert col.manifest["profile"]["fusion_weights"] is None
        assert col.info()["fusion"] == {"mode": "hybrid", "method": "softmax", "weights": [STATIC_FUSION_WEIGHT, 1.0]}
        assert _scores(col) == _scores(col, fusion_weights=[STATIC_FUSION_WEIGHT, 1.0])
        assert _scores(col, fusion_weights=[1.0, 1.0]) != _scores(col)
    with Collection.create(tmp_path / "plain", profile="hybrid", encoder=FakeEncoder(dim=32)) as col:
        assert "model_fusion_weight" not in col.manifest and col.info()["fusion"]["weights"] is None


# A sharded collection's router plans its searches like a plain collection: the same model weight, the same hits.
def test_a_sharded_collection_fuses_with_the_models_weight(tmp_path):
    from slimvec.distributed import create_sharded

    enc = StaticLikeEncoder(dim=32, name=STATIC)
    with Collection.create(tmp_path / "plain", profile="hybrid", encoder=enc) as col:
        col.add(_docs(40))
        want = _scores(col)
    with create_sharded(tmp_path / "sharded", shards=2, profile="hybrid", encoder=enc) as col:
        col.add(_docs(40))
        assert col.info()["fusion"]["weights"] == [STATIC_FUSION_WEIGHT, 1.0]
        got = _scores(col)
    assert [[i for i, _ in q] for q in got] == [[i for i, _ in q] for q in want]
    np.testing.assert_allclose([[s for _, s in q] for q in got], [[s for _, s in q] for q in want], atol=1e-5)


# A collection made by session 20's slimvec kept the model's weights in its profile, marked
# "fusion_weights_from_model": it searches with them, a rerun with a profile that sets none still matches, and an
# import of its export (the profile carries [0.2, 1.0]) becomes a collection of today's kind.
def test_a_collection_that_kept_the_models_weights_in_its_profile(tmp_path):
    enc = StaticLikeEncoder(dim=32, name=STATIC)
    path = tmp_path / "col"
    with Collection.create(path, profile="hybrid", encoder=enc) as col:
        col.add(_docs(40))
        want = _scores(col)
    manifest_file = path / "manifest.json"
    m = json.loads(manifest_file.read_text())
    del m["model_fusion_weight"]
    m["profile"]["fusion_weights"] = [STATIC_FUSION_WEIGHT, 1.0]
    m["fusion_weights_from_model"] = True
    manifest_file.write_text(json.dumps(m))
    with Collection.open(path, enc) as col:
        assert col.info()["fusion"]["weights"] == [STATIC_FUSION_WEIGHT, 1.0]
        assert _scores(col) == want
    hybrid = load_profile("hybrid").model_copy(update={"name": "hybrid-file"})
    with Collection.create(tmp_path / "from-file", profile=hybrid, encoder=enc):
        pass
    with Collection.open_or_create(tmp_path / "from-file", profile=hybrid, encoder=enc) as col:
        assert col.manifest["profile"]["fusion_weights"] is None
    carried = hybrid.model_copy(update={"fusion_weights": (STATIC_FUSION_WEIGHT, 1.0)})
    with Collection.create(tmp_path / "imported", profile=carried, encoder=enc) as col:
        assert col.manifest["profile"]["fusion_weights"] is None
        assert col.manifest["model_fusion_weight"] == STATIC_FUSION_WEIGHT
    # the same weights under another fuser are the user's own, kept as given
    weighted = hybrid.model_copy(update={"fusion": "weighted", "fusion_weights": (STATIC_FUSION_WEIGHT, 1.0)})
    with Collection.create(tmp_path / "weighted", profile=weighted, encoder=enc) as col:
        assert col.manifest["profile"]["fusion_weights"] == [STATIC_FUSION_WEIGHT, 1.0]


@pytest.mark.parametrize("given", [None, (1.0, 1.0)])
def test_open_or_create_compares_weights_as_its_searches_use_them(tmp_path, given):
    from slimvec.errors import CollectionError

    enc = StaticLikeEncoder(dim=32, name=STATIC)
    hybrid = load_profile("hybrid").model_copy(update={"name": "mine"})
    Collection.create(tmp_path / "col", profile=hybrid, encoder=enc).close()
    again = hybrid.model_copy(update={"fusion_weights": given})
    if given is None:
        Collection.open_or_create(tmp_path / "col", profile=again, encoder=enc).close()
    else:
        with pytest.raises(CollectionError, match=r"fusion_weights \[0.2, 1.0\], not \[1.0, 1.0\]"):
            Collection.open_or_create(tmp_path / "col", profile=again, encoder=enc)


# `slimvec eval` reuses the collection it built for (dataset, profile); one built before the model's weight was
# recorded fused at equal weights, and its key (the profile) had not changed: it is built again.
def test_eval_builds_again_a_collection_that_lacks_the_models_weight(tmp_path):
    from fakes import registered_encoders

    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.runner import build, collection_dir

    data = tmp_path / "beir"
    data.mkdir()
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in _docs(12)))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "river water"}) + "\n")
    (data / "qrels").mkdir()
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with registered_encoders(StaticLikeEncoder(dim=32, name=STATIC)):
        profile = load_profile("hybrid").model_copy(update={"model": STATIC})
        ds = load_dataset(data)
        path = collection_dir(tmp_path / "out", ds, profile)
        assert build(ds, profile, path, None, False)["reused"] is False
        assert build(ds, profile, path, None, False)["reused"] is True
        m = json.loads((path / "manifest.json").read_text())
        del m["model_fusion_weight"]
        (path / "manifest.json").write_text(json.dumps(m))
        assert build(ds, profile, path, None, False)["reused"] is False
        assert json.loads((path / "manifest.json").read_text())["model_fusion_weight"] == STATIC_FUSION_WEIGHT


# A manifest written before profiles recorded their fuser fuses by RRF (the planner's reading); info() and the rerun
# comparison read it as softmax and showed the model's softmax weights for a fusion that does not use them.
def test_a_stored_profile_without_a_fuser_is_read_as_rrf_everywhere(tmp_path):
    enc = StaticLikeEncoder(dim=32, name=STATIC)
    path = tmp_path / "col"
    with Collection.create(path, profile="hybrid", encoder=enc) as col:
        col.add(_docs(20))
    m = json.loads((path / "manifest.json").read_text())
    del m["profile"]["fusion"]
    (path / "manifest.json").write_text(json.dumps(m))
    with Collection.open(path, enc) as col:
        assert col.info()["fusion"] == {"mode": "hybrid", "method": "rrf", "weights": None}
        assert _scores(col) == _scores(col, fusion="rrf")
