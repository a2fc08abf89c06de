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
import math
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

    def problem(self) -> str | None:
        """Why `predict` or the "auto" cut-off cannot use this calibrator, or None. A hand-edited calibration.json
        or a calibrator built by hand held values that failed every later search with a numpy traceback (lists of
        unequal lengths, a feature index past FEATURES), or cut at a threshold no probability reaches."""
        if not isinstance(self.mode, str) or not self.mode:
            return f"mode must name a search mode, got {self.mode!r}"
        used = self.used
        if (not isinstance(used, (list, tuple)) or len(set(used)) != len(used)
                or any(isinstance(u, bool) or not isinstance(u, int) or not 0 <= u < len(FEATURES) for u in used)):
            return f"used must list distinct feature numbers from 0 to {len(FEATURES) - 1}, got {used!r}"
        for name in ("mean", "scale", "coef"):
            values = getattr(self, name)
            if (not isinstance(values, (list, tuple)) or len(values) != len(used)
                    or not all(_finite(v) for v in values)):
                return f"{name} must hold {len(used)} finite numbers, one per used feature, got {values!r}"
        if any(v <= 0 for v in self.scale):
            return f"scale must be > 0, got {list(self.scale)!r}"
        if any(v < 0 for v in self.coef):  # a negative weight would rank a lower score as more relevant
            return f"coef must be >= 0 (relevance grows with the score), got {list(self.coef)!r}"
        if not _finite(self.intercept):
            return f"intercept must be a finite number, got {self.intercept!r}"
        if not _finite(self.threshold) or not 0.0 <= self.threshold <= 1.0:
            return f"threshold must be a number between 0 and 1, got {self.threshold!r}"
        return None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def checked(mode: str, calibrator: Any, runnable: Sequence[str]) -> Calibrator:
    """`calibrator`, when it can serve `mode` on a collection that runs the `runnable` modes.

    Raises ConfigError, before anything is stored: a set_calibrator that stored any of these failed every later
    search of the mode (or, for a mode the collection cannot run, was kept and never used).
    """
    if not isinstance(calibrator, Calibrator):
        raise ConfigError(f"calibrator must be a slimvec.search.calibration.Calibrator, not {type(calibrator).__name__}")
    if mode not in runnable:
        raise ConfigError(f"cannot calibrate search mode {mode!r}: this collection runs {', '.join(runnable)}")
    if calibrator.mode != mode:
        raise ConfigError(f"calibrator was fitted on search mode {calibrator.mode!r}, not {mode!r}: its scores are "
                          "on another scale")
    problem = calibrator.problem()
    if problem is not None:
        raise ConfigError(f"calibrator for mode {mode!r}: {problem}")
    return calibrator


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
        calibrators = {mode: Calibrator.from_dict(c) for mode, c in data["modes"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CollectionError(f"{f}: calibration file is damaged ({e})") from None
    for mode, c in calibrators.items():
        problem = c.problem() or (f"holds mode {c.mode!r}" if c.mode != mode else None)
        if problem is not None:
            raise CollectionError(f"{f}: calibration file is damaged (mode {mode!r}: {problem}); fit it again with "
                                  "slimvec calibrate, or remove the file")
    return calibrators


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
