"""What every codec promises, checked family by family on real MiniLM vectors (300 SciFact docs, 100 queries):
bounded round-trip error, scores equal to decode-then-dot, and a recall floor. (PQ, fitted differently, keeps
its own copies in test_codecs_pq.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from _real_vectors import recall_at_k

from slimvec.codecs import make_codec
from slimvec.index.base import top_k

# Max relative L2 error of decode(encode(x)). Measured: float16 2e-4, float8 0.030 (both scale modes),
# int8 0.0066, int4 0.121, binary 0.65, rbinary:2/3/4 0.41/0.25/0.17 (the error falls with bits).
ROUND_TRIP = [("float16", 1e-3), ("float8", 0.04), ("float8:vector", 0.04), ("int8", 0.01), ("int4", 0.15),
              ("binary", 0.7), ("rbinary:2", 0.45), ("rbinary:3", 0.3), ("rbinary:4", 0.2)]

# Codecs whose score() is its own kernel (lookup tables, popcounts, chains), checked against decode-then-dot.
# The float codecs score by decoding, so that comparison would hold by construction: test_codecs_floats.py
# checks them against inner products of the original vectors instead.
SCORED = ["int8", "int4", "binary", "binary:rotate", "rbinary:2", "rbinary:3:rotate", "rbinary:4", "pca:192 > float8",
          "pca:192 > int8", "rotate > rbinary:2", "truncate:256 > int4", "pca:128:whiten > int8"]

# Recall@10 against exact search (asymmetric scores). Measured: float16 1.000, float8 0.985, float8:vector
# 0.978, int8 0.997, int4 0.956, binary 0.726, binary:rotate 0.736, rbinary:2/3/4 0.871/0.916/0.966,
# pca:192 > float8 0.944, pca:192 > int8 0.955; floors sit ~0.03-0.05 lower (300 docs give noisy recall).
RECALL = [("float32", 1.0), ("float16", 0.99), ("float8", 0.95), ("float8:vector", 0.95), ("int8", 0.98),
          ("int4", 0.92), ("binary", 0.65), ("binary:rotate", 0.65), ("rbinary:2", 0.8), ("rbinary:3", 0.87),
          ("rbinary:4", 0.9), ("pca:192 > float8", 0.9), ("pca:192 > int8", 0.92)]


def _fitted(spec: str, docs: np.ndarray):  # noqa: ANN202 - a Codec
    codec = make_codec(spec)
    codec.fit(docs)
    return codec


@pytest.mark.parametrize(("spec", "max_rel_err"), ROUND_TRIP)
def test_round_trip_error_is_bounded(spec: str, max_rel_err: float, real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, _ = real
    codec = _fitted(spec, docs)
    assert np.linalg.norm(codec.decode(codec.encode(docs)) - docs, axis=1).max() < max_rel_err


@pytest.mark.parametrize("spec", SCORED)
def test_score_matches_decode_then_dot(spec: str, real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    codec = _fitted(spec, docs)
    codes = codec.encode(docs)
    np.testing.assert_allclose(codec.score(queries, codes), queries @ codec.decode(codes).T, atol=1e-5)


@pytest.mark.parametrize(("spec", "floor"), RECALL)
def test_recall_at_10_on_real_embeddings(spec: str, floor: float, real: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real
    codec = _fitted(spec, docs)
    truth = top_k(queries @ docs.T, 10)[1]
    assert recall_at_k(truth, top_k(codec.score(queries, codec.encode(docs)), 10)[1]) >= floor
