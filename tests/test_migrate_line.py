"""The per-query score line (migrate/line.py), its references, and the merge of native and adapted hits."""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np
import pytest
from fakes import FakeEncoder
from migrate_worker import NEW

from slimvec import Collection
from slimvec.documents import Hit
from slimvec.errors import ConfigError
from slimvec.migrate import runner
from slimvec.migrate.line import REFERENCES, Pick, ScoreLine, pick_references, reference_depth
from slimvec.migrate.merged import _merge


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_line_matches_mean_and_spread_of_each_querys_top_reference_scores():
    rng = np.random.default_rng(1)
    x, y = _unit(rng, 300, 16), _unit(rng, 300, 24)
    qn, qo = _unit(rng, 4, 16), _unit(rng, 4, 24)
    line = ScoreLine(x, y, depth=30)
    a, b = line.lines(qn, qo)
    for i in range(4):
        # Reference: plain Python over each space's 30 best scores, population statistics.
        sn = sorted((float(np.dot(qn[i], r)) for r in x), reverse=True)[:30]
        so = sorted((float(np.dot(qo[i], r)) for r in y), reverse=True)[:30]
        slope = statistics.pstdev(so) / statistics.pstdev(sn)
        assert a[i] == pytest.approx(slope, rel=1e-4)
        assert b[i] == pytest.approx(statistics.fmean(so) - slope * statistics.fmean(sn), abs=1e-5)
        mapped = [a[i] * s + b[i] for s in sn]  # the native head lands on the old head's mean and spread
        assert statistics.fmean(mapped) == pytest.approx(statistics.fmean(so), abs=1e-5)
        assert statistics.pstdev(mapped) == pytest.approx(statistics.pstdev(so), rel=1e-4)


def test_line_of_an_exactly_linear_relation_recovers_it():
    # Old vectors built so that every reference's old score is 0.5 * its new score + 0.2 for this query.
    rng = np.random.default_rng(2)
    x, q = _unit(rng, 200, 8), _unit(rng, 1, 8)
    s = x @ q[0]
    y = np.stack([0.5 * s + 0.2, np.zeros_like(s)], axis=1).astype(np.float32)
    a, b = ScoreLine(x, y, depth=20).lines(q, np.array([[1.0, 0.0]], np.float32))
    assert a[0] == pytest.approx(0.5, rel=1e-4) and b[0] == pytest.approx(0.2, abs=1e-5)


def test_depth_is_a_share_of_the_references_with_a_floor():
    assert reference_depth(256, 0.1, 5) == 26
    assert reference_depth(30, 0.1, 5) == 5
    assert reference_depth(3, 0.1, 5) == 3
    assert reference_depth(5000, 0.025, 20) == 125


def test_random_references_are_a_seeded_sample_without_repeats():
    x = np.zeros((1000, 4), np.float32)
    got = pick_references(x, 100, Pick.RANDOM, seed=3)
    assert len(got) == 100 == len(set(got.tolist())) and got.min() >= 0 and got.max() < 1000
    assert list(got) == sorted(got)
    assert np.array_equal(got, pick_references(x, 100, "random", seed=3))
    assert not np.array_equal(got, pick_references(x, 100, "random", seed=4))
    assert np.array_equal(pick_references(x, 5000), np.arange(1000))  # fewer pairs than asked: all of them


def test_kmeans_references_cover_a_small_far_cluster_a_random_pick_misses():
    # 300 chunks around one direction, 6 around another: two medoids are one of each, for every seed.
    rng = np.random.default_rng(5)
    big, small = _unit(rng, 2, 32)
    x = np.concatenate([big + 0.05 * rng.standard_normal((300, 32)), small + 0.05 * rng.standard_normal((6, 32))])
    x = x.astype(np.float32)
    for seed in range(5):
        got = pick_references(x, 2, Pick.KMEANS, seed=seed)
        assert sorted((got >= 300).tolist()) == [False, True]
    randomly = [bool((pick_references(x, 2, Pick.RANDOM, seed=s) >= 300).any()) for s in range(5)]
    assert not all(randomly)


def _hit(doc, score):
    return Hit(doc, float(np.float32(score)), "", "", {})


def _merge_by_sorting(adapted, native, a, b, k):
    """The merge as a sort: native scores mapped, every hit in one list, stable sort (adapted first on ties)."""
    both = adapted + [dataclasses.replace(h, score=float(np.float32(a * h.score + b))) for h in native]
    return sorted(both, key=lambda h: -h.score)[:k]


@pytest.mark.parametrize("seed", range(30))
def test_merge_equals_one_sorted_list(seed):
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 2)  # half the cases on a coarse grid: many equal scores across the two lists
    def scores(n):
        s = rng.integers(0, 6, n) / 5 if grid else rng.random(n)
        return sorted(s.tolist(), reverse=True)
    adapted = [_hit(f"a{i}", s) for i, s in enumerate(scores(int(rng.integers(0, 12))))]
    native = [_hit(f"n{i}", s) for i, s in enumerate(scores(int(rng.integers(0, 12))))]
    a = 1.0 if grid else float(rng.uniform(-0.5, 2.0))  # a negative slope reorders the native list
    b = 0.0 if grid else float(rng.uniform(-0.3, 0.3))
    k = int(rng.integers(1, 15))
    assert _merge(adapted, native, a, b, k) == _merge_by_sorting(adapted, native, a, b, k)


def _plumbing(path, n=60):
    from conftest import SCIFACT, _jsonl

    from slimvec import Document

    docs = [Document(d["_id"], d["text"], d["title"]) for d in _jsonl(SCIFACT / "corpus.jsonl")[:n]]
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(docs)
    return docs


def test_start_keeps_the_chosen_references_and_records_the_depth(tmp_path):
    path = tmp_path / "col"
    _plumbing(path, 80)
    new = FakeEncoder(dim=64, name=NEW)
    with pytest.raises(ConfigError, match="references must be between 1 and 5000"):
        runner.start(path, NEW, sample=40, encoder=new, references=0)
    with pytest.raises(ConfigError, match="pick must be one of random, kmeans"):
        runner.start(path, NEW, sample=40, encoder=new, pick="medoids")
    record = runner.start(path, NEW, sample=40, encoder=new, references=12)
    assert record["line_depth"] == reference_depth(12) and record["line_pick"] == "kmeans"
    with np.load(path / "migration" / "reference.npz") as z:
        assert z["x_new"].shape == (12, 64) and z["y_old"].shape == (12, 32)
    with Collection.open(path, encoder=new) as col:
        assert len(col.line) == 12 and col.line.depth == record["line_depth"]
    other = tmp_path / "default"
    _plumbing(other, 80)
    record = runner.start(other, NEW, sample=40, encoder=new)
    with Collection.open(other, encoder=new) as col:  # the default keeps every sample pair (REFERENCES >= sample)
        assert REFERENCES >= 40 and len(col.line) == 40 and record["line_depth"] == reference_depth(40) == 5
    # The chosen default (BENCHMARKS.md, migration "Session 8"): every pair of a full sample, its top 2.5%.
    assert REFERENCES >= runner.MAX_SAMPLE and reference_depth(runner.MAX_SAMPLE) == 125


def test_the_kept_old_part_mask_follows_the_target_as_it_fills(tmp_path):
    # A search keeps the old part's mask; a batch committed by another handle (the re-embedding) must renew it,
    # or a document would be returned twice: once natively, once from the old part.
    path = tmp_path / "col"
    docs = _plumbing(path, 60)
    new = FakeEncoder(dim=64, name=NEW)
    runner.start(path, NEW, sample=20, encoder=new)

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with Collection.open(path, encoder=new) as col:
        before = col.search("cells", k=60)
        native = {d.id for d in docs if col.target.get(d.id) is not None}
        assert len(before) == 60 == len({h.id for h in before})
        with pytest.raises(Stop):
            runner.reembed(path, batch=10, encoder=new, on_batch=stop, switch_when_done=False)
        moved = {d.id for d in docs if col.target.get(d.id) is not None} - native
        assert len(moved) == 10
        after = col.search("cells", k=60)
        assert len(after) == 60 == len({h.id for h in after})
        # The moved documents now carry native scores put on the old scale by the query's line.
        (a, b), = col._lines(new.encode_queries(["cells"]), col.adapter.apply(new.encode_queries(["cells"])))
        own = {h.id: h.score for h in col.target.search("cells", k=60)}
        for h in after:
            if h.id in moved:
                assert h.score == pytest.approx(a * own[h.id] + b, abs=1e-5)


def test_a_filtered_search_through_the_migration_keeps_to_the_filter_and_leaves_the_kept_mask_alone(tmp_path):
    from conftest import SCIFACT, _jsonl

    from slimvec import Document

    rows = _jsonl(SCIFACT / "corpus.jsonl")[:60]
    docs = [Document(d["_id"], d["text"], d["title"], {"group": "ab"[i % 2]}) for i, d in enumerate(rows)]
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(docs)
    new = FakeEncoder(dim=64, name=NEW)
    runner.start(path, NEW, sample=20, encoder=new)
    group = {d.id: d.metadata["group"] for d in docs}
    with Collection.open(path, encoder=new) as col:
        everything = col.search("cells", k=60)  # keeps the unfiltered mask
        only_b = col.search("cells", k=60, filter={"group": "b"})
        again = col.search("cells", k=60)
    assert len(everything) == 60 == len({h.id for h in everything})
    assert {h.id for h in only_b} == {i for i, g in group.items() if g == "b"}  # native and old part alike
    assert len(only_b) == 30 == len({h.id for h in only_b})
    assert [(h.id, h.score) for h in again] == [(h.id, h.score) for h in everything]
