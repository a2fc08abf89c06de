"""Truncation, PCA and rotation: exact recovery of low-rank data, scikit-learn parity, adjoint queries."""

from __future__ import annotations

import numpy as np
import pytest
from _real_vectors import recall_at_k
from sklearn.decomposition import TruncatedSVD

from slimvec.codecs import make_codec
from slimvec.codecs.transforms import PCA, Rotation, Truncate, random_orthogonal
from slimvec.index.base import top_k


@pytest.fixture(scope="module")
def low_rank() -> np.ndarray:
    """Unit vectors lying exactly in a random 16-dimensional subspace of R^64."""
    rng = np.random.default_rng(7)
    basis = random_orthogonal(64, 7)[:16]
    x = rng.standard_normal((500, 16)).astype(np.float32) @ basis
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_random_orthogonal_is_orthogonal_and_seeded() -> None:
    r = random_orthogonal(50, 3)
    np.testing.assert_allclose(r @ r.T, np.eye(50), atol=1e-5)
    np.testing.assert_array_equal(r, random_orthogonal(50, 3))
    assert not np.allclose(r, random_orthogonal(50, 4))


def test_truncate_keeps_prefix_renormalised_and_pads_back() -> None:
    t = Truncate(2)
    x = np.array([[3.0, 4.0, 12.0]], np.float32)
    t.fit(x)
    np.testing.assert_allclose(t.forward(x), [[0.6, 0.8]])
    np.testing.assert_allclose(t.backward(np.array([[0.6, 0.8]], np.float32)), [[0.6, 0.8, 0.0]])
    np.testing.assert_allclose(t.query(x), [[3.0, 4.0]])
    assert t.out_dim(3) == 2


def test_pca_recovers_low_rank_data_exactly(low_rank: np.ndarray) -> None:
    t = PCA(16)
    t.fit(low_rank)
    y = t.forward(low_rank)
    assert y.shape == (500, 16)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(t.backward(y), low_rank, atol=1e-4)


def test_pca_subspace_matches_scikit_learn(real: tuple[np.ndarray, np.ndarray]) -> None:
    # Uncentred PCA = truncated SVD of the sample: compare the projectors (bases may differ by sign/rotation).
    docs, _ = real
    t = PCA(32)
    t.fit(docs)
    svd = TruncatedSVD(32, algorithm="arpack", random_state=0).fit(docs.astype(np.float64))
    np.testing.assert_allclose(t.fwd.T @ t.fwd, svd.components_.T @ svd.components_, atol=1e-4)


def test_whitened_pca_has_unit_second_moment_and_unbiased_scores(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    t = PCA(64, whiten=True)
    t.fit(docs)
    y = t.forward(docs)
    np.testing.assert_allclose((y**2).mean(axis=0), 1.0, rtol=1e-3)
    plain = PCA(64, normalize=False)
    plain.fit(docs)
    # The query side carries the inverse scale, so whitening leaves the projected inner products unchanged.
    np.testing.assert_allclose(
        t.query(queries) @ y.T, plain.query(queries) @ plain.forward(docs).T, atol=1e-5
    )


@pytest.mark.parametrize("transform", [Truncate(40), PCA(40), PCA(40, whiten=True), Rotation(5)])
def test_query_map_is_adjoint_of_backward(transform, real: tuple[np.ndarray, np.ndarray]) -> None:  # noqa: ANN001
    docs, queries = real
    transform.fit(docs)
    y = transform.forward(docs)
    np.testing.assert_allclose(transform.query(queries) @ y.T, queries @ transform.backward(y).T, atol=1e-5)


def test_rotation_preserves_inner_products(real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    t = Rotation(1)
    t.fit(docs)
    np.testing.assert_allclose(t.query(queries) @ t.forward(docs).T, queries @ docs.T, atol=1e-5)
    np.testing.assert_allclose(t.backward(t.forward(docs)), docs, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "max_err", "floor"),
    [("pca:192", 0.17, 0.92), ("pca:128", 0.35, 0.85), ("truncate:192", 0.9, 0.62), ("rotate", 1e-5, 1.0)],
)
def test_real_embeddings_error_and_recall(
    spec: str, max_err: float, floor: float, real: tuple[np.ndarray, np.ndarray]
) -> None:
    # Measured on 300 SciFact docs / 100 queries (float32 output): max relative error pca:192 0.148,
    # pca:128 0.308, truncate:192 0.864 (MiniLM is not Matryoshka-trained); recall@10 0.958, 0.892, 0.684.
    docs, queries = real
    codec = make_codec(spec)
    codec.fit(docs)
    codes = codec.encode(docs)
    assert np.linalg.norm(codec.decode(codes) - docs, axis=1).max() < max_err
    truth = top_k(queries @ docs.T, 10)[1]
    assert recall_at_k(truth, top_k(codec.score(queries, codes), 10)[1]) >= floor
