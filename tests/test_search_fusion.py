"""Fusion: RRF, weighted min-max/z-score and softmax fusion against hand-computed values; the hybrid modes fuse;
softmax fusion keeps a strong part's quality next to a weak one (synthetic and real XQuAD-zh)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError
from slimvec.search.fusion import fuse, fusion_depth, normalise, rrf, weighted
from slimvec.search.softmax import SOFTMAX_HEAD, softmax, softmax_probabilities

# (doc number, score, best row)
A = [(1, 0.9, 10), (2, 0.8, 20), (3, 0.1, 30)]
B = [(3, 12.0, 31), (1, 7.0, 11), (4, 2.0, 40)]


def test_rrf_hand_computed():
    fused = {d: (s, r) for d, s, r in rrf([A, B])}
    assert fused[1][0] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][0] == pytest.approx(1 / 62)
    assert fused[3][0] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[4][0] == pytest.approx(1 / 63)
    assert [d for d, _, _ in rrf([A, B])] == [1, 3, 2, 4]
    # the row kept is the first ranking's that holds the document
    assert fused[3][1] == 30 and fused[4][1] == 40 and fused[1][1] == 10


def test_rrf_other_k_and_single_ranking():
    fused = {d: s for d, s, _ in rrf([A, B], k=0)}
    assert fused[1] == pytest.approx(1 + 1 / 2) and fused[3] == pytest.approx(1 / 3 + 1)
    assert [d for d, _, _ in rrf([A])] == [1, 2, 3]
    assert rrf([]) == [] and rrf([[], []]) == []


def test_weighted_minmax_hand_computed():
    # A min-max: 1 -> 1, 2 -> (0.8-0.1)/0.8 = 0.875, 3 -> 0; B: 3 -> 1, 1 -> 0.5, 4 -> 0
    fused = {d: s for d, s, _ in weighted([A, B], [1.0, 1.0], norm="minmax")}
    assert fused[1] == pytest.approx(1.5)
    assert fused[2] == pytest.approx(0.875)
    assert fused[3] == pytest.approx(1.0)
    assert fused[4] == pytest.approx(0.0)
    fused = {d: s for d, s, _ in weighted([A, B], [0.25, 2.0])}
    assert fused[1] == pytest.approx(0.25 + 1.0) and fused[3] == pytest.approx(2.0)
    assert [d for d, _, _ in weighted([A, B], [0.25, 2.0])] == [3, 1, 2, 4]


def test_weighted_zscore_hand_computed():
    mean, sd = 0.6, ((0.3**2 + 0.2**2 + 0.5**2) / 3) ** 0.5
    fused = {d: s for d, s, _ in weighted([A], norm="zscore")}
    assert fused[1] == pytest.approx((0.9 - mean) / sd)
    assert fused[3] == pytest.approx((0.1 - mean) / sd)
    assert list(normalise([5.0, 5.0], "zscore")) == [0.0, 0.0] and list(normalise([5.0, 5.0])) == [1.0, 1.0]
    with pytest.raises(ConfigError):
        weighted([A], norm="rank")
    with pytest.raises(ConfigError):
        weighted([A, B], [1.0])


def test_fuse_cuts_to_k_and_depth():
    assert [d for d, _, _ in fuse([A, B], 2)] == [1, 3]
    assert fusion_depth(10, 1) == 10 and fusion_depth(10, 2) == 100 and fusion_depth(500, 2) == 500


DOCS = [
    Document("a", "cats and dogs living together", "Pets"),
    Document("b", "dogs running fast in the park"),
    Document("c", "interest rates and inflation", "Economy"),
    Document("d", "a cat is running after a mouse"),
    Document("e", "protein folding in cells"),
]


def test_hybrid_mode_with_rrf_is_rrf_of_dense_and_bm25(tmp_path):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256), retrievers=["dense", "bm25"]) as c:
        c.add(DOCS)
        q = "running cats"
        dense = [h.id for h in c.search(q, k=5, mode="dense")]
        bm25 = [h.id for h in c.search(q, k=5, mode="bm25")]
        expected: dict[str, float] = {}
        for ranking in (dense, bm25):
            for rank, doc in enumerate(ranking, start=1):
                expected[doc] = expected.get(doc, 0.0) + 1 / (60 + rank)
        hybrid = c.search(q, k=5, mode="hybrid", fusion="rrf")
        assert {h.id for h in hybrid} == set(expected)
        for h in hybrid:
            assert h.score == pytest.approx(expected[h.id])
        assert [h.score for h in hybrid] == pytest.approx(sorted(expected.values(), reverse=True))
        with pytest.raises(ConfigError):
            c.search(q, mode="hybrid-sparse")  # this collection keeps no sparse index


def _minmax(hits):
    s = np.array([h.score for h in hits], dtype=float)
    span = s.max() - s.min()
    return {h.id: float((x - s.min()) / span) if span > 0 else 1.0 for h, x in zip(hits, s)}


def test_weighted_fusion_from_the_profile_and_per_search(tmp_path):
    from slimvec.profiles import BUILTIN

    prof = BUILTIN["hybrid"].model_copy(update={"name": "hw", "fusion": "weighted", "fusion_weights": (0.25, 0.75)})
    with Collection.create(tmp_path / "c", profile=prof, encoder=FakeEncoder(max_tokens=256)) as c:
        c.add(DOCS)
        q = "running cats"
        dense = _minmax(c.search(q, k=len(DOCS), mode="dense"))
        bm25 = _minmax(c.search(q, k=len(DOCS), mode="bm25"))
        # by hand: sum of weighted min-max normalised scores; a missing document adds nothing
        expected = {d: 0.25 * dense.get(d, 0.0) + 0.75 * bm25.get(d, 0.0) for d in set(dense) | set(bm25)}
        hits = c.search(q, k=4, mode="hybrid")
        best = sorted(expected.values(), reverse=True)[:4]
        assert [h.score for h in hits] == pytest.approx(best)
        assert all(h.score == pytest.approx(expected[h.id]) for h in hits)
        # per-search override: equal weights, and back to RRF
        equal = c.search(q, k=4, mode="hybrid", fusion_weights=[1.0, 1.0])
        assert all(h.score == pytest.approx(dense.get(h.id, 0.0) + bm25.get(h.id, 0.0)) for h in equal)
        rrf = c.search(q, k=4, mode="hybrid", fusion="rrf")
        assert max(h.score for h in rrf) < 2 / 60
        with pytest.raises(ConfigError, match="3 fusion weights"):
            c.search(q, mode="hybrid", fusion_weights=[1, 2, 3])
        with pytest.raises(ConfigError, match="not rrf"):
            c.search(q, mode="hybrid", fusion="rrf", fusion_weights=[1, 2])
        with pytest.raises(ConfigError, match="unknown fusion"):
            c.search(q, mode="hybrid", fusion="borda")


def test_profile_fusion_weights_are_checked():
    from slimvec.profiles import profile_from_dict

    with pytest.raises(ConfigError, match="fusion_weights need fusion 'weighted' or 'softmax'"):
        profile_from_dict({"name": "x", "fusion": "rrf", "fusion_weights": [1, 2]})
    with pytest.raises(ConfigError, match="must be >= 0"):
        profile_from_dict({"name": "x", "fusion_weights": [1, -2]})
    with pytest.raises(ConfigError, match="fusion"):
        profile_from_dict({"name": "x", "fusion": "borda"})


# ---- softmax fusion ------------------------------------------------------------------------------------

def _softmax_by_hand(scores, temperature=2.0):
    """p_i = exp(z_i / T) / sum_j exp(z_j / T), z = (s - mean) / std (population std), from the definition."""
    n = len(scores)
    mean = sum(scores) / n
    sd = (sum((s - mean) ** 2 for s in scores) / n) ** 0.5
    e = [math.exp((s - mean) / sd / temperature) for s in scores]
    return [x / sum(e) for x in e]


def test_softmax_hand_computed():
    pa, pb = _softmax_by_hand([s for _, s, _ in A]), _softmax_by_hand([s for _, s, _ in B])
    fused = {d: (s, r) for d, s, r in softmax([A, B])}
    assert fused[1][0] == pytest.approx(pa[0] + pb[1])
    assert fused[2][0] == pytest.approx(pa[1])
    assert fused[3][0] == pytest.approx(pa[2] + pb[0])
    assert fused[4][0] == pytest.approx(pb[2])
    assert [d for d, _, _ in softmax([A, B])] == sorted(fused, key=lambda d: -fused[d][0])
    assert fused[3][1] == 30 and fused[4][1] == 40  # the row of the first ranking holding the document
    assert sum(s for s, _ in fused.values()) == pytest.approx(2.0)  # one unit of mass per ranking
    weighted_fused = {d: s for d, s, _ in softmax([A, B], weights=[0.5, 2.0])}
    assert weighted_fused[1] == pytest.approx(0.5 * pa[0] + 2.0 * pb[1])
    assert [d for d, _, _ in softmax([A, B], weights=[0.0, 1.0])] == [3, 1, 4, 2]


def test_softmax_temperature_from_the_profile_and_per_search(tmp_path):
    from slimvec.profiles import BUILTIN, profile_from_dict

    prof = BUILTIN["hybrid"].model_copy(update={"name": "ht", "fusion_temperature": 0.5})
    with Collection.create(tmp_path / "c", profile=prof, encoder=FakeEncoder(max_tokens=256)) as c:
        c.add(DOCS)
        q = "running cats"
        parts = [{h.id: h.score for h in c.search(q, k=len(DOCS), mode=m)} for m in ("dense", "bm25")]

        def by_hand(temperature):
            fused = {}
            for run in parts:
                for d, p in zip(run, _softmax_by_hand(list(run.values()), temperature)):
                    fused[d] = fused.get(d, 0.0) + p
            return fused

        sharp, default = by_hand(0.5), by_hand(2.0)
        assert sorted(sharp.values()) != pytest.approx(sorted(default.values()))  # the temperature matters here
        hits = c.search(q, k=len(DOCS), mode="hybrid")
        assert all(h.score == pytest.approx(sharp[h.id]) for h in hits)
        hits = c.search(q, k=len(DOCS), mode="hybrid", fusion_temperature=2.0)  # per search
        assert all(h.score == pytest.approx(default[h.id]) for h in hits)
        with pytest.raises(ConfigError, match="fusion_temperature applies to fusion='softmax', not rrf"):
            c.search(q, mode="hybrid", fusion="rrf", fusion_temperature=1.0)
        assert max(h.score for h in c.search(q, mode="hybrid", fusion="rrf")) < 2 / 60  # the profile's T stays out
        with pytest.raises(ConfigError, match="fusion_temperature"):
            c.search(q, mode="hybrid", fusion_temperature=0)
    with pytest.raises(ConfigError, match="fusion_temperature applies to fusion 'softmax'"):
        profile_from_dict({"name": "x", "fusion": "weighted", "fusion_temperature": 1.0})


def test_softmax_is_unchanged_by_rescaling_a_ranking_and_by_depth_beyond_the_head():
    rescaled = [(d, 1000.0 + 37.0 * s, r) for d, s, r in B]  # BM25-like scale vs cosine: same standardised scores
    same, other = softmax([A, rescaled]), softmax([A, B])
    assert [(d, r) for d, _, r in same] == [(d, r) for d, _, r in other]
    assert [s for _, s, _ in same] == pytest.approx([s for _, s, _ in other])
    scores = np.random.default_rng(0).standard_normal(300).cumsum()[::-1]
    deep = softmax_probabilities(scores)
    assert deep[:SOFTMAX_HEAD] == pytest.approx(softmax_probabilities(scores[:SOFTMAX_HEAD]))
    assert deep[:SOFTMAX_HEAD].sum() == pytest.approx(1.0)


def test_softmax_ties_empty_and_bad_input():
    assert softmax([]) == [] and softmax([[], []]) == []
    assert [d for d, _, _ in softmax([[], B])] == [3, 1, 4]  # an empty ranking adds nothing
    flat = [(7, 0.5, 70), (8, 0.5, 80), (9, 0.5, 90)]  # all scores equal: the mass is spread evenly
    assert [s for _, s, _ in softmax([flat])] == pytest.approx([1 / 3] * 3)
    assert [d for d, _, _ in softmax([flat])] == [7, 8, 9]  # ties: the order met in the input
    # a tie across rankings goes to the document met first when interleaving rank 1 of each, then rank 2
    assert [d for d, _, _ in softmax([[(1, 0.3, 1), (2, 0.1, 2)], [(3, 0.3, 3), (4, 0.1, 4)]])] == [1, 3, 2, 4]
    assert [s for _, s, _ in softmax([[(5, 2.0, 50)]])] == [1.0]
    with pytest.raises(ConfigError, match="2 weights for 1 rankings"):
        softmax([A], weights=[1.0, 1.0])
    with pytest.raises(ConfigError, match=">= 0"):
        softmax([A, B], weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match="finite"):
        softmax([[(1, float("nan"), 1), (2, 0.0, 2)]])
    with pytest.raises(ConfigError, match="temperature"):
        softmax_probabilities([1.0, 2.0], temperature=0.0)


def _ranking(scores: np.ndarray, depth: int = 100) -> list[tuple[int, float, int]]:
    order = np.argsort(-scores, kind="stable")[:depth]
    return [(int(d), float(scores[d]), int(d)) for d in order]


def _ndcg(qrels, fused: dict[str, list[tuple[int, float, int]]]) -> float:
    from slimvec.evaluation.metrics import evaluate

    run = {q: {str(d): float(len(r) - i) for i, (d, _, _) in enumerate(r)} for q, r in fused.items()}
    return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]


@pytest.mark.parametrize(("noise", "boost"), [("uniform", 5.0), ("gaussian", 6.0)])
def test_softmax_a_noise_ranking_does_not_drag_an_informative_one(noise, boost):
    # 200 queries over 1,000 documents, one relevant each. The informative ranking scores the relevant
    # document `boost` standard deviations above the pool (as BM25 with CJK bigrams on XQuAD-zh); the noise
    # ranking knows nothing: the top 100 of i.i.d. scores (a bounded cosine-like band, or a Gaussian tail).
    rng = np.random.default_rng(7)
    qrels, informative, noisy = {}, {}, {}
    for q in map(str, range(200)):
        rel = int(rng.integers(1000))
        qrels[q] = {str(rel): 1}
        s = rng.standard_normal(1000)
        s[rel] += boost
        informative[q] = _ranking(s)
        noisy[q] = _ranking(rng.uniform(size=1000) if noise == "uniform" else rng.standard_normal(1000))
    alone = _ndcg(qrels, informative)
    assert alone > 0.95
    assert _ndcg(qrels, {q: softmax([noisy[q], informative[q]]) for q in qrels}) >= alone - 0.01
    assert _ndcg(qrels, {q: rrf([noisy[q], informative[q]]) for q in qrels}) < alone - 0.3  # what RRF does


def test_softmax_equal_strength_rankings_fuse_to_a_gain():
    # Two independent, equally weak rankings of the same relevant documents: fusing them must beat both.
    rng = np.random.default_rng(3)
    qrels, first, second = {}, {}, {}
    for q in map(str, range(200)):
        rel = rng.choice(1000, size=int(rng.integers(1, 4)), replace=False)
        qrels[q] = {str(d): 1 for d in rel}
        for out in (first, second):
            s = rng.standard_normal(1000)
            s[rel] += 2.5
            out[q] = _ranking(s)
    best = max(_ndcg(qrels, first), _ndcg(qrels, second))
    assert _ndcg(qrels, {q: softmax([first[q], second[q]]) for q in qrels}) > best + 0.1


def test_builtin_hybrid_profiles_fuse_with_softmax(tmp_path):
    from slimvec.profiles import BUILTIN

    for name in ("hybrid", "hybrid-binary", "hybrid-cjk", "hybrid-sparse"):
        assert BUILTIN[name].fusion == "softmax", name
    assert BUILTIN["hybrid-weighted"].fusion == "weighted"
    with Collection.create(tmp_path / "c", profile="hybrid", encoder=FakeEncoder(max_tokens=256)) as c:
        c.add(DOCS)
        q = "running cats"
        parts = [c.search(q, k=len(DOCS), mode=m) for m in ("dense", "bm25")]
        expected: dict[str, float] = {}
        for hits in parts:  # by hand from each part's own scores
            for h, p in zip(hits, _softmax_by_hand([h.score for h in hits])):
                expected[h.id] = expected.get(h.id, 0.0) + p
        hybrid = c.search(q, k=len(DOCS))  # the profile's mode and fusion
        assert {h.id: h.score for h in hybrid} == pytest.approx(expected)
        assert [h.score for h in hybrid] == pytest.approx(sorted(expected.values(), reverse=True))
        weighted_hits = c.search(q, k=len(DOCS), fusion_weights=[0.0, 1.0])  # softmax with weights
        bm25_only = dict(zip([h.id for h in parts[1]], _softmax_by_hand([h.score for h in parts[1]])))
        assert {h.id: h.score for h in weighted_hits} == pytest.approx(
            {h.id: bm25_only.get(h.id, 0.0) for h in parts[0]})  # the dense part counts 0
        assert max(h.score for h in c.search(q, k=3, fusion="rrf")) < 2 / 60  # RRF stays selectable
    with pytest.raises(ConfigError, match="fusion_weights need fusion 'weighted' or 'softmax'"):
        from slimvec.profiles import profile_from_dict

        profile_from_dict({"name": "x", "fusion": "rrf", "fusion_weights": [1, 2]})


XQUAD_ZH = Path(os.environ.get("SLIMVEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "xquad-zh"


def test_softmax_keeps_bm25_cjk_quality_on_real_xquad_zh_where_rrf_does_not(tmp_path):
    # Real MiniLM (an English model: weak on Chinese) + BM25 with CJK bigrams (strong), on the first 60
    # paragraphs of XQuAD-zh and 60 of their questions (every other one); nDCG@10 by the metrics module.
    from slimvec.evaluation.metrics import evaluate

    corpus = [json.loads(line) for line in open(XQUAD_ZH / "corpus.jsonl", encoding="utf-8")][:60]
    ids = {d["_id"] for d in corpus}
    qrels: dict[str, dict[str, int]] = {}
    with open(XQUAD_ZH / "qrels" / "test.tsv", encoding="utf-8") as f:
        for line in f:
            q, d, grade = line.rstrip("\n").split("\t")
            if grade.isdigit() and d in ids:
                qrels[q] = {d: int(grade)}
    with open(XQUAD_ZH / "queries.jsonl", encoding="utf-8") as f:
        texts = {q["_id"]: q["text"] for q in map(json.loads, f) if q["_id"] in qrels}
    chosen = list(texts)[:: len(texts) // 60][:60]
    qrels = {q: qrels[q] for q in chosen}
    with Collection.create(tmp_path / "zh", profile="hybrid-cjk", chunk_mode="whole") as c:
        c.add([Document(d["_id"], d["text"], d.get("title") or "") for d in corpus])
        vectors = c.encoder.encode_queries([texts[q] for q in chosen])

        def ndcg(**options: object) -> float:
            hits = c.search_many([texts[q] for q in chosen], k=10, vectors=vectors, encoded=True, **options)
            return evaluate(qrels, {q: {h.id: h.score for h in hs} for q, hs in zip(chosen, hits)}, ["ndcg@10"])["ndcg@10"]

        dense, bm25 = ndcg(mode="dense"), ndcg(mode="bm25")
        best = max(dense, bm25)
        assert bm25 > dense + 0.3  # the slice shows the failure: one part far weaker than the other
        assert ndcg() >= best - 0.01  # the profile's default fusion: softmax
        assert ndcg(fusion="rrf") < best - 0.1
