"""Staged search through a collection: compact codes in RAM, float32 rescoring from disk, honest RAM accounting."""

from __future__ import annotations

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
    from slimvec import Document

    from fakes import FakeEncoder

    with Collection.create(tmp_path / "c", profile="int8", encoder=FakeEncoder()) as col:
        col.add([Document(f"a{i}", f"alpha {i} beta {i % 3}") for i in range(10)])
        col.search("alpha", k=1)
        assert col._retrievers["dense"].fitted_rows == 10
        col.add([Document(f"b{i}", f"gamma {i} delta {i % 5}") for i in range(30)])
        col.search("gamma", k=1)
        assert col._retrievers["dense"].fitted_rows == 40
    with Collection.open(tmp_path / "c", encoder=FakeEncoder()) as col:
        col.search("gamma", k=1)
        assert col._retrievers["dense"].fitted_rows == 40
