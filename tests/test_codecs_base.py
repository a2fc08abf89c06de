"""Codec persistence: a saved and reloaded codec encodes and scores exactly like the fitted one."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec.codecs import load, make_codec, save

SPECS = ["float16", "float8", "float8:vector", "int8", "int4", "binary", "binary:rotate:nocenter", "rbinary:3:rotate",
         "pca:96", "pca:96:whiten", "truncate:100", "rotate:3"]


@pytest.mark.parametrize("spec", SPECS)
def test_save_load_gives_identical_scores(spec: str, real: tuple[np.ndarray, np.ndarray], tmp_path) -> None:
    docs, queries = real
    codec = make_codec(spec)
    codec.fit(docs)
    codes = codec.encode(docs)
    save(codec, tmp_path / "c")
    again = load(tmp_path / "c")
    assert again.name == codec.name
    np.testing.assert_array_equal(again.encode(docs), codes)
    np.testing.assert_array_equal(again.score(queries, codes), codec.score(queries, codes))
