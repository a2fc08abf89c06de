"""Token codes: residual (ColBERTv2/PLAID-style) and the shared codecs on token vectors; MaxSim over codes."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec.codecs.base import load, save
from slimvec.errors import ConfigError
from slimvec.multivector.codes import ResidualCentroidCodec, fit_token_codec, token_codec
from slimvec.multivector.maxsim import maxsim_scores


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _tokens(rng: np.random.Generator, n: int = 6000, dim: int = 64, topics: int = 40) -> np.ndarray:
    centres = _unit(rng.standard_normal((topics, dim)))
    return _unit(centres[rng.integers(0, topics, n)] + 0.08 * rng.standard_normal((n, dim)))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_unit(a) * _unit(b)).sum(axis=1)


def test_hand_made_codebook() -> None:
    # Centroids e1, e2; one dimension-independent bucket split at 0 with values -0.5 / +0.5.
    dim = 3
    state = {"codec": "residual", "params": {"centroids": 2, "bits": 1, "seed": 0, "niter": 1},
             "arrays": {"centroids": np.eye(dim, dtype=np.float32)[:2],
                        "cutoffs": np.zeros((dim, 1), np.float32),
                        "values": np.tile(np.array([-0.5, 0.5], np.float32), (dim, 1))}}
    codec = ResidualCentroidCodec.from_state(state)
    x = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, -0.2]], np.float32)
    codes = codec.encode(x)
    # Token 0: centroid 0, residual (-0.1, 0.1, 0.1) -> buckets (0, 1, 1); token 1: centroid 1, (1, 0, 0).
    assert codes[:, :2].tolist() == [[0, 0], [1, 0]]
    assert np.unpackbits(codes[:, 2:], axis=1, count=dim).tolist() == [[0, 1, 1], [1, 0, 0]]
    expect = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, -0.5]], np.float32)
    np.testing.assert_allclose(codec.decode(codes), _unit(expect), atol=1e-6)


@pytest.mark.parametrize("bits,floor", [(1, 0.92), (2, 0.965)])
def test_residual_round_trip_error(bits: int, floor: float) -> None:
    rng = np.random.default_rng(bits)
    x = _tokens(rng)
    codec = fit_token_codec(f"residual:64:{bits}", x[:4000])
    codes = codec.encode(x[4000:])
    assert codes.dtype == np.uint8 and codes.shape == (2000, codec.bytes_per_vector(64)) == (2000, 2 + 8 * bits)
    rec = codec.decode(codes)
    np.testing.assert_allclose(np.linalg.norm(rec, axis=1), 1.0, atol=1e-5)
    centroid_only = codec.centroids[np.ascontiguousarray(codes[:, :2]).view("<u2")[:, 0]]
    # The residual bits must add information over the centroid alone.
    assert _cos(rec, x[4000:]).mean() > max(floor, _cos(centroid_only, x[4000:]).mean() + 0.05)


def test_two_bits_beat_one_bit() -> None:
    rng = np.random.default_rng(7)
    x = _tokens(rng)
    errs = [(_cos(c.decode(c.encode(x)), x)).mean()
            for c in (fit_token_codec("residual:32:1", x), fit_token_codec("residual:32:2", x))]
    assert errs[1] > errs[0]


@pytest.mark.parametrize("spec", ["residual:32:2", "int8", "binary"])
def test_maxsim_over_codes_equals_maxsim_over_decoded(tmp_path, spec: str) -> None:
    rng = np.random.default_rng(3)
    x = _tokens(rng, n=1500)
    codec = fit_token_codec(spec, x, sample=1000)
    codes = codec.encode(x)
    offsets = np.array([0, 10, 10, 400, 1500])
    q = [x[5:9] + 0.1, x[700:703]]
    direct = maxsim_scores(q, codec.decode(codes), offsets)
    np.testing.assert_allclose(maxsim_scores(q, codes, offsets, decode=codec.decode), direct, rtol=1e-5, atol=1e-5)
    save(codec, tmp_path / "codec")  # the codebook is fitted once and saved
    again = load(tmp_path / "codec")
    np.testing.assert_array_equal(again.encode(x[:50]), codes[:50])
    np.testing.assert_allclose(again.decode(codes[:50]), codec.decode(codes[:50]), atol=1e-6)


def test_bad_specs() -> None:
    with pytest.raises(ConfigError, match="residual"):
        token_codec("residual:70000")
    with pytest.raises(ConfigError, match="bits"):
        token_codec("residual:16:5")
    with pytest.raises(RuntimeError, match="fitted"):
        ResidualCentroidCodec().encode(np.zeros((1, 4), np.float32))


def test_shared_centroids_with_other_bits() -> None:
    rng = np.random.default_rng(11)
    x = _tokens(rng, n=2000)
    two = fit_token_codec("residual:16:2", x)
    one = two.with_bits(1, x)
    ids = two.assign(x)
    np.testing.assert_array_equal(one.encode(x, assignment=ids), one.encode(x))
    np.testing.assert_array_equal(one.encode(x)[:, :2], two.encode(x)[:, :2])  # same centroid per token
    assert one.encode(x).shape[1] == 2 + 8 and _cos(one.decode(one.encode(x)), x).mean() < \
        _cos(two.decode(two.encode(x)), x).mean()


def _reference_decode(codec: ResidualCentroidCodec, codes: np.ndarray) -> np.ndarray:
    """Decoding written out one token and one dimension at a time, from the code layout in codes.py."""
    dim = codec.centroids.shape[1]
    w = -(-dim // 8)
    out = np.zeros((len(codes), dim), np.float64)
    for i, row in enumerate(codes):
        cid = int(row[0]) | int(row[1]) << 8
        for d in range(dim):
            bucket = 0
            for b in range(codec.bits):
                byte = int(row[2 + b * w + d // 8])
                bucket |= ((byte >> (7 - d % 8)) & 1) << b
            out[i, d] = codec.centroids[cid, d] + codec.values[d, bucket]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.parametrize("bits,dim", [(1, 16), (2, 32), (3, 16), (2, 12), (4, 8)])
def test_table_decode_equals_per_dimension_decode(bits: int, dim: int) -> None:
    # dim 12 (not a multiple of 8) and 4 bits take the plain path; the others the nibble table.
    rng = np.random.default_rng(bits * 100 + dim)
    x = _tokens(rng, n=900, dim=dim, topics=12)
    codec = fit_token_codec(f"residual:16:{bits}", x[:600])
    codes = codec.encode(x[600:])
    expect = _reference_decode(codec, codes)
    np.testing.assert_allclose(codec.decode(codes), expect, atol=2e-6)
    out = np.full((len(codes) + 5, dim), np.nan, np.float32)
    got = codec.decode_into(codes, out)
    assert got.shape == (len(codes), dim) and np.shares_memory(got, out)
    np.testing.assert_allclose(out[: len(codes)], expect, atol=2e-6)
    assert np.isnan(out[len(codes) :]).all()  # nothing written past the codes


def test_maxsim_rows_over_codes_equals_maxsim_over_decoded_tokens() -> None:
    from slimvec.multivector.maxsim import maxsim_rows

    rng = np.random.default_rng(3)
    x = _tokens(rng, n=3000, dim=64)
    codec = fit_token_codec("residual:32:2", x)
    codes = codec.encode(x)
    lens = rng.integers(0, 40, 120)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    codes = codes[: offsets[-1]]
    docs = rng.choice(len(lens), 50, replace=False)
    q = _unit(x[:7] + 0.2 * rng.standard_normal((7, 64)))
    dec = _reference_decode(codec, codes)
    expect = [0.0 if lens[d] == 0 else (q @ dec[offsets[d] : offsets[d + 1]].T).max(axis=1).sum() for d in docs]
    np.testing.assert_allclose(maxsim_rows(q, codes, offsets, docs, codec.decode_into), expect, atol=1e-5)


def test_query_of_another_width_over_codes_is_refused() -> None:
    from slimvec.multivector.maxsim import maxsim_rows

    rng = np.random.default_rng(4)
    x = _tokens(rng, n=400, dim=32)
    codec = fit_token_codec("residual:8:2", x)
    codes = codec.encode(x)
    offsets = np.array([0, 100, 400])
    with pytest.raises(ValueError, match="32 columns"):
        maxsim_rows(_unit(rng.standard_normal((3, 16))), codes, offsets, np.array([0, 1]), codec.decode_into)
    with pytest.raises(ValueError, match="decode_into needs"):
        codec.decode_into(codes, np.empty((10, 32), np.float32))


def test_maxsim_rows_over_codes_in_several_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    from slimvec.multivector import kernel
    from slimvec.multivector import maxsim as ms

    monkeypatch.setattr(kernel, "_SLICE_ROWS", 50)
    rng = np.random.default_rng(5)
    x = _tokens(rng, n=1200, dim=32)
    codec = fit_token_codec("residual:16:2", x)
    codes = codec.encode(x)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(1, 30, 60))])
    codes = codes[: offsets[-1]]
    docs = np.arange(60)
    q = _unit(x[:5] + 0.2 * rng.standard_normal((5, 32)))
    dec = _reference_decode(codec, codes)
    expect = [(q @ dec[offsets[d] : offsets[d + 1]].T).max(axis=1).sum() for d in docs]
    np.testing.assert_allclose(ms.maxsim_rows(q, codes, offsets, docs, codec.decode_into), expect, atol=1e-5)
