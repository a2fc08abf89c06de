"""Staged search through a collection: compact codes in RAM, float32 rescoring from disk, honest RAM accounting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimvec import Collection
from slimvec.profiles import BUILTIN


@pytest.fixture(scope="module")
def queries(scifact_judged):
    return [t for t, _ in scifact_judged.values()]


def _copy_with_profile(src, dst, profile):
    """Same documents and vectors, another profile: copy the collection and switch its manifest profile."""
    import shutil

    shutil.copytree(src, dst)
    with Collection.open(dst) as col:
        col.store.save_manifest({"profile": BUILTIN[profile].model_dump(mode="json") | {"oversample": 1000}})


@pytest.mark.parametrize("profile", ["binary-rescore", "int8-rescore"])
def test_staged_search_equals_exact_when_oversampling_covers_corpus(built_collection, tmp_path, queries, profile):
    path = tmp_path / profile
    _copy_with_profile(built_collection, path, profile)
    with Collection.open(built_collection) as exact, Collection.open(path) as staged:
        qv = exact.encoder.encode_queries(queries)
        a = exact.search_vectors(qv, k=10)
        b = staged.search_vectors(qv, k=10)
    for x, y in zip(a, b):
        assert [h.id for h in x] == [h.id for h in y]
        np.testing.assert_allclose([h.score for h in x], [h.score for h in y], rtol=1e-5)


def test_compressed_ram_is_codes_only(built_collection, tmp_path):
    path = tmp_path / "bin"
    _copy_with_profile(built_collection, path, "binary-rescore")
    with Collection.open(built_collection) as exact, Collection.open(path) as binary:
        e, b = exact.info(), binary.info()
        rows = b["rows"]
        # float32: 384 dims x 4 bytes per row; binary: 384 bits = 48 bytes per row (plus small bookkeeping).
        assert e["ram_bytes"] >= rows * 384 * 4
        assert rows * 48 <= b["ram_bytes"] < rows * (48 + 16) + 4096
        assert b["ram_bytes"] * 16 <= e["ram_bytes"] * 1.2


def test_binary_without_rescore_still_finds_judged_docs(built_collection, tmp_path, scifact_judged):
    path = tmp_path / "bin"
    _copy_with_profile(built_collection, path, "binary")
    with Collection.open(path) as col:
        found = sum(bool({h.id for h in col.search(t, k=10)} & rel) for t, rel in scifact_judged.values())
    # Binary codes alone keep most of the ranking on 300 docs (exact finds >= 80%, see test_collection).
    assert found / len(scifact_judged) >= 0.7


def test_codec_is_refitted_as_the_collection_grows(tmp_path):
    from fakes import FakeEncoder

    from slimvec import Document

    with Collection.create(tmp_path / "c", profile="int8", encoder=FakeEncoder()) as col:
        col.add([Document(f"a{i}", f"alpha {i} beta {i % 3}") for i in range(10)])
        assert col.info()["indexes"]["dense"] == {"kind": "codes", "codec": "int8", "rows": 10, "fitted_rows": 10,
                                                  "rescore": BUILTIN["int8"].rescore,
                                                  "oversample": BUILTIN["int8"].oversample}
        col.add([Document(f"b{i}", f"gamma {i} delta {i % 5}") for i in range(30)])
        assert col.info()["indexes"]["dense"]["fitted_rows"] == 40
        col.add([Document(f"c{i}", f"eps {i}") for i in range(10)])  # 50 < 2 x 40: no refit
        assert col.info()["indexes"]["dense"]["fitted_rows"] == 40
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert col.info()["indexes"]["dense"]["fitted_rows"] == 40


def _ivf_collection(path, n, nlist, nprobe, oversample=1000):
    """A FakeEncoder collection (32-d) with binary codes in `nlist` inverted lists."""
    from fakes import FakeEncoder

    from slimvec import Document

    prof = BUILTIN["binary-ivf-rescore"].model_copy(update={"nlist": nlist, "nprobe": nprobe, "oversample": oversample})
    col = Collection.create(path, profile=prof, encoder=FakeEncoder())
    rng = np.random.default_rng(7)
    words = [f"{w}{j}" for w in ("alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "iota", "kappa") for j in range(5)]
    col.add([Document(f"d{i}", " ".join(rng.choice(words, 6, replace=False)), metadata={"group": i % 10})
             for i in range(n)])
    return col


def _exact_ids(col, query, k, group=None):
    """Brute-force top-k document ids from the stored float32 vectors (one chunk per document here)."""
    rows = col.store.alive_rows() if group is None else col.store.rows_matching({"group": group})
    info = col.store.chunks_for_rows(rows.tolist())
    scores = np.asarray(col.store.vectors(col.store.committed_rows))[rows] @ col.encoder.encode_queries([query])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [info[int(rows[i])].doc_id for i in order], scores[order]


def _assert_same_ranking(hits, expected):
    """Same scores in order, and the same ids wherever a score is not tied with a neighbour."""
    ids, scores = expected
    np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-5, atol=1e-6)
    for i, h in enumerate(hits):
        if not np.any(np.isclose(np.delete(scores, i), scores[i], atol=1e-6)):
            assert h.id == ids[i]


def test_ivf_with_every_list_probed_equals_exact(tmp_path):
    with _ivf_collection(tmp_path / "c", 400, nlist=8, nprobe=8) as col:
        hits = col.search("alpha1 gamma2 eta3", k=10)
        assert col.info()["indexes"]["dense"]["kind"] == "ivf"
        _assert_same_ranking(hits, _exact_ids(col, "alpha1 gamma2 eta3", 10))


def test_ivf_probes_more_lists_under_a_selective_filter(tmp_path):
    with _ivf_collection(tmp_path / "c", 800, nlist=16, nprobe=2) as col:
        hits = col.search("beta2 delta4", k=10, filter={"group": 3})
        assert col.info()["indexes"]["dense"]["kind"] == "ivf"
        # 2 lists of 16 hold ~10 of the 80 allowed rows; scaled by 800/80, every list is probed.
        _assert_same_ranking(hits, _exact_ids(col, "beta2 delta4", 10, group=3))
        assert all(h.metadata["group"] == 3 for h in hits)


def test_ivf_persists_and_deletes_vanish(tmp_path):
    with _ivf_collection(tmp_path / "c", 300, nlist=4, nprobe=4) as col:
        assert col.info()["indexes"]["dense"] == {
            "kind": "ivf", "codec": BUILTIN["binary-ivf-rescore"].codec, "rows": 300, "fitted_rows": 300,
            "rescore": True, "oversample": 1000, "nlist": 4, "nprobe": 4}
        before = [(h.id, h.score) for h in col.search("zeta3 iota1", k=10)]
        col.delete([before[0][0]])
        after_delete = [h.id for h in col.search("zeta3 iota1", k=10)]
    assert before[0][0] not in after_delete
    assert json.loads((tmp_path / "c" / "index" / "codes" / "fit.json").read_text())["kind"] == "ivf"
    from fakes import FakeEncoder

    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        assert [h.id for h in col.search("zeta3 iota1", k=10)] == after_delete
        assert col.info()["indexes"]["dense"]["nlist"] == 4


def test_automatic_ivf_starts_large_enough_and_retrains_as_the_collection_grows(tmp_path, monkeypatch):
    from fakes import FakeEncoder

    import slimvec.retrievers.compressed as pipeline
    from slimvec import Document
    monkeypatch.setattr(pipeline, "_IVF_MIN_ROWS", 100)
    monkeypatch.setattr(pipeline, "_IVF_TRAIN_PER_LIST", 1)
    with Collection.create(tmp_path / "c", profile="binary-ivf-rescore", encoder=FakeEncoder()) as col:
        col.add([Document(f"a{i}", f"alpha{i % 13} beta{i % 7}") for i in range(60)])
        assert col.info()["indexes"]["dense"]["kind"] == "codes"  # too few rows: exact Hamming scan
        col.add([Document(f"b{i}", f"gamma{i % 11} delta{i % 5}") for i in range(60)])
        first = col.info()["indexes"]["dense"]
        assert first["kind"] == "ivf" and first["nlist"] == 1 << int(round(np.log2(4 * np.sqrt(120))))
        col.add([Document(f"c{i}", f"eps{i % 17} zeta{i % 3}") for i in range(400)])
        grown = col.info()["indexes"]["dense"]
        assert grown["rows"] == 520 and grown["nlist"] == 1 << int(round(np.log2(4 * np.sqrt(520))))



def _clustered(n, dim, seed, centres=400):
    """Unit rows around `centres` random directions; the noise makes neighbouring lists overlap. The centres
    depend only on `centres` and the dimension, so two calls with other seeds draw from one distribution."""
    c = np.random.default_rng(centres).standard_normal((centres, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, centres, n)] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _vector_collection(path, rows, base="binary-ivf-rescore", **profile):
    """A collection of built-in profile `base` (binary-ivf-rescore: with 32 lists) holding `rows` as given (one
    chunk per document), with `profile` fields replaced."""
    from fakes import FakeEncoder

    from slimvec import Document
    from slimvec.documents import Chunk

    lists = {"nlist": 32} if base == "binary-ivf-rescore" else {}
    prof = BUILTIN[base].model_copy(update={**lists, **profile})
    col = Collection.create(path, profile=prof, encoder=FakeEncoder(dim=rows.shape[1]))
    docs = [Document(f"d{i}", f"row {i}") for i in range(len(rows))]
    col.add_encoded(docs, [Chunk(f"d{i}", 0, 0, len(f"row {i}"), f"row {i}") for i in range(len(rows))], rows)
    return col


def _recall_at_10(col, rows, queries):
    """Mean Recall@10 of the collection's k=10 dense search (one row per document "d<row>") against brute force
    over `rows` (computed here)."""
    hits = col.search_many(["q"] * len(queries), vectors=np.asarray(queries, np.float32), k=10, mode="dense",
                           rerank="none", with_payload=False)
    total = 0
    for q, found in zip(queries, hits):
        exact = np.argsort(-(rows @ q), kind="stable")[:10].tolist()
        total += len(set(exact) & {int(h.id[1:]) for h in found})
    return total / (10 * len(queries))


def test_calibrated_nprobe_reaches_its_target_and_is_the_smallest_that_does(tmp_path):
    from slimvec.index.nprobe import probe_queries

    rows, unseen = _clustered(4000, 64, seed=1), _clustered(200, 64, seed=99)
    probes = probe_queries(rows, len(rows))
    with _vector_collection(tmp_path / "c", rows, target_recall=0.9, oversample=10) as col:
        described = col.info()["indexes"]["dense"]
        cal = described["calibration"]
        assert described["kind"] == "ivf" and described["nlist"] == 32
        assert cal["nprobe"] == described["nprobe"] and cal["target_recall"] == 0.9 and cal["rows"] == 4000
        assert cal["depth"] == 40  # searched at the rows a k=10 search asks for (10 x ROWS_PER_RESULT), cut to 10
        assert cal["depth"] == 40  # measured at the rows a k=10 search asks for (10 x ROWS_PER_RESULT)
        assert 1 < cal["nprobe"] < 32  # overlapping lists, but not so overlapping that all must be probed
        assert _recall_at_10(col, rows, probes) >= 0.9
        assert _recall_at_10(col, rows, unseen) >= 0.9  # queries not stored, from the rows' distribution
        col._retrievers["dense"].ivf = (32, cal["nprobe"] - 1)  # one list fewer misses the target
        assert _recall_at_10(col, rows, probes) < 0.9
    with Collection.open(tmp_path / "c") as col:  # stored with the index, not recomputed
        assert col.info()["indexes"]["dense"]["calibration"] == cal


def test_a_higher_target_probes_more_lists_and_a_fixed_nprobe_is_kept(tmp_path):
    rows = _clustered(4000, 64, seed=2)
    with _vector_collection(tmp_path / "low", rows, target_recall=0.5, oversample=10) as col:
        low = col.info()["indexes"]["dense"]["nprobe"]
    with _vector_collection(tmp_path / "high", rows, target_recall=0.97, oversample=10) as col:
        high = col.info()["indexes"]["dense"]["nprobe"]
    assert low < high
    with _vector_collection(tmp_path / "fixed", rows, nprobe=3) as col:
        described = col.info()["indexes"]["dense"]
        assert described["nprobe"] == 3 and "calibration" not in described
