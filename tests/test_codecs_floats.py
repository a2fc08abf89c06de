"""float32 / float16 / float8 codecs: sizes, IEEE / e4m3 rounding bounds, scoring, ranking, persistence."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from slimvec.codecs import make_codec

D = 384


@pytest.mark.parametrize(
    ("spec", "nbytes"),
    [("float32", 4 * 384), ("float16", 2 * 384), ("float8", 384), ("float8:vector", 384 + 2)],
)
def test_bytes_per_vector(spec: str, nbytes: int, unit: np.ndarray) -> None:
    codec = make_codec(spec)
    codec.fit(unit)
    assert codec.bytes_per_vector(D) == nbytes
    codes = codec.encode(unit[:10])
    assert codes.nbytes == 10 * nbytes


def test_float16_error_is_ieee_half_rounding(unit: np.ndarray) -> None:
    codec = make_codec("float16")
    dec = codec.decode(codec.encode(unit))
    # Round-to-nearest with an 11-bit significand: |error| <= 2^-11 |x| for normals, <= 2^-25 for subnormals.
    assert np.all(np.abs(dec - unit) <= 2.0**-11 * np.abs(unit) + 2.0**-25)


def test_float8_global_matches_ml_dtypes_cast_and_e4m3_bound(unit: np.ndarray) -> None:
    codec = make_codec("float8")
    codec.fit(unit)
    scale = 448.0 / np.abs(unit).max()  # e4m3fn's largest finite value is 448
    dec = codec.decode(codec.encode(unit))
    reference = (unit * np.float32(scale)).astype(ml_dtypes.float8_e4m3fn).astype(np.float32) / np.float32(
        scale
    )
    np.testing.assert_allclose(dec, reference, rtol=1e-6, atol=1e-9)
    # 3 mantissa bits: relative error <= 2^-4 for normals; subnormal spacing is 2^-9, so absolute <= 2^-10.
    assert np.all(np.abs(dec - unit) <= 2.0**-4 * np.abs(unit) + 2.0**-10 / scale + 1e-7)


def test_float8_clips_instead_of_nan() -> None:
    codec = make_codec("float8")
    codec.fit(np.array([[0.5, -0.5]], np.float32))
    dec = codec.decode(codec.encode(np.array([[3.0, -3.0]], np.float32)))
    np.testing.assert_allclose(dec, [[0.5, -0.5]])


def test_float8_per_vector_scale_round_trip(unit: np.ndarray) -> None:
    codec = make_codec("float8:vector")
    codec.fit(unit)
    dec = codec.decode(codec.encode(unit))
    assert np.all(np.isfinite(dec))
    # Each row's max maps near 448; the float16 scale adds at most 2^-11 relative error on top of e4m3's 2^-4.
    peak = np.abs(unit).max(axis=1, keepdims=True)
    assert np.all(np.abs(dec - unit) <= (2.0**-4 + 2.0**-10) * np.abs(unit) + 2.0**-10 * peak / 448 + 1e-7)


def test_float8_needs_fit() -> None:
    with pytest.raises(RuntimeError, match="fitted"):
        make_codec("float8").encode(np.ones((1, 4), np.float32))


def test_float8_scale_modes_compared(real: tuple[np.ndarray, np.ndarray]) -> None:
    # Why global is the default: its error matches the per-vector scale within 5% on real vectors
    # (measured 0.0265 vs 0.0262) while saving 2 bytes per vector.
    docs, _ = real
    errs = {}
    for spec in ("float8", "float8:vector"):
        codec = make_codec(spec)
        codec.fit(docs)
        errs[spec] = np.linalg.norm(codec.decode(codec.encode(docs)) - docs, axis=1).mean()
    assert abs(errs["float8"] - errs["float8:vector"]) < 0.05 * errs["float8:vector"]


def _element_bound(spec: str, x: np.ndarray) -> np.ndarray:
    """Per-element |decode(encode(x)) - x| allowed by each format's rounding (IEEE 754 half, OCP e4m3fn)."""
    if spec == "float32":
        return np.zeros_like(x)
    if spec == "float16":
        return 2.0**-11 * np.abs(x) + 2.0**-25
    if spec == "float8":
        scale = 448.0 / np.abs(x).max()
        return 2.0**-4 * np.abs(x) + 2.0**-10 / scale + 1e-7
    peak = np.abs(x).max(axis=1, keepdims=True)  # float8:vector, e4m3 plus the float16 scale
    return (2.0**-4 + 2.0**-10) * np.abs(x) + 2.0**-10 * peak / 448 + 1e-7


@pytest.mark.parametrize("spec", ["float32", "float16", "float8", "float8:vector"])
def test_scores_are_inner_products_of_the_originals_within_the_format_error(
    spec: str, real: tuple[np.ndarray, np.ndarray]
) -> None:
    # Reference independent of the codec: float64 inner products of the original vectors, and the bound
    # |q . (x' - x)| <= sum_i |q_i| |x'_i - x_i| from the format's rounding, plus float32 summation slack.
    docs, queries = real
    codec = make_codec(spec)
    codec.fit(docs)
    scores = codec.score(queries, codec.encode(docs)).astype(np.float64)
    exact = queries.astype(np.float64) @ docs.astype(np.float64).T
    bound = np.abs(queries).astype(np.float64) @ _element_bound(spec, docs).astype(np.float64).T + 1e-5
    assert np.all(np.abs(scores - exact) <= bound)
    if spec != "float32":  # and the bound is not vacuous: rounding does move the scores
        assert np.abs(scores - exact).max() > 1e-6


@pytest.mark.parametrize("spec", ["float32", "float16", "float8"])
def test_scores_equal_inner_products_with_a_library_cast(spec: str, real: tuple[np.ndarray, np.ndarray]) -> None:
    # The same vectors rounded by numpy (IEEE half) or ml_dtypes (e4m3fn), then float64 inner products.
    docs, queries = real
    codec = make_codec(spec)
    codec.fit(docs)
    if spec == "float8":
        scale = np.float32(448.0 / np.abs(docs).max())
        rounded = (docs * scale).astype(ml_dtypes.float8_e4m3fn).astype(np.float64) / np.float64(scale)
    else:
        rounded = docs.astype(spec).astype(np.float64)
    reference = queries.astype(np.float64) @ rounded.T
    np.testing.assert_allclose(codec.score(queries, codec.encode(docs)), reference, rtol=0, atol=2e-6)
