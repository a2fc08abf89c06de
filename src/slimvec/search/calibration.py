"""Calibrated relevance at search time: a fitted map from a mode's raw scores to the probability of relevance.

Fitting lives in `evaluation.calibrate` (it needs labelled queries); this module applies a fitted map.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimvec.atomic import write_json_atomic
from slimvec.documents import Hit
from slimvec.errors import CollectionError, ConfigError

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
        raise ConfigError(f"no calibration for search mode {mode!r}: fit one first (slimvec calibrate)")
    if min_relevance is not None and not 0.0 <= min_relevance <= 1.0:
        raise ConfigError(f"min_relevance must be between 0 and 1, got {min_relevance}")
    probs = calibrator.predict([h.score for h in hits])
    out = [dataclasses.replace(h, relevance=float(p)) for h, p in zip(hits, probs)]
    return out if min_relevance is None else [h for h in out if h.relevance is not None and h.relevance >= min_relevance]
