"""1-bit and residual binary codecs: hand-made sign codes, Hamming by bit counting, Lloyd-Max error bounds."""

from __future__ import annotations

import numpy as np
import pytest
from _real_vectors import recall_at_k

from slimvec.codecs import make_codec
from slimvec.codecs.binary import hamming
from slimvec.codecs.transforms import random_orthogonal
from slimvec.index.base import top_k

D = 384


@pytest.fixture(scope="module")
def gauss() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((20000, 64)).astype(np.float32)


@pytest.mark.parametrize(
    ("spec", "dim", "nbytes"),
    [
        ("binary", 384, 48),
        ("rbinary:2", 384, 96),
        ("rbinary:3", 384, 144),
        ("rbinary:4", 384, 192),
        ("binary", 100, 13),
        ("rbinary:2", 100, 26),
    ],
)
def test_bytes_per_vector(spec: str, dim: int, nbytes: int) -> None:
    codec = make_codec(spec)
    codec.fit(np.random.default_rng(1).standard_normal((500, dim)).astype(np.float32))
    assert codec.bytes_per_vector(dim) == nbytes
    assert codec.encode(np.ones((3, dim), np.float32)).shape == (3, nbytes)


def _count_differing_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits_a, bits_b = np.unpackbits(a, axis=1), np.unpackbits(b, axis=1)
    return np.array([[int((x != y).sum()) for y in bits_b] for x in bits_a])


@pytest.mark.parametrize("width", [1, 5, 8, 48])
def test_hamming_counts_differing_bits(width: int) -> None:
    rng = np.random.default_rng(width)
    a = rng.integers(0, 256, (4, width), dtype=np.uint8)
    b = rng.integers(0, 256, (9, width), dtype=np.uint8)
    np.testing.assert_array_equal(hamming(a, b), _count_differing_bits(a, b))


def test_hamming_hand_example() -> None:
    a = np.array([[0b1011_0000]], np.uint8)
    b = np.array([[0b1011_0000], [0b0100_1111], [0b1001_0001]], np.uint8)
    np.testing.assert_array_equal(hamming(a, b), [[0, 8, 2]])


def test_sign_codes_without_centring_are_packed_signs() -> None:
    x = np.array([[0.3, -0.1, 0.0, -2.0, 1.0, 0.5, -0.5, 0.2, 0.7]], np.float32)
    codec = make_codec("binary:nocenter")
    codec.fit(np.vstack([x, -x]))
    # Bits (x >= 0): 1 0 1 0 1 1 0 1 | 1 -> bytes 0b10101101, 0b10000000.
    np.testing.assert_array_equal(codec.encode(x), [[0b1010_1101, 0b1000_0000]])
    # One level: the least-squares scale of a sign code is mean |x| per dimension.
    np.testing.assert_allclose(codec.decode(codec.encode(x)), np.sign(x + 1e-9) * np.abs(x), rtol=1e-6)


def test_centring_and_rotation_happen_before_the_sign(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, _ = real
    mean = docs.mean(axis=0)
    centred = make_codec("binary")
    centred.fit(docs)
    np.testing.assert_array_equal(centred.encode(docs), np.packbits(docs - mean >= 0, axis=1))
    rotated = make_codec("binary:rotate")
    rotated.fit(docs)
    rot = random_orthogonal(D, 0)
    np.testing.assert_array_equal(rotated.encode(docs), np.packbits((docs - mean) @ rot.T >= 0, axis=1))


# Lloyd-Max minimum MSE for N(0, 1): 1 bit 0.3634 (= 1 - 2/pi), 2 bits 0.1175, 3 bits 0.03454,
# 4 bits 0.009497.
# Residual sign levels (+-a1 +-a2 ...) reach the 1-2 bit optimum; at 3-4 bits they can form a uniform grid,
# whose optimum is 0.03744 (3 bits) and 0.01154 (4 bits). Upper bounds sit just above those targets.
@pytest.mark.parametrize(
    ("spec", "lloyd_max", "upper"),
    [
        ("binary", 0.3634, 0.37),
        ("rbinary:2", 0.1175, 0.121),
        ("rbinary:3", 0.03454, 0.039),
        ("rbinary:4", 0.009497, 0.0125),
    ],
)
def test_gaussian_error_near_optimal_scalar_quantizer(
    spec: str, lloyd_max: float, upper: float, gauss: np.ndarray
) -> None:
    codec = make_codec(spec)
    codec.fit(gauss[:10000])
    held_out = gauss[10000:]
    mse = float(((codec.decode(codec.encode(held_out)) - held_out) ** 2).mean())
    assert 0.97 * lloyd_max < mse < upper


def test_symmetric_score_is_sign_cosine(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    codec = make_codec("rbinary:2")
    codec.fit(docs)
    mean = docs.mean(axis=0)
    qs, ds = np.where(queries - mean >= 0, 1, -1), np.where(docs - mean >= 0, 1, -1)
    np.testing.assert_allclose(codec.symmetric_score(queries, codec.encode(docs)), qs @ ds.T / D, atol=1e-6)


def test_recall_at_10_hamming(real: tuple[np.ndarray, np.ndarray]) -> None:
    # Symmetric sign agreement loses the query's magnitudes: measured 0.567, below the asymmetric 0.726.
    docs, queries = real
    codec = make_codec("binary")
    codec.fit(docs)
    truth = top_k(queries @ docs.T, 10)[1]
    found = top_k(codec.symmetric_score(queries, codec.encode(docs)), 10)[1]
    assert recall_at_k(truth, found) >= 0.5


def test_bad_specs_are_config_errors() -> None:
    from slimvec.errors import ConfigError

    for spec in ("rbinary", "rbinary:9", "binary:sideways"):
        with pytest.raises(ConfigError):
            make_codec(spec)
