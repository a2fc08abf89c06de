"""Query adapters of `slimvec migrate` on synthetic spaces with known maps."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec import registry
from slimvec.errors import ConfigError
from slimvec.migrate.adapters import Affine, Procrustes, ResidualMLP, choose, load_adapter, normalise, score_map


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def test_procrustes_recovers_a_known_rotation_exactly(unit):
    x = unit[:1000, :64].astype(np.float64)
    r = _rotation(64, 1)
    y = x @ r
    a = Procrustes().fit(x, y)
    np.testing.assert_allclose(a.params["W"], r, atol=1e-5)
    np.testing.assert_allclose(a.apply(x[:5]), normalise(y[:5]), atol=1e-5)


def test_procrustes_maps_between_different_dimensions_semi_orthogonally(unit):
    x = unit[:800, :48]
    r = _rotation(64, 2)[:48]  # (48, 64) with orthonormal rows: an isometric embedding into a larger space
    a = Procrustes().fit(x, x @ r)
    w = a.params["W"]
    assert w.shape == (48, 64)
    np.testing.assert_allclose(w @ w.T, np.eye(48), atol=1e-5)
    np.testing.assert_allclose(w, r, atol=1e-4)


def test_affine_recovers_a_known_affine_map():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 32))
    w, b = rng.standard_normal((32, 24)), rng.standard_normal(24)
    a = Affine().fit(x, x @ w + b)
    np.testing.assert_allclose(a.params["W"], w, atol=5e-3)
    np.testing.assert_allclose(a.params["b"], b, atol=5e-3)


def test_residual_mlp_fits_a_nonlinear_map_better_than_affine():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    y = np.concatenate([x, np.maximum(x[:, :4], 0) * 3], axis=1)  # a ReLU part no linear map reproduces
    train, test = slice(0, 2500), slice(2500, None)
    err = {}
    for cls in (Affine, ResidualMLP):
        a = cls().fit(x[train], y[train])
        err[cls.name] = float(np.mean(1 - np.sum(a.apply(x[test]) * normalise(y[test]), axis=1)))
    assert err["residual-mlp"] < 0.5 * err["affine"]


def test_choose_picks_by_held_out_agreement_and_refuses_unrelated_spaces(unit):
    x = unit[:1500, :64]
    chosen, scores = choose(x, x @ _rotation(64, 5), ["procrustes", "affine"])
    assert {s.name for s in scores} == {"procrustes", "affine"}
    assert all(s.recall_at_10 > 0.95 and s.cosine > 0.99 for s in scores)
    assert chosen.name in ("procrustes", "affine")
    noise = np.random.default_rng(6).standard_normal((1500, 64)).astype(np.float32)  # no relation to x
    with pytest.raises(ConfigError, match="no adapter agrees well enough"):
        choose(x, noise, ["procrustes", "affine"])


def test_adapters_are_registered_and_round_trip_through_a_file(tmp_path, unit):
    assert registry.names("adapter") == ["procrustes", "affine", "residual-mlp"]
    a = Affine().fit(unit[:300, :16], unit[:300, 16:40])
    a.save(tmp_path / "a.npz")
    b = load_adapter(tmp_path / "a.npz")
    assert b.name == "affine"
    np.testing.assert_array_equal(b.apply(unit[:3, :16]), a.apply(unit[:3, :16]))
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match="bad.npz: not a readable adapter file"):
        load_adapter(tmp_path / "bad.npz")


def test_score_map_recovers_a_known_linear_relation_of_scores(unit):
    x = unit[:600, :32]
    # Old space = the new one rotated: adapted scores equal native ones, so the line is a = 1, b = 0.
    a, b = score_map(Procrustes().fit(x, x @ _rotation(32, 7)), x, x @ _rotation(32, 7), np.arange(100))
    assert a == pytest.approx(1.0, abs=1e-3) and b == pytest.approx(0.0, abs=1e-3)
