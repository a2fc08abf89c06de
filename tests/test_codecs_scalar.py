"""int8 / int4 scalar codecs: hand-computed codes and packing, half-step error bound, scoring, ranking."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec.codecs import make_codec
from slimvec.codecs.scalar import fit_ranges

D = 384


@pytest.mark.parametrize(
    ("spec", "dim", "nbytes"), [("int8", 384, 384), ("int4", 384, 192), ("int4", 5, 3), ("int8", 5, 5)]
)
def test_bytes_per_vector(spec: str, dim: int, nbytes: int) -> None:
    codec = make_codec(spec)
    codec.fit(np.random.default_rng(1).standard_normal((300, dim)).astype(np.float32))
    assert codec.bytes_per_vector(dim) == nbytes
    assert codec.encode(np.zeros((7, dim), np.float32)).shape == (7, nbytes)


def test_int8_hand_computed_codes() -> None:
    # Each dimension spans exactly the 256-level grid on [-1, 1]: zero error unclipped, so that range wins.
    grid = np.repeat(np.linspace(-1, 1, 256, dtype=np.float32)[:, None], 2, axis=1)
    codec = make_codec("int8")
    codec.fit(grid)
    codes = codec.encode(np.array([[0.5, -1.0]], np.float32))
    # (0.5 + 1) / (2 / 255) = 191.25 -> 191; -1 -> 0.
    np.testing.assert_array_equal(codes, [[191, 0]])
    np.testing.assert_allclose(codec.decode(codes), [[-1 + 191 * 2 / 255, -1.0]], rtol=1e-6)


def test_int4_hand_computed_codes_and_packing() -> None:
    grid = np.repeat(np.linspace(-1, 1, 16, dtype=np.float32)[:, None], 3, axis=1)
    codec = make_codec("int4")
    codec.fit(grid)
    x = np.array([[0.5, -1.0, 1.0]], np.float32)
    # Levels: (0.5 + 1) / (2 / 15) = 11.25 -> 11, -1 -> 0, 1 -> 15. With d=3, byte 0 = dim0 | dim2 << 4,
    # byte 1 = dim1 (its high nibble is padding).
    np.testing.assert_array_equal(codec.encode(x), [[11 | 15 << 4, 0]])
    np.testing.assert_allclose(codec.decode(codec.encode(x)), [[-1 + 11 * 2 / 15, -1.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize(("spec", "levels"), [("int8", 255), ("int4", 15)])
def test_error_at_most_half_a_step_inside_the_range(spec: str, levels: int, unit: np.ndarray) -> None:
    codec = make_codec(spec)
    codec.fit(unit)
    low, step = fit_ranges(unit, levels)
    high = low + levels * step
    dec = codec.decode(codec.encode(unit))
    inside = (unit >= low) & (unit <= high)
    assert np.all(np.abs(dec - unit)[inside] <= (step / 2 + 1e-6)[np.nonzero(inside)[1]])
    # Outside the calibrated range values clip to its ends.
    np.testing.assert_allclose(dec[unit < low], np.broadcast_to(low, unit.shape)[unit < low], atol=1e-6)
    np.testing.assert_allclose(dec[unit > high], np.broadcast_to(high, unit.shape)[unit > high], atol=1e-6)


def test_ranges_clip_gaussian_tails_like_the_optimal_uniform_quantizer() -> None:
    # Max (1960): the MSE-optimal 16-level uniform quantizer of N(0, 1) has step 0.3352, i.e. range +-2.68;
    # with 256 levels the optimum range (about +-4.4) exceeds what 20000 samples reach, so no clipping.
    x = np.random.default_rng(2).standard_normal((20000, 4)).astype(np.float32)
    low, step = fit_ranges(x, 15)
    high = low + 15 * step
    assert np.all((2.2 < high) & (high < 3.2)) and np.all((-3.2 < low) & (low < -2.2))
    low8, step8 = fit_ranges(x, 255)
    assert np.all(low8 + 255 * step8 > 3.5) and np.all(low8 < -3.5)
