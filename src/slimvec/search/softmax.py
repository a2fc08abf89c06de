"""Softmax fusion: each ranking's scores become a per-query probability distribution, and those are summed.

CombSUM (Fox and Shaw, 1994) of per-query softmax-normalised scores. For one ranking with scores s (best
first), z = (s - max s) / std(s) standardises them per query, and p = exp(z / T) / sum(exp(z / T)) over the
ranking's head spreads one unit of mass over its documents; the fused score of a document is the sum of its p
over the rankings (0 where a ranking lacks it). The statistics (std and the sum) come from the first
`SOFTMAX_HEAD` entries, so a deeper list (k or a rerank depth above 100) leaves them unchanged.

Why it never drags far below the better part: an informative ranking has a peaked head (its top documents
stand several standard deviations above the rest), so its top document takes a large share of its mass; an
uninformative ranking is flat and spreads its mass thinly, so it can only reorder documents the other
ranking scores about equally. Equal-strength rankings still add up, as in CombSUM. Being a function of
standardised scores, it is unchanged by any positive affine rescaling of a ranking's scores, so BM25,
cosine, SPLADE and MaxSim scores need no calibration. Unlike RRF (Cormack et al., 2009), which gives every
list the same weight whatever its scores say, and min-max normalisation, which stretches a flat list's top
to 1 (see Bruch et al., 2023, "An Analysis of Fusion Functions for Hybrid Retrieval", on normalisation).
The temperature was chosen once on the sets in ../shared/data (BENCHMARKS.md, issue 12 item 6); results are
flat for 0.25 <= 1/T <= 0.75.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slimvec.errors import ConfigError
from slimvec.search.fusion import FUSION_DEPTH, Ranking, _first_rows, _first_seen, _ordered

# Temperature in standard deviations of the ranking's head scores: p is proportional to exp(z / T).
SOFTMAX_TEMPERATURE = 2.0
# Entries of each ranking whose scores set the standard deviation and the normalising sum.
SOFTMAX_HEAD = FUSION_DEPTH


def softmax_probabilities(scores: Sequence[float] | np.ndarray, temperature: float = SOFTMAX_TEMPERATURE,
                          head: int = SOFTMAX_HEAD) -> np.ndarray:
    """One ranking's scores (best first) as softmax probabilities of their standardised values.

    scores: (n,) floats in any unit; returns (n,) float64 whose first min(n, head) entries sum to 1. All scores
    equal (or one score): the head's mass is spread evenly. Raises ConfigError for a temperature that is not
    a positive finite number, head < 1, or a score that is not finite.
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"softmax temperature must be a positive number, got {temperature}")
    if head < 1:
        raise ConfigError(f"softmax head must be at least 1, got {head}")
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    if not np.isfinite(s).all():
        raise ConfigError("softmax fusion needs finite scores; a ranking holds NaN or infinity")
    top = s[:head]
    sd = float(top.std())
    if sd == 0.0:
        x = np.zeros_like(s)
    else:
        # Shifted by the head's maximum so every exponent is <= 0 inside the head: no overflow.
        x = (s - top.max()) / (temperature * sd)
    e = np.exp(x)
    return e / float(e[:head].sum())


def softmax(rankings: Sequence[Ranking], weights: Sequence[float] | None = None,
            temperature: float = SOFTMAX_TEMPERATURE) -> Ranking:
    """Sum over rankings of weight x the softmax probability of each document's standardised score.

    rankings: lists of (doc number, score, row), best first; weights: one per ranking, >= 0 (default all 1),
    e.g. fitted on a labelled split. Returns the fused ranking, best first; scores lie in [0, sum(weights)].
    Ties go to the document met first across the inputs (as `rrf`). Raises ConfigError when the weights do
    not match the rankings or are negative, or for a bad temperature or non-finite scores.
    """
    weights = [1.0] * len(rankings) if weights is None else [float(w) for w in weights]
    if len(weights) != len(rankings):
        raise ConfigError(f"{len(weights)} weights for {len(rankings)} rankings")
    if any(not (math.isfinite(w) and w >= 0) for w in weights):
        raise ConfigError(f"fusion weights must be finite numbers >= 0, got {weights}")
    scores: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        if not ranking:
            continue
        p = softmax_probabilities([s for _, s, _ in ranking], temperature)
        for (doc, _, _), x in zip(ranking, p.tolist()):
            scores[doc] = scores.get(doc, 0.0) + w * x
    return _ordered(scores, _first_rows(rankings), _first_seen(rankings))
