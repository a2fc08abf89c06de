"""Fitting relevance calibrators on labelled queries, and reporting what a cut-off keeps.

The calibrator itself, and how a search applies it, are in `search.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from slimvec.documents import Hit
from slimvec.errors import ConfigError
from slimvec.search.calibration import FEATURES, Calibrator, apply, features, resolve

if TYPE_CHECKING:
    from slimvec.collection import Collection


def fit(mode: str, runs: Sequence[Sequence[float]], labels: Sequence[Sequence[int]]) -> Calibrator:
    """Fit a calibrator on per-query score lists (best first) and 0/1 relevance labels aligned with them."""
    from slimvec.extras import require

    LogisticRegression = require("sklearn.linear_model").LogisticRegression

    xs = [features(s) for s in runs if len(s)]
    ys = [np.asarray(lab, dtype=int) for s, lab in zip(runs, labels) if len(s)]
    if not xs:
        raise ConfigError("no hits to calibrate on")
    x, y = np.vstack(xs), np.concatenate(ys)
    if len(np.unique(y)) < 2:
        raise ConfigError("calibration needs both relevant and non-relevant hits among the judged results")
    used = list(range(len(FEATURES)))
    cal = Calibrator(mode, n_train=int(len(y)), positive_rate=float(y.mean()))
    while used:
        sub = x[:, used]
        mean, scale = sub.mean(axis=0), sub.std(axis=0)
        keep = scale > 0
        if not keep.all():
            used = [u for u, k in zip(used, keep) if k]
            continue
        model = LogisticRegression(C=1.0, max_iter=1000)
        model.fit((sub - mean) / scale, y)
        coef = model.coef_[0]
        if (coef >= 0).all():
            cal.used, cal.mean, cal.scale = used, mean.tolist(), scale.tolist()
            cal.coef, cal.intercept = coef.tolist(), float(model.intercept_[0])
            return cal
        used = [u for u, c in zip(used, coef) if c >= 0]
    p = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    cal.intercept = math.log(p / (1 - p))
    return cal


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def choose_threshold(cal: Calibrator, runs: Sequence[Sequence[float]], labels: Sequence[Sequence[int]],
                     n_relevant: Sequence[int], k: int = 10) -> float:
    """The cut-off with the best mean per-query F1 of the top-k hits kept (ties: the higher threshold).

    F1 = 2 * relevant kept / (kept + relevant judged); queries without a relevant judgement are skipped.
    """
    probs = [cal.predict(list(r)[:k]) for r in runs]
    best, best_f1 = 0.5, -1.0
    for t in THRESHOLDS:
        f1s = []
        for p, lab, n_rel in zip(probs, labels, n_relevant):
            if n_rel:
                kept = p >= t
                f1s.append(2 * float(np.asarray(lab[:k])[kept].sum()) / (kept.sum() + n_rel))
        f1 = float(np.mean(f1s)) if f1s else 0.0
        if f1 >= best_f1:
            best, best_f1 = t, f1
    return best


# ---- fitting and reporting on a collection ------------------------------------------------------
def _relevant(qrels: Mapping[str, Mapping[str, int]], qid: str) -> set[str]:
    return {d for d, g in qrels.get(qid, {}).items() if g > 0}


def fit_calibrator(collection: "Collection", queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                   mode: str = "dense", depth: int = 20) -> Calibrator:
    """Fit `mode`'s calibrator on the top-`depth` hits of judged queries, save it in the collection, return it."""
    collection.check_calibrator_writable()  # a collection under migration refuses it: before any search
    qids = [q for q in queries if q in qrels]
    if not qids:
        raise ConfigError("no query has judgements in qrels")
    # First-stage scores: min_relevance applies to those, never to a reranker's (see Collection.search).
    results = collection.search_many([queries[q] for q in qids], k=depth, mode=mode, rerank="none")
    runs = [[h.score for h in hits] for hits in results]
    labels = [[int(h.id in _relevant(qrels, q)) for h in hits] for q, hits in zip(qids, results)]
    if not any(map(any, labels)):  # fit's "needs relevant hits" would not say why: qrels of another corpus
        judged = sorted(set().union(*(_relevant(qrels, q) for q in qids)))
        if judged and all(collection.get(d) is None for d in judged):
            raise ConfigError(f"none of the {len(judged)} documents the qrels judge relevant (e.g. {judged[0]!r}) is in "
                              "this collection: calibrate on the dataset the collection was indexed from")
    cal = fit(mode, runs, labels)
    cal.threshold = choose_threshold(cal, runs, labels, [len(_relevant(qrels, q)) for q in qids])
    collection.set_calibrator(mode, cal)
    return cal


def cutoff_report(collection: "Collection", queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                  mode: str = "dense", threshold: float | str = 0.5, k: int = 10) -> dict[str, Any]:
    """Precision/recall of the top-k cut at calibrated relevance >= threshold, against the plain top-k.

    Per-query precision (relevant returned / returned; a query returning nothing is left out of the
    precision mean and counted in "empty") and recall (relevant returned / relevant judged) are averaged
    over the judged queries; "micro_precision" pools all returned hits.
    """
    qids = [q for q in queries if _relevant(qrels, q)]
    if not qids:
        raise ConfigError("no query has a relevant judgement")
    results = collection.search_many([queries[q] for q in qids], k=k, mode=mode, rerank="none")
    cal = collection.calibrators.get(mode)
    if cal is None:
        raise ConfigError(f"no calibration for search mode {mode!r}")

    def summary(lists: list[list[Hit]]) -> dict[str, Any]:
        precisions, recalls, returned, correct = [], [], 0, 0
        for q, hits in zip(qids, lists):
            rel = _relevant(qrels, q)
            good = sum(h.id in rel for h in hits)
            returned += len(hits)
            correct += good
            if hits:
                precisions.append(good / len(hits))
            recalls.append(good / len(rel))
        return {
            "precision": float(np.mean(precisions)) if precisions else 0.0,
            "recall": float(np.mean(recalls)),
            "micro_precision": correct / returned if returned else 0.0,
            "mean_returned": returned / len(qids),
            "empty": len(qids) - len(precisions),
        }

    threshold = resolve(cal, threshold)
    cut = [apply(cal, hits, threshold) for hits in results]
    return {"mode": mode, "queries": len(qids), "k": k, "threshold": threshold,
            f"top{k}": summary(results), "cutoff": summary(cut)}
