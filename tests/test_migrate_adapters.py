"""Query adapters of `slimvec migrate` on synthetic spaces with known maps."""

from __future__ import annotations

import numpy as np
import pytest

from slimvec import registry
from slimvec.errors import ConfigError
from slimvec.migrate.adapters import (
    AUTO,
    Affine,
    Procrustes,
    ProcrustesRidge,
    ResidualMLP,
    choose,
    load_adapter,
    normalise,
    score_map,
)


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
    assert registry.names("adapter") == ["procrustes", "procrustes-ridge", "affine", "residual-mlp"]
    for a in (Affine().fit(unit[:300, :16], unit[:300, 16:40]), ProcrustesRidge(ridge=3.0).fit(unit[:300, :16], unit[:300, 16:40])):
        a.save(tmp_path / "a.npz")
        b = load_adapter(tmp_path / "a.npz")
        assert b.name == a.name
        np.testing.assert_array_equal(b.apply(unit[:3, :16]), a.apply(unit[:3, :16]))
    assert b.ridge == 3.0
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match="bad.npz: not a readable adapter file"):
        load_adapter(tmp_path / "bad.npz")


def test_score_map_recovers_a_known_linear_relation_of_scores(unit):
    x = unit[:600, :32]
    # Old space = the new one rotated: adapted scores equal native ones, so the line is a = 1, b = 0.
    a, b = score_map(Procrustes().fit(x, x @ _rotation(32, 7)), x, x @ _rotation(32, 7), np.arange(100))
    assert a == pytest.approx(1.0, abs=1e-3) and b == pytest.approx(0.0, abs=1e-3)


def _top10(q: np.ndarray, base: np.ndarray) -> np.ndarray:
    return np.argsort(-(q @ base.T), axis=1)[:, :10]


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got.tolist(), want.tolist())]))


def test_procrustes_ridge_runs_from_least_squares_to_procrustes(unit):
    rng = np.random.default_rng(8)
    x = unit[:500, :24].astype(np.float64)
    y = x @ rng.standard_normal((24, 20)) + 0.1 * rng.standard_normal((500, 20))
    # ridge -> 0: the least-squares solution without a bias (numpy's lstsq); ridge -> inf: Procrustes' W.
    np.testing.assert_allclose(ProcrustesRidge(ridge=1e-9).fit(x, y).params["W"],
                               np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ProcrustesRidge(ridge=1e7).fit(x, y).params["W"], Procrustes().fit(x, y).params["W"],
                               atol=1e-5)


def test_auto_keeps_the_rotation_where_least_squares_overfits_few_noisy_pairs():
    # Old space = the new one rotated, plus noise, and barely more pairs than dimensions: least squares fits the
    # noise, the rotation does not. Queries come from another distribution than the fitting chunks (here: a
    # few directions dominate), as short queries differ from whole chunks; what counts is that a mapped query
    # finds the documents the old model's own query finds.
    rng = np.random.default_rng(9)
    d = 48
    r = _rotation(d, 10)
    x = normalise(rng.standard_normal((70, d)))
    y = normalise(x @ r + 0.25 * rng.standard_normal((70, d)) / np.sqrt(d))
    docs_new = normalise(rng.standard_normal((3000, d)))
    docs_old = docs_new @ r
    q = normalise(rng.standard_normal((200, d)) * np.linspace(3, 0.2, d))
    want = _top10(q @ r, docs_old)
    chosen, scores = choose(x, y, list(AUTO))
    assert len(scores) == 1 + len(ProcrustesRidge.GRID)
    got = {name: _recall(_top10(a.apply(q), docs_old), want)
           for name, a in (("auto", chosen), ("affine", Affine().fit(x, y)))}
    assert got["auto"] > got["affine"] + 0.2, got


def test_auto_follows_the_new_models_neighbours_not_the_old_ones():
    # Old space = the new one stretched unevenly (y = x M, M no rotation). Least squares (the smallest ridge)
    # reproduces the old model's neighbours almost exactly, but a migration moves to the new model: `choose`
    # ranks by recall_new@10, picks the rotation, and fresh queries mapped by it find more of the new model's
    # own top 10 among the old vectors than the least-squares map's do.
    rng = np.random.default_rng(11)
    d = 32
    m = _rotation(d, 12) @ np.diag(np.geomspace(4.0, 0.25, d)) @ _rotation(d, 13)
    x = normalise(rng.standard_normal((2000, d)))
    chosen, scores = choose(x, x @ m, list(AUTO))
    by = {(s.name, s.extra.get("ridge")): s for s in scores}
    least = by["procrustes-ridge", 0.1]
    assert least.recall_at_10 > by["procrustes", None].recall_at_10  # the old criterion would pick least squares
    assert chosen.name == "procrustes" and by["procrustes", None].recall_new_at_10 > least.recall_new_at_10
    docs_new = normalise(rng.standard_normal((3000, d)))
    q = normalise(rng.standard_normal((200, d)))
    want = _top10(q, docs_new)
    lsq = ProcrustesRidge(ridge=0.1).fit(x, x @ m)
    assert _recall(_top10(chosen.apply(q), docs_new @ m), want) > _recall(_top10(lsq.apply(q), docs_new @ m), want) + 0.1
