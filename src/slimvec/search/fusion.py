"""Fusing several document rankings into one: reciprocal rank fusion and weighted normalised scores.

A ranking is a list of (doc number, score, best chunk row), best first, as `search.ranking.doc_ranking` makes.
The fusers `rrf` and `weighted` are registered in `slimvec.registry` (kind "fuser"), as is `softmax`
(`search/softmax.py`, the built-in hybrid profiles' fusion).
The fused entry keeps the row of the first ranking (in input order) that holds the document, so the
snippet comes from the first retriever of the mode (dense, for "hybrid").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slimvec.errors import ConfigError

Ranking = list[tuple[int, float, int]]

RRF_K = 60
# How deep each retriever's ranking goes before fusion (at least this, and at least the k asked for).
FUSION_DEPTH = 100


def _first_rows(rankings: Sequence[Ranking]) -> dict[int, int]:
    rows: dict[int, int] = {}
    for ranking in rankings:
        for doc, _, row in ranking:
            rows.setdefault(doc, row)
    return rows


def _ordered(scores: dict[int, float], rows: dict[int, int], order_hint: dict[int, int]) -> Ranking:
    # best fused score first; ties go to the document met first across the inputs, then the lower number
    return [(d, s, rows[d]) for d, s in sorted(scores.items(), key=lambda kv: (-kv[1], order_hint[kv[0]], kv[0]))]


def _first_seen(rankings: Sequence[Ranking]) -> dict[int, int]:
    seen: dict[int, int] = {}
    depth = max((len(r) for r in rankings), default=0)
    for i in range(depth):  # interleave: rank 1 of every input, then rank 2, ...
        for ranking in rankings:
            if i < len(ranking):
                seen.setdefault(ranking[i][0], len(seen))
    return seen


def rrf(rankings: Sequence[Ranking], k: int = RRF_K) -> Ranking:
    """Reciprocal rank fusion: each document scores sum over rankings of 1 / (k + rank), rank from 1."""
    if k < 0:
        raise ConfigError(f"RRF k must be non-negative, got {k}")
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (doc, _, _) in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return _ordered(scores, _first_rows(rankings), _first_seen(rankings))


def normalise(scores: np.ndarray, norm: str = "minmax") -> np.ndarray:
    """One query's scores rescaled: "minmax" to [0, 1] (all equal: 1), "zscore" to mean 0, std 1 (all equal: 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    if norm == "minmax":
        lo, hi = scores.min(), scores.max()
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    if norm == "zscore":
        sd = scores.std()
        return np.zeros_like(scores) if sd == 0 else (scores - scores.mean()) / sd
    raise ConfigError(f"unknown score normalisation {norm!r}: choose minmax or zscore")


def weighted(rankings: Sequence[Ranking], weights: Sequence[float] | None = None, norm: str = "minmax") -> Ranking:
    """Weighted sum of per-query normalised scores; a document missing from a ranking adds nothing there."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ConfigError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        if not ranking:
            continue
        normed = normalise(np.array([s for _, s, _ in ranking]), norm)
        for (doc, _, _), s in zip(ranking, normed):
            scores[doc] = scores.get(doc, 0.0) + w * float(s)
    return _ordered(scores, _first_rows(rankings), _first_seen(rankings))


def fuse(rankings: Sequence[Ranking], k: int, method: str = "rrf", **options: object) -> Ranking:
    """The top `k` of the fused rankings by the registered fuser `method` ("rrf", "weighted", "softmax"...).

    Raises ConfigError for an unknown method.
    """
    from slimvec import registry

    return registry.load("fuser", method)(rankings, **options)[:k]


def fusion_depth(k: int, n_rankings: int) -> int:
    """How many documents each input ranking should hold: k alone, max(k, FUSION_DEPTH) when fusing."""
    return k if n_rankings <= 1 else max(k, FUSION_DEPTH)
