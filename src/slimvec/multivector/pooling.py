"""Token pooling and pruning at index time: fewer token vectors per document, little MaxSim lost.

Pooling: hierarchical agglomerative clustering with Ward linkage on cosine distance (1 - <u, v>) of one
document's token vectors, cut into max(n // pool_factor, 1) clusters; each cluster is replaced by its mean,
renormalised to unit length, and its size is kept (Clavié et al., "Reducing the Footprint of Multi-Vector
Retrieval with Minimal Performance Impact via Token Pooling", 2024; PyLate; sentence-transformers'
`HierarchicalTokenPooling`, whose clustering method "ward" reproduces with `num_protected_tokens=0`). The
linkage is scipy's (fastcluster when installed, like sentence-transformers).

Three methods (`method`: how Ward sees the tokens, and how its tree is cut):
- "ward": the condensed cosine distances, as sentence-transformers does.
- "ward-profile": each token described by its row of cosine distances to every token of its document (its
  distance profile), Euclidean Ward over those rows. This is what PyLate <= 1.3.4 computed (it passed the
  square distance matrix to `linkage`, which reads a 2-D array as observations); tokens merge when they
  relate alike to the whole document, not only to each other. Measured on full NFCorpus (exhaustive MaxSim,
  MiniLM tokens, factor 2) it keeps 99.4% of unpooled nDCG@10 against 98.2% for "ward"
  (benchmarks/multivector_pooling.py); the `multivector-pooled` profile used it until session 8.
- "ward-profile-capped": the same Ward tree as "ward-profile", cut into the same number of clusters, but
  top-down with clusters of more than ceil(pool_factor) tokens split first (2 at factor 2), then by merge
  height, as fcluster's maxclust cuts. Plain Ward leaves a few large clusters (a median of 15-16 tokens in a
  document's largest cluster at factor 2, benchmarks/multivector_pool_sizes.py) whose mean matches no query
  token well; the size-aware cut spends the same row budget on splitting them, towards balanced clusters.
  The cap is a priority, not a bound: splitting a lopsided subtree yields singletons, so the budget can run
  out with clusters above it left. When no "ward-profile" cluster is above the cap the two cuts are the same
  partition.
  Chosen on held-out queries (SciFact train, NFCorpus dev: benchmarks/multivector_pool_select.py), it is
  the `multivector-pooled` default (BENCHMARKS.md, "Session 8").

Pruning: drop tokens whose word piece is punctuation or a stopword before pooling (ColBERT's document
skiplist does the punctuation half).
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Callable
from functools import cache

import numpy as np

from slimvec.encoders.multivector import PUNCTUATION, STOPWORDS, skiplist_ids  # noqa: F401 - pruning lives with the encoder


@cache
def _linkage() -> Callable[..., np.ndarray]:
    try:
        from fastcluster import linkage
    except (ImportError, OSError, RuntimeError):
        from scipy.cluster.hierarchy import linkage
    return linkage


POOL_METHODS = ("ward", "ward-profile", "ward-profile-capped")
# "ward-profile-capped": clusters above ceil(CAP_RATIO * pool_factor) tokens are split first; 1.0 (2 tokens at
# factor 2) was the best of caps 2, 3, 4 at factor 2 on the selection splits (BENCHMARKS.md, "Session 8").
CAP_RATIO = 1.0


def pool_document(tokens: np.ndarray, pool_factor: float, method: str = "ward") -> tuple[np.ndarray, np.ndarray]:
    """Ward-pool one document's unit token vectors.

    tokens: (n, dim) float, L2-normalised. pool_factor >= 1 (1 = no pooling; 2 keeps about half).
    method: one of POOL_METHODS (module docstring).
    Returns (pooled (m, dim) float32 unit rows, counts (m,) int32 tokens merged into each row), m =
    max(n // pool_factor, 1) for n > 0. Raises ValueError for pool_factor < 1 or an unknown method.
    """
    x = np.asarray(tokens, dtype=np.float32)
    labels = cluster_labels(x, pool_factor, method)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), x.shape[1]), np.float32)
    np.add.at(sums, inverse, x)
    return _unit(sums / counts[:, None]), counts.astype(np.int32)


def cluster_labels(tokens: np.ndarray, pool_factor: float, method: str = "ward") -> np.ndarray:
    """Cluster of each token of one document: (n,) int64 labels in 0..m-1, m = max(n // pool_factor, 1) (every
    token its own cluster when m >= n). Same arguments and errors as `pool_document`."""
    from scipy.cluster.hierarchy import fcluster
    from scipy.spatial.distance import squareform

    if pool_factor < 1:
        raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
    if method not in POOL_METHODS:
        raise ValueError(f"unknown token pooling method {method!r}; expected one of {', '.join(POOL_METHODS)}")
    x = np.asarray(tokens, dtype=np.float32)
    n = len(x)
    clusters = max(int(n // pool_factor), 1)
    if n == 0 or clusters >= n:
        return np.arange(n, dtype=np.int64)
    dist = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    if method == "ward":
        link = _linkage()(squareform(dist, checks=False), method="ward")
    else:  # rows of the distance matrix are the observations, on purpose: silence scipy's guess otherwise
        from scipy.cluster.hierarchy import ClusterWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ClusterWarning)
            link = _linkage()(dist.astype(np.float64), method="ward")
    if method == "ward-profile-capped":
        return _capped_cut(link, clusters, math.ceil(CAP_RATIO * pool_factor))
    return (fcluster(link, t=clusters, criterion="maxclust") - 1).astype(np.int64)


def _capped_cut(link: np.ndarray, clusters: int, cap: int) -> np.ndarray:
    """Labels of a top-down cut of linkage `link` into `clusters` subtrees: split the subtree with more than `cap`
    leaves first, then the one merged highest (ties: the lower node id)."""
    n = len(link) + 1
    size = np.concatenate([np.ones(n), link[:, 3]])
    height = np.concatenate([np.zeros(n), link[:, 2]])

    def key(node: int) -> tuple[int, float, int]:
        return (-int(size[node] > cap), -float(height[node]), node)

    heap = [key(2 * n - 2)]
    leaves: list[int] = []  # single tokens popped: they cannot split, and still count as clusters
    while heap and len(heap) + len(leaves) < clusters:
        node = heapq.heappop(heap)[2]
        if node < n:
            leaves.append(node)
            continue
        for child in link[node - n, :2].astype(np.int64):
            heapq.heappush(heap, key(int(child)))
    labels = np.empty(n, np.int64)
    for label, root in enumerate([k[2] for k in heap] + leaves):
        stack = [root]
        while stack:
            v = stack.pop()
            if v < n:
                labels[v] = label
            else:
                stack.extend(link[v - n, :2].astype(np.int64).tolist())
    return labels


def pool_tokens(docs: list[np.ndarray], pool_factor: float, method: str = "ward"
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`pool_document` over a list of documents: ([pooled (m_i, dim)], [counts (m_i,)])."""
    pooled, counts = [], []
    for d in docs:
        p, c = pool_document(d, pool_factor, method)
        pooled.append(p)
        counts.append(c)
    return pooled, counts


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
