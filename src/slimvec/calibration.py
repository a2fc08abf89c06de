"""Calibrated relevance: map a search mode's raw scores to a probability that a hit is relevant.

Raw scores (cosine, BM25, RRF) have no natural threshold, and what a score means moves from query to
query ("Relevance Filtering for Embedding-based Retrieval"). So the calibrator looks at each hit in the
context of its own query's ranking, with three features:

- `score`: the raw score;
- `gap`: score minus the query's top score (0 for the first hit, negative below);
- `rank`: -log(rank), rank counted from 1.

A logistic regression (scikit-learn) on standardised features is fit on judged hits (qrels). Every
feature grows as a hit climbs the query's ranking, so the mapping is monotone in the score within a
query whenever every coefficient is >= 0: a feature that comes out with a negative coefficient is
dropped and the model refit, until all are non-negative (with none left, the base rate is returned).
One calibrator per search mode is saved in the collection's `calibration.json` (atomic write) and
loaded when the collection opens; `search(..., min_relevance=p)` keeps hits whose relevance is >= p
and fills `Hit.relevance`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimvec.documents import Hit
from slimvec.errors import CollectionError, ConfigError
from slimvec.atomic import write_json_atomic

if TYPE_CHECKING:
    from slimvec.collection import Collection

FILE = "calibration.json"
_FORMAT = 1
FEATURES = ("score", "gap", "rank")


def features(scores: Sequence[float]) -> np.ndarray:
    """Feature rows (score, gap to the top score, -log rank) of one query's scores, best first."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return np.zeros((0, len(FEATURES)))
    top = s.max()
    rank = np.arange(1, s.size + 1, dtype=np.float64)
    return np.column_stack([s, s - top, -np.log(rank)])


@dataclass
class Calibrator:
    """Logistic map from a query's ranked scores to relevance probabilities (monotone in the score)."""

    mode: str
    used: list[int] = field(default_factory=list)  # indices into FEATURES kept in the model
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0
    n_train: int = 0
    positive_rate: float = 0.0
    # The cut-off `min_relevance="auto"` applies: the one with the best mean F1 on the fit split's top 10.
    threshold: float = 0.5

    def predict(self, scores: Sequence[float]) -> np.ndarray:
        """Relevance probabilities for one query's scores, given best first."""
        x = features(scores)
        if x.shape[0] == 0:
            return np.zeros(0)
        z = np.full(x.shape[0], self.intercept)
        if self.used:
            xs = (x[:, self.used] - np.asarray(self.mean)) / np.asarray(self.scale)
            z = z + xs @ np.asarray(self.coef)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["features"] = [FEATURES[i] for i in self.used]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibrator":
        """Inverse of `to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def fit(mode: str, runs: Sequence[Sequence[float]], labels: Sequence[Sequence[int]]) -> Calibrator:
    """Fit a calibrator on per-query score lists (best first) and 0/1 relevance labels aligned with them."""
    from sklearn.linear_model import LogisticRegression

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


def resolve(calibrator: Calibrator | None, min_relevance: float | str | None) -> float | None:
    """A numeric cut-off from `min_relevance` ("auto": the calibrator's chosen threshold)."""
    if isinstance(min_relevance, str):
        if min_relevance.strip().lower() != "auto":
            try:
                return float(min_relevance)
            except ValueError:
                raise ConfigError(f"min_relevance must be a number between 0 and 1 or 'auto', got {min_relevance!r}") from None
        return None if calibrator is None else calibrator.threshold
    return min_relevance


# ---- persistence -----------------------------------------------------------------------------
def load_calibrators(path: str | Path) -> dict[str, Calibrator]:
    """The calibrators saved in a collection directory, by mode (empty when there are none)."""
    f = Path(path) / FILE
    if not f.exists():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        return {mode: Calibrator.from_dict(c) for mode, c in data["modes"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CollectionError(f"{f}: calibration file is damaged ({e})") from None


def save_calibrators(path: str | Path, calibrators: Mapping[str, Calibrator]) -> None:
    """Replace the collection's calibration.json atomically."""
    write_json_atomic(Path(path) / FILE, {"format": _FORMAT, "modes": {m: c.to_dict() for m, c in calibrators.items()}})


def apply(calibrator: Calibrator | None, hits: list[Hit], min_relevance: float | str | None,
          mode: str = "") -> list[Hit]:
    """Hits with `relevance` filled and, when `min_relevance` is set ("auto": the fitted cut-off), those below it dropped."""
    auto = isinstance(min_relevance, str)
    min_relevance = resolve(calibrator, min_relevance)
    if calibrator is None and auto:
        raise ConfigError(f"no calibration for search mode {mode!r}: fit one first (slimvec calibrate)")
    if calibrator is None:
        if min_relevance is None:
            return hits
        raise ConfigError(f"no calibration for search mode {mode!r}: fit one first (slimvec.calibration.fit_calibrator)")
    if min_relevance is not None and not 0.0 <= min_relevance <= 1.0:
        raise ConfigError(f"min_relevance must be between 0 and 1, got {min_relevance}")
    probs = calibrator.predict([h.score for h in hits])
    out = [dataclasses.replace(h, relevance=float(p)) for h, p in zip(hits, probs)]
    return out if min_relevance is None else [h for h in out if h.relevance is not None and h.relevance >= min_relevance]


# ---- fitting and reporting on a collection ------------------------------------------------------
def _relevant(qrels: Mapping[str, Mapping[str, int]], qid: str) -> set[str]:
    return {d for d, g in qrels.get(qid, {}).items() if g > 0}


def fit_calibrator(collection: "Collection", queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                   mode: str = "dense", depth: int = 20) -> Calibrator:
    """Fit `mode`'s calibrator on the top-`depth` hits of judged queries, save it in the collection, return it."""
    qids = [q for q in queries if q in qrels]
    if not qids:
        raise ConfigError("no query has judgements in qrels")
    # First-stage scores: min_relevance applies to those, never to a reranker's (see Collection.search).
    results = collection.search_many([queries[q] for q in qids], k=depth, mode=mode, rerank="none")
    runs = [[h.score for h in hits] for hits in results]
    labels = [[int(h.id in _relevant(qrels, q)) for h in hits] for q, hits in zip(qids, results)]
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
