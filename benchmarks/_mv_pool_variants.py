"""Candidate token pooling variants for benchmarks/multivector_pool_select.py (session 8): each keeps the same
budget as the package's pooling (max(n // factor, 1) rows per document) and differs in which tokens may merge.

- "ward-profile-sentence": `ward-profile` (distance-profile rows over the whole document) run inside each
  sentence (title its own sentence); a sentence shorter than the factor joins its neighbour; clusters are shared
  out over sentences by length (largest remainder), so no cluster crosses a sentence boundary.
- "ward-profile-window<W>": the same inside fixed windows of W consecutive tokens (no text needed).
- "ward-contiguous": Ward on the token vectors with a chain connectivity (scikit-learn), clusters are runs of
  neighbouring tokens.
- "ward-profile-cap<K>": `ward-profile`'s tree cut into the same number of clusters, but splitting clusters of
  more than K tokens first (a size-aware cut; fcluster's maxclust splits by merge height only). The package's
  `ward-profile-capped` is K = ceil(factor): "ward-profile-cap2" at factor 2.
- "ward-profile-sentence-cap<K>": both (the size-aware cut inside each sentence; not run in session 8).
- "prune-ward-profile": stopwords and punctuation dropped (the model's own skiplist), `ward-profile` on the
  rest down to the same row budget.

Sentences and word-piece ids come from the model's tokenizer over the cached documents' text (title + " " + text,
cut at the model's 254 word pieces, as benchmarks/_mv_cache.py encoded them); the token vectors are not
re-encoded.
"""

from __future__ import annotations

import sys
import warnings
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, read_jsonl
from _mv_cache import encoder

from slimvec.multivector.pooling import POOL_METHODS, _capped_cut, _linkage, _unit, pool_document, skiplist_ids

SENTENCE_END = frozenset(".!?")


@cache
def structure(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per document of `name` (cache order): (sentence index per token (n,), word-piece id per token (n,))."""
    enc = encoder()
    tok = enc._fast_tokenizer
    limit = enc.max_tokens
    sents, ids = [], []
    for d in read_jsonl(DATA / name / "corpus.jsonl"):
        title = d.get("title") or ""
        text = title + " " + d["text"]
        e = tok.encode(text, add_special_tokens=False)
        spans, pieces = e.offsets[:limit], e.tokens[:limit]
        s = np.zeros(len(spans), np.int64)
        cur = 0
        for i in range(1, len(spans)):
            prev_end = spans[i - 1][1]
            if (title and spans[i - 1][0] < len(title) <= spans[i][0]) or \
                    (pieces[i - 1] in SENTENCE_END and spans[i][0] > prev_end):
                cur += 1
            s[i] = cur
        sents.append(s)
        ids.append(np.asarray(e.ids[:limit], np.int64))
    return sents, ids


def _profile_labels(x: np.ndarray, dist_rows: np.ndarray, k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import ClusterWarning, fcluster

    if k >= len(x):
        return np.arange(len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterWarning)
        link = _linkage()(dist_rows.astype(np.float64), method="ward")
    return fcluster(link, t=k, criterion="maxclust") - 1


def _quotas(lengths: np.ndarray, total: int) -> np.ndarray:
    exact = lengths * total / lengths.sum()
    q = np.maximum(np.floor(exact).astype(np.int64), 1)
    rest = total - q.sum()
    if rest > 0:
        for i in np.argsort(-(exact - np.floor(exact)), kind="stable")[:rest]:
            q[i] += 1
    while q.sum() > total:  # min-1 overshoot: take back from the segment with the fewest tokens per cluster
        cand = np.where(q > 1)[0]
        q[cand[np.argmin(lengths[cand] / q[cand])]] -= 1
    return np.minimum(q, lengths)


def _merge_short(seg: np.ndarray, minimum: float) -> np.ndarray:
    """Relabel segments so each has >= minimum tokens (a short one joins its previous, or next, neighbour)."""
    _, seg = np.unique(seg, return_inverse=True)
    while True:
        lengths = np.bincount(seg)
        short = np.where(lengths < minimum)[0]
        if len(short) == 0 or len(lengths) == 1:
            return seg
        s = short[0]
        target = s - 1 if s > 0 else s + 1
        seg = np.where(seg == s, target, seg)
        _, seg = np.unique(seg, return_inverse=True)


def pool_segments(x: np.ndarray, factor: float, seg: np.ndarray, cap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    clusters = max(int(n // factor), 1)
    if n == 0 or clusters >= n:
        return _unit(x), np.ones(n, np.int32)
    seg = _merge_short(seg, factor)
    lengths = np.bincount(seg)
    if clusters < len(lengths):  # fewer clusters than segments (tiny documents): one cluster per merged run
        seg = np.minimum(seg * clusters // len(lengths), clusters - 1)
        lengths = np.bincount(seg)
    q = _quotas(lengths, clusters)
    dist = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    labels = np.empty(n, np.int64)
    base = 0
    for s, k in enumerate(q):
        idx = np.where(seg == s)[0]
        labels[idx] = base + (_capped_labels(dist[idx], int(k), cap) if cap else
                              _profile_labels(x[idx], dist[idx], int(k)))
        base += int(k)
    return _means(x, labels)


def _means(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), x.shape[1]), np.float32)
    np.add.at(sums, inverse, x)
    return _unit(sums / counts[:, None]), counts.astype(np.int32)


def pool_contiguous(x: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse import diags
    from sklearn.cluster import AgglomerativeClustering

    n = len(x)
    clusters = max(int(n // factor), 1)
    if n == 0 or clusters >= n:
        return _unit(x), np.ones(n, np.int32)
    conn = diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1], shape=(n, n))
    labels = AgglomerativeClustering(n_clusters=clusters, linkage="ward", connectivity=conn).fit_predict(x)
    return _means(x, labels)


def pool_capped(x: np.ndarray, factor: float, cap: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    clusters = max(int(n // factor), 1)
    if n == 0 or clusters >= n:
        return _unit(x), np.ones(n, np.int32)
    return _means(x, _capped_labels(np.clip(1.0 - x @ x.T, 0.0, 2.0), clusters, cap))


def _capped_labels(dist_rows: np.ndarray, clusters: int, cap: int) -> np.ndarray:
    n = len(dist_rows)
    if clusters >= n:
        return np.arange(n)
    from scipy.cluster.hierarchy import ClusterWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterWarning)
        link = _linkage()(dist_rows.astype(np.float64), method="ward")
    return _capped_cut(link, clusters, cap)  # the package's cut (ward-profile-capped is cap = factor)


@cache
def _skip() -> np.ndarray:
    return skiplist_ids(encoder().model.tokenizer, punctuation=True, stopwords=True)


def pool_pruned(x: np.ndarray, factor: float, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    clusters = max(int(n // factor), 1)
    keep = ~np.isin(ids, _skip())
    if keep.sum() == 0:
        keep[:] = True
    y = x[keep]
    if len(y) <= clusters:
        return _unit(y), np.ones(len(y), np.int32)
    return _means(y, _profile_labels(y, np.clip(1.0 - y @ y.T, 0.0, 2.0), clusters))


def pool_variant(name: str, doc: int, x: np.ndarray, factor: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Pool document `doc` of dataset `name` (its cached token vectors `x`) with `method` (package or variant)."""
    if method in POOL_METHODS:
        return pool_document(x, factor, method)
    if method == "ward-profile-sentence":
        return pool_segments(x, factor, structure(name)[0][doc])
    if method.startswith("ward-profile-sentence-cap"):
        return pool_segments(x, factor, structure(name)[0][doc], int(method.removeprefix("ward-profile-sentence-cap")))
    if method.startswith("ward-profile-window"):
        w = int(method.removeprefix("ward-profile-window"))
        return pool_segments(x, factor, np.arange(len(x)) // w)
    if method == "ward-contiguous":
        return pool_contiguous(x, factor)
    if method.startswith("ward-profile-cap"):
        return pool_capped(x, factor, int(method.removeprefix("ward-profile-cap")))
    if method == "prune-ward-profile":
        return pool_pruned(x, factor, structure(name)[1][doc])
    raise SystemExit(f"unknown pooling variant {method!r}")
