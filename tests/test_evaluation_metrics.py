"""Metrics: hand-computed values, agreement with pytrec_eval, and TREC run files."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import pytest
import pytrec_eval

from slimvec.errors import ConfigError, IngestError
from slimvec.evaluation.datasets import load_dataset
from slimvec.evaluation.metrics import (
    DEFAULT_METRICS,
    check_metrics,
    evaluate,
    evaluate_per_query,
    read_trec_run,
    top_k,
    trec_order,
    write_trec_run,
)

DATA = Path(os.environ.get("SLIMVEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# Toy collection, 3 queries.
# q1: judged d1=2, d2=1, d3=0 (d3 judged non-relevant). Ranking: d4, d1, d3, d2 (+ a self-hit "q1" on top).
#     gains by rank: 0, 2, 0, 1
#     DCG@10  = 2/log2(3) + 1/log2(5)
#     IDCG@10 = 2/log2(2) + 1/log2(3)              (ideal order d1, d2)
#     MRR@10  = 1/2                                 (first grade>=1 doc at rank 2)
#     R@100   = 2/2 = 1
#     AP@100  = (P@2 + P@4) / 2 = (1/2 + 2/4) / 2 = 1/2
# q2: judged d5=1. Ranking: 11 unjudged docs, then d5 at rank 12.
#     nDCG@10 = 0, MRR@10 = 0 (trec_eval's uncut recip_rank would say 1/12), R@100 = 1, AP@100 = (1/12)/1
# q3: judged d7=1, absent from the run: every metric 0 and it still counts in the mean.
QRELS = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d5": 1}, "q3": {"d7": 1}}
RUN = {
    "q1": {"q1": 5.0, "d4": 0.9, "d1": 0.8, "d3": 0.7, "d2": 0.6},
    "q2": {**{f"x{i:02d}": 1.0 - i / 100 for i in range(11)}, "d5": 0.5},
    "q9": {"d1": 1.0},  # not in qrels: ignored
}
NDCG_Q1 = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))


def test_hand_computed_means_over_all_qrels_queries() -> None:
    got = evaluate(QRELS, RUN)
    assert got["ndcg@10"] == pytest.approx(NDCG_Q1 / 3, abs=1e-12)
    assert got["mrr@10"] == pytest.approx((1 / 2) / 3, abs=1e-12)
    assert got["recall@100"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-12)
    assert got["map@100"] == pytest.approx((1 / 2 + 1 / 12) / 3, abs=1e-12)


def test_per_query_values_and_missing_query_is_zero() -> None:
    got = evaluate_per_query(QRELS, RUN)
    assert set(got["ndcg@10"]) == {"q1", "q2", "q3"}
    assert got["ndcg@10"]["q1"] == pytest.approx(NDCG_Q1, abs=1e-12)
    assert got["ndcg@10"]["q2"] == 0.0
    assert got["mrr@10"]["q2"] == 0.0
    assert got["map@100"]["q2"] == pytest.approx(1 / 12, abs=1e-12)
    assert all(got[m]["q3"] == 0.0 for m in got)


def test_self_hits_kept_when_asked() -> None:
    # With "q1" left at rank 1 every judged doc moves down one place:
    # gains by rank 0, 0, 2, 0, 1 -> DCG = 2/log2(4) + 1/log2(6); MRR = 1/3; AP = (1/3 + 2/5) / 2
    got = evaluate_per_query(QRELS, RUN, drop_self_hits=False)
    ndcg = (2 / 2 + 1 / math.log2(6)) / (2 + 1 / math.log2(3))
    assert got["ndcg@10"]["q1"] == pytest.approx(ndcg, abs=1e-12)
    assert got["mrr@10"]["q1"] == pytest.approx(1 / 3, abs=1e-12)
    assert got["map@100"]["q1"] == pytest.approx((1 / 3 + 2 / 5) / 2, abs=1e-12)


def test_ties_broken_by_doc_id_descending_like_trec_eval() -> None:
    # "b" > "a", so at equal scores trec_eval ranks b first and the relevant "a" second.
    got = evaluate({"q": {"a": 1}}, {"q": {"a": 0.5, "b": 0.5}}, metrics=["mrr@10"])
    assert got["mrr@10"] == pytest.approx(0.5)
    assert [d for d, _ in trec_order({"a": 0.5, "b": 0.5, "c": 0.9})] == ["c", "b", "a"]


def test_cutoffs_respected() -> None:
    # Relevant doc at rank 11: outside @10 for nDCG/MRR, inside recall@11.
    run = {"q": {f"n{i:02d}": 1.0 - i / 100 for i in range(10)} | {"r": 0.01}}
    got = evaluate({"q": {"r": 1}}, run, metrics=["ndcg@10", "mrr@10", "recall@10", "recall@11", "mrr"])
    assert got == pytest.approx(
        {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@11": 1.0, "mrr": 1 / 11}
    )


def test_unknown_metric_and_empty_qrels_rejected() -> None:
    with pytest.raises(ConfigError, match="bleu"):
        evaluate(QRELS, RUN, metrics=["bleu@4"])
    with pytest.raises(ConfigError, match="ndcg@0"):
        check_metrics(["ndcg@10", "ndcg@0"])
    assert check_metrics(["nDCG@10", "map"]) == ["nDCG@10", "map"]
    with pytest.raises(ValueError):
        evaluate({}, RUN)


def test_perfect_run_on_scifact_scores_one() -> None:
    # Every judged doc ranked by its grade: the ideal ranking, so every metric is exactly 1
    # (SciFact has at most a handful of relevant docs per query, well under 10).
    qrels = load_dataset(DATA / "scifact").qrels("test")
    run = {q: {d: float(g) for d, g in docs.items()} for q, docs in qrels.items()}
    assert evaluate(qrels, run) == pytest.approx({m: 1.0 for m in DEFAULT_METRICS})
    # And an empty run scores 0 everywhere: every query is missing.
    assert evaluate(qrels, {}) == pytest.approx({m: 0.0 for m in DEFAULT_METRICS})


def _random_collection(seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"doc{i}" for i in range(400)]
    qrels, run = {}, {}
    for q in range(60):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 25))
        # Grades 0..3, so graded gains, judged non-relevant docs and all-zero queries all occur.
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if q % 15 == 0:
            continue  # some queries missing from the run
        retrieved = rng.sample(docs, rng.randint(5, 150))
        # Scores on a coarse grid, so many ties: checks that tie-breaking matches trec_eval.
        run[qid] = {d: round(rng.random(), 1) for d in retrieved}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_pytrec_eval_on_random_runs(seed: int) -> None:
    qrels, run = _random_collection(seed)
    ours = evaluate_per_query(qrels, run, drop_self_hits=False)

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100"})
    theirs = evaluator.evaluate(run)
    # trec_eval's recip_rank has no cut-off: give it the run cut at 10 (in its own order) instead.
    theirs_rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_k(run, 10))

    names = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map@100": "map_cut_100"}
    for qid in qrels:
        # pytrec_eval leaves out queries absent from the run; by our convention they score 0.
        for ours_name, their_name in names.items():
            expected = theirs[qid][their_name] if qid in theirs else 0.0
            assert ours[ours_name][qid] == pytest.approx(expected, abs=1e-6), (qid, ours_name)
        expected_rr = theirs_rr[qid]["recip_rank"] if qid in theirs_rr else 0.0
        assert ours["mrr@10"][qid] == pytest.approx(expected_rr, abs=1e-6), qid

    means = evaluate(qrels, run, drop_self_hits=False)
    for ours_name, their_name in names.items():
        expected = sum(theirs[q][their_name] for q in theirs) / len(qrels)
        assert means[ours_name] == pytest.approx(expected, abs=1e-6)


def test_trec_run_round_trip(tmp_path) -> None:
    run = {"q1": {"d1": 0.1 + 0.2, "d2": -3.5, "d3": 1e-12}, "q 2".replace(" ", "_"): {"d9": 7.0}}
    path = write_trec_run(run, tmp_path / "runs" / "x.trec", tag="minilm-f32")
    lines = path.read_text().splitlines()
    # Ranked by score: d1 (0.30000000000000004) > d3 (1e-12) > d2 (-3.5)
    assert lines[0].split() == ["q1", "Q0", "d1", "1", repr(0.1 + 0.2), "minilm-f32"]
    assert [ln.split()[2] for ln in lines[:3]] == ["d1", "d3", "d2"]
    assert [ln.split()[3] for ln in lines[:3]] == ["1", "2", "3"]
    assert read_trec_run(path) == run


def test_trec_run_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="tag"):
        write_trec_run({"q": {"d": 1.0}}, tmp_path / "a.trec", tag="has space")
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 notanumber t\n")
    with pytest.raises(IngestError, match=r"bad.trec:2"):
        read_trec_run(bad)
    bad.write_text("q1 Q0 d1 1 0.5\n")
    with pytest.raises(IngestError, match=r"bad.trec:1: expected 6 fields"):
        read_trec_run(bad)


def test_ranx_sees_doc_ids_of_one_width_whatever_the_dataset(monkeypatch) -> None:
    """ranx's numba helpers are compiled per doc-id width (numpy '<Un'); slimvec hands it one width, so the kernels
    `warm_up` compiles serve every dataset. The values must not change: ties and ranks are decided before."""
    import ranx

    seen: list[set[str]] = []

    def spy(real):
        def recording(d, *a, **k):
            seen.append({doc for docs in d.values() for doc in docs})
            return real(d, *a, **k)
        return recording

    monkeypatch.setattr(ranx, "Qrels", spy(ranx.Qrels))
    monkeypatch.setattr(ranx, "Run", spy(ranx.Run))
    short = evaluate({"q": {"a": 1}}, {"q": {"a": 0.9, "b": 0.5}}, metrics=["ndcg@10", "mrr@10"])
    long = evaluate({"q": {"a-much-longer-document-id": 1}},
                    {"q": {"x": 0.9, "a-much-longer-document-id": 0.5}}, metrics=["ndcg@10", "mrr@10"])
    assert short == {"ndcg@10": 1.0, "mrr@10": 1.0}
    assert long["mrr@10"] == 0.5 and long["ndcg@10"] == pytest.approx(1 / math.log2(3))
    widths = {len(doc) for ids in seen for doc in ids}
    assert len(seen) == 4 and len(widths) == 1
