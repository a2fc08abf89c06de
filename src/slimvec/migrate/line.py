"""The per-query score line of search through a migration: a native score s enters the merged ranking as a*s + b.

Documents already re-embedded are scored natively (new query . new vector), the rest through the old part
(mapped or old-model query . old vector); the two scales differ per query. A fixed set of reference chunks, pairs
of the fitting sample kept at start with their vectors in both spaces, is scored by the query in both: a and b
match the mean and spread of the query's top `depth` reference scores in the new space to those in the old
part's (moment matching of the head of the two score distributions; both score the same chunks, so no assumption
about the query distribution is needed). The references are `REFERENCES` sample pairs picked once at start
(`pick_references`), so the line costs one product of the query with a (REFERENCES, dim) matrix per space.
Every setting here was chosen on SciFact train and NFCorpus dev queries only (benchmarks/migrate_line_select.py,
BENCHMARKS.md "Session 8").
"""

from __future__ import annotations

from enum import Enum

import numpy as np

# Chosen on SciFact train and NFCorpus dev (benchmarks/migrate_line_select.py, BENCHMARKS.md "Session 8"):
# keeping every sample pair and matching the top 2.5% had the best worst case (0.974 of the old model's nDCG@10
# at the start, the only setting above 0.97). 256 k-means medoids (top 10%, the best at most 256) cost ~0.03 ms
# a query instead of ~0.7 but started 1.6 points lower (0.958): `slimvec migrate --references 256`.
REFERENCES = 5000  # reference pairs the line scores per query: every pair of the default sample
DEPTH_SHARE = 0.025  # the line matches the top 2.5% of the query's reference scores ...
DEPTH_MIN = 5  # ... but at least this many


class Pick(str, Enum):
    """How the line's references are picked from the fitting sample."""

    RANDOM = "random"  # a seeded uniform sample: the references' score distribution is the sample's
    KMEANS = "kmeans"  # the sample chunk nearest each spherical k-means centre (new space): even coverage


def reference_depth(n: int, share: float = DEPTH_SHARE, least: int = DEPTH_MIN) -> int:
    """How many of a query's top reference scores (of n references) the line matches."""
    return max(1, min(n, max(least, round(share * n))))


def pick_references(x_new: np.ndarray, count: int = REFERENCES, pick: Pick | str = Pick.KMEANS,
                    seed: int = 0) -> np.ndarray:
    """Sorted int64 row indices of at most `count` references among the sample's rows; x_new: float32 (n, d_new)
    new-space vectors of the sample. KMEANS runs faiss's spherical k-means (Lloyd 1982) with `count` centres on
    the new vectors and keeps the sample row nearest each centre (duplicates once)."""
    n = len(x_new)
    if count >= n:
        return np.arange(n, dtype=np.int64)
    if Pick(pick) is Pick.RANDOM:
        return np.sort(np.random.default_rng(seed).permutation(n)[:count]).astype(np.int64)
    import faiss

    x = np.ascontiguousarray(x_new, dtype=np.float32)
    # min_points_per_centroid only decides whether faiss prints a warning (5,000 points for 256 centres is below
    # its 39 per centre); the clustering is the same.
    km = faiss.Kmeans(x.shape[1], count, niter=20, seed=seed, spherical=True, verbose=False, min_points_per_centroid=1)
    km.train(x)
    nearest = np.argmax(km.centroids @ x.T, axis=1)
    return np.unique(nearest).astype(np.int64)


class ScoreLine:
    """The per-query line from reference pairs x_new float32 (m, d_new) and y_old float32 (m, d_old), rows of
    the same chunks in the two spaces; depth: the head size matched (default reference_depth(m))."""

    def __init__(self, x_new: np.ndarray, y_old: np.ndarray, depth: int | None = None) -> None:
        if len(x_new) != len(y_old) or len(x_new) == 0:
            raise ValueError(f"score line: need paired, non-empty references, got {len(x_new)} and {len(y_old)} rows")
        # Kept transposed, (dim, m) C-contiguous: a lone query's product streams each matrix once in row order,
        # 1.2-1.5x faster than through a transposed view (BENCHMARKS.md "Session 14"); x and y are views of them.
        self.xt = np.ascontiguousarray(np.asarray(x_new, dtype=np.float32).T)
        self.yt = np.ascontiguousarray(np.asarray(y_old, dtype=np.float32).T)
        self.x, self.y = self.xt.T, self.yt.T
        self.depth = reference_depth(len(self.x)) if depth is None else max(1, min(int(depth), len(self.x)))

    def __len__(self) -> int:
        return len(self.x)

    def lines(self, qn: np.ndarray, qo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a, b), float64 (queries,) each: a native score s goes to a*s + b on the old part's scale. qn: float32
        (queries, d_new), the new-model query; qo: float32 (queries, d_old), the query the old part scores with."""
        q = len(qn)
        d = self.depth
        s = np.empty((2 * q, len(self.x)), np.float32)
        np.matmul(qn, self.xt, out=s[:q])
        np.matmul(qo, self.yt, out=s[q:])
        if d < s.shape[1]:
            s = np.partition(s, s.shape[1] - d, axis=1)[:, -d:]  # one pass over both spaces' scores
        h = s.astype(np.float64)
        mean = h.sum(axis=1) / d
        # E[s^2] - E[s]^2 in float64 (scores are at most 1 in size, d small): half the cost of ndarray.std.
        spread = np.sqrt(np.maximum(np.einsum("ij,ij->i", h, h) / d - mean * mean, 0.0))
        a = spread[q:] / np.maximum(spread[:q], 1e-6)
        return a, mean[q:] - a * mean[:q]
