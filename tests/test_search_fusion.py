"""Fusion: RRF and weighted min-max/z-score fusion against hand-computed values; the hybrid mode fuses."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import ConfigError
from slimvec.search.fusion import fuse, fusion_depth, normalise, rrf, weighted

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


def test_hybrid_mode_is_rrf_of_dense_and_bm25(tmp_path):
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256), retrievers=["dense", "bm25"]) as c:
        c.add(DOCS)
        q = "running cats"
        dense = [h.id for h in c.search(q, k=5, mode="dense")]
        bm25 = [h.id for h in c.search(q, k=5, mode="bm25")]
        expected: dict[str, float] = {}
        for ranking in (dense, bm25):
            for rank, doc in enumerate(ranking, start=1):
                expected[doc] = expected.get(doc, 0.0) + 1 / (60 + rank)
        hybrid = c.search(q, k=5, mode="hybrid")
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

    with pytest.raises(ConfigError, match="fusion_weights need fusion 'weighted'"):
        profile_from_dict({"name": "x", "fusion_weights": [1, 2]})
    with pytest.raises(ConfigError, match="fusion"):
        profile_from_dict({"name": "x", "fusion": "borda"})
