"""Spec parsing and chains: bytes at the reduced dimension, scores through the query maps, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimvec import registry
from slimvec.codecs import Chain, load, make_codec, save
from slimvec.codecs.floats import Float8Codec
from slimvec.codecs.transforms import PCA
from slimvec.errors import ConfigError


def test_registry_names() -> None:
    assert {"float32", "float16", "float8", "int8", "int4", "binary", "rbinary", "pq"} <= set(registry.names("codec"))


@pytest.mark.parametrize(
    ("spec", "name", "nbytes"),
    [
        ("pca:192 > float8", "pca:192 > float8", 192),  # 192 dims x 1 byte
        ("truncate:128>int4", "truncate:128 > int4", 64),  # 128 dims x 4 bits
        ("pca:192 > rbinary:2", "pca:192 > rbinary:2", 48),  # 192 dims x 2 bits
        ("rotate > binary", "rotate > binary", 48),  # 384 bits
        ("pca:128", "pca:128 > float32", 512),  # transforms alone keep float32: 128 x 4
        ("pca:256 > truncate:128 > float16", "pca:256 > truncate:128 > float16", 256),
    ],
)
def test_chain_names_and_bytes(
    spec: str, name: str, nbytes: int, real: tuple[np.ndarray, np.ndarray]
) -> None:
    docs, _ = real
    codec = make_codec(spec)
    assert isinstance(codec, Chain) and codec.name == name
    codec.fit(docs)
    assert codec.bytes_per_vector(384) == nbytes
    assert codec.encode(docs[:4]).nbytes == 4 * nbytes


@pytest.mark.parametrize(
    "spec", ["", "pq:48x8 > pca:192", "float8 > int8", "nosuch", "pca", "pca:x", "pca:192 >"]
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        make_codec(spec)


def test_chain_equals_its_stages_composed_by_hand(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    chain = make_codec("pca:192 > float8")
    chain.fit(docs)
    pca, f8 = PCA(192), Float8Codec()
    pca.fit(docs)
    f8.fit(pca.forward(docs))
    codes = f8.encode(pca.forward(docs))
    np.testing.assert_array_equal(chain.encode(docs), codes)
    np.testing.assert_allclose(chain.score(queries, codes), f8.score(pca.query(queries), codes), atol=1e-6)
    np.testing.assert_allclose(chain.decode(codes), pca.backward(f8.decode(codes)), atol=1e-6)


def test_save_load_round_trip(real: tuple[np.ndarray, np.ndarray], tmp_path) -> None:
    docs, queries = real
    codec = make_codec("pca:192 > rbinary:2:rotate")
    codec.fit(docs)
    codes = codec.encode(docs)
    save(codec, tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "params.json").read_text())
    assert meta["codec"] == "chain" and [s["codec"] for s in meta["params"]["stages"]] == ["pca", "rbinary"]
    assert {p.name for p in (tmp_path / "c").glob("*.npy")} == {f"{a}.npy" for a in meta["arrays"]}
    assert not list((tmp_path / "c").glob("*.tmp"))
    again = load(tmp_path / "c")
    assert again.name == codec.name
    np.testing.assert_array_equal(again.encode(docs), codes)
    np.testing.assert_array_equal(again.score(queries, codes), codec.score(queries, codes))


def test_load_of_missing_directory_is_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path / "absent")
