"""Relevance calibration: monotone in the score, persisted and reloaded, and min_relevance filters."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError
from slimvec.evaluation.calibrate import cutoff_report, fit, fit_calibrator
from slimvec.search.calibration import Calibrator, features, load_calibrators


def _synthetic(seed: int = 0, n_queries: int = 60, depth: int = 15):
    """Runs where relevance depends on the gap to the top score (plus noise); scores best first."""
    rng = np.random.default_rng(seed)
    runs, labels = [], []
    for _ in range(n_queries):
        top = rng.uniform(5, 20)
        scores = np.sort(top - rng.exponential(3.0, depth))[::-1]
        scores[0] = top
        gap = scores - top
        p = 1 / (1 + np.exp(-(2.0 + 1.2 * gap)))
        runs.append(scores.tolist())
        labels.append((rng.uniform(size=depth) < p).astype(int).tolist())
    return runs, labels


def test_features_by_hand():
    x = features([3.0, 2.0, 0.5])
    np.testing.assert_allclose(x[:, 0], [3.0, 2.0, 0.5])
    np.testing.assert_allclose(x[:, 1], [0.0, -1.0, -2.5])
    np.testing.assert_allclose(x[:, 2], [0.0, -np.log(2), -np.log(3)])


def test_monotone_in_score():
    runs, labels = _synthetic()
    cal = fit("dense", runs, labels)
    assert all(c >= 0 for c in cal.coef) and cal.used
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores = np.sort(rng.uniform(-5, 25, size=20))[::-1]
        p = cal.predict(scores)
        assert np.all(np.diff(p) <= 1e-12)  # lower score (and rank) never gets higher relevance
        assert np.all((p > 0) & (p < 1))
    # it learnt something: near the top of a query's list likely relevant, far below unlikely
    p = cal.predict([10.0, 9.5, 2.0, 1.0])
    assert p[0] > 0.5 > p[-1]


def test_wrong_signed_feature_is_dropped():
    # relevance rises with raw score but falls with rank position only through the score: labels from
    # a threshold on the raw score; whatever the fit, every kept coefficient is non-negative
    rng = np.random.default_rng(3)
    runs = [np.sort(rng.uniform(0, 1, 12))[::-1].tolist() for _ in range(80)]
    labels = [[int(s > 0.7) for s in r] for r in runs]
    cal = fit("bm25", runs, labels)
    assert all(c >= 0 for c in cal.coef)
    assert cal.predict([0.95, 0.9, 0.2])[0] > 0.5 > cal.predict([0.95, 0.9, 0.2])[2]


def test_fit_needs_both_classes():
    with pytest.raises(ConfigError):
        fit("dense", [[1.0, 0.5]], [[0, 0]])


TOPICS = {
    "cats": ["cat", "kitten", "feline", "whiskers", "purr"],
    "bonds": ["bond", "yield", "coupon", "treasury", "maturity"],
    "bones": ["bone", "fracture", "calcium", "density", "skeleton"],
    "stars": ["star", "galaxy", "nebula", "telescope", "orbit"],
}


def _corpus():
    rng = np.random.default_rng(7)
    docs, qrels, queries = [], {}, {}
    topics = list(TOPICS)
    for t, (topic, words) in enumerate(TOPICS.items()):
        for i in range(6):
            own = list(rng.choice(words, size=4))
            other = list(rng.choice(TOPICS[topics[(t + 1) % 4]], size=1 + i % 3))
            docs.append(Document(f"{topic}{i}", " ".join(own + other)))
        for j in range(3):
            qid = f"q{topic}{j}"
            queries[qid] = " ".join(rng.choice(words, size=2))
            qrels[qid] = {f"{topic}{i}": 1 for i in range(6)}
    return docs, queries, qrels


@pytest.fixture()
def col(tmp_path):
    docs, queries, qrels = _corpus()
    c = Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256), retrievers=["bm25"])
    c.add(docs)
    yield c, queries, qrels
    c.close()


def test_min_relevance_filters_and_fills_relevance(col):
    c, queries, qrels = col
    q = next(iter(queries.values()))
    with pytest.raises(ConfigError):
        c.search(q, k=10, mode="bm25", min_relevance=0.5)  # not calibrated yet
    assert all(h.relevance is None for h in c.search(q, k=10, mode="bm25"))
    cal = fit_calibrator(c, queries, qrels, mode="bm25", depth=12)
    assert isinstance(cal, Calibrator)
    partial = 0
    for text in queries.values():
        everything = c.search(text, k=12, mode="bm25")
        kept = c.search(text, k=12, mode="bm25", min_relevance=0.5)
        assert all(h.relevance is not None for h in everything)
        assert [h.id for h in kept] == [h.id for h in everything if h.relevance >= 0.5]
        assert all(h.relevance >= 0.5 for h in kept)
        rel = [h.relevance for h in everything]
        assert rel == sorted(rel, reverse=True)  # monotone along the ranking
        partial += 0 < len(kept) < len(everything)
    assert partial >= len(queries) // 2  # the cut actually removes some hits and keeps others
    assert c.search(next(iter(queries.values())), k=12, mode="bm25", min_relevance=0.0) == c.search(
        next(iter(queries.values())), k=12, mode="bm25")
    with pytest.raises(ConfigError):
        c.search(q, mode="bm25", min_relevance=1.5)
    with pytest.raises(ConfigError):
        c.search(q, mode="dense", min_relevance=0.5)  # calibrated for bm25 only


def test_persisted_and_reloaded(col, tmp_path):
    c, queries, qrels = col
    cal = fit_calibrator(c, queries, qrels, mode="bm25", depth=12)
    saved = json.loads((c.path / "calibration.json").read_text())
    assert saved["modes"]["bm25"]["coef"] == cal.coef
    q = next(iter(queries.values()))
    before = c.search(q, k=12, mode="bm25", min_relevance=0.5)
    c.close()
    assert load_calibrators(tmp_path / "c") == {"bm25": cal}
    with Collection.open(tmp_path / "c", encoder=FakeEncoder(max_tokens=256)) as again:
        assert again.calibrators == {"bm25": cal}
        assert again.search(q, k=12, mode="bm25", min_relevance=0.5) == before


def test_cutoff_report_counts(col):
    c, queries, qrels = col
    fit_calibrator(c, queries, qrels, mode="bm25", depth=12)
    rep = cutoff_report(c, queries, qrels, mode="bm25", threshold=0.5, k=10)
    top, cut = rep["top10"], rep["cutoff"]
    # recompute the plain top-10 precision and recall by hand
    precisions, recalls = [], []
    for qid, text in queries.items():
        hits = c.search(text, k=10, mode="bm25")
        good = sum(h.id in qrels[qid] for h in hits)
        precisions.append(good / len(hits))
        recalls.append(good / len(qrels[qid]))
    assert top["precision"] == pytest.approx(np.mean(precisions))
    assert top["recall"] == pytest.approx(np.mean(recalls))
    assert cut["mean_returned"] <= top["mean_returned"] and cut["recall"] <= top["recall"]


def test_auto_threshold_maximises_mean_f1_on_the_fit_split(col):
    from slimvec.evaluation.calibrate import THRESHOLDS

    c, queries, qrels = col
    cal = fit_calibrator(c, queries, qrels, mode="bm25", depth=12)
    # Brute force over the same grid, from the hits themselves: F1 = 2 PR / (P + R) per query, 0 if nothing kept.
    def mean_f1(t):
        f1s = []
        for qid, text in queries.items():
            hits = c.search(text, k=10, mode="bm25")
            kept = [h for h in hits if h.relevance >= t]
            good = sum(h.id in qrels[qid] for h in kept)
            p = good / len(kept) if kept else 0.0
            r = good / len(qrels[qid])
            f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        return np.mean(f1s)
    scores = {t: mean_f1(t) for t in THRESHOLDS}
    assert scores[cal.threshold] == pytest.approx(max(scores.values()))
    q = next(iter(queries.values()))
    auto = c.search(q, k=10, mode="bm25", min_relevance="auto")
    assert auto == c.search(q, k=10, mode="bm25", min_relevance=cal.threshold)
    assert json.loads((c.path / "calibration.json").read_text())["modes"]["bm25"]["threshold"] == cal.threshold
    rep = cutoff_report(c, queries, qrels, mode="bm25", threshold="auto")
    assert rep["threshold"] == cal.threshold
    with pytest.raises(ConfigError, match="'auto'"):
        c.search(q, mode="bm25", min_relevance="sometimes")


def test_auto_needs_a_calibration_and_old_files_default_to_half(col):
    c, queries, _ = col
    q = next(iter(queries.values()))
    with pytest.raises(ConfigError, match="no calibration"):
        c.search(q, mode="bm25", min_relevance="auto")
    old = Calibrator.from_dict({"mode": "bm25", "intercept": 0.3})  # a calibration.json written before thresholds
    assert old.threshold == 0.5
