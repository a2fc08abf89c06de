"""The LIMIT-style generator (benchmarks/_limit_data.py) and the claims benchmarks/limit.py reports."""

from __future__ import annotations

import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import limit  # noqa: E402
from _limit_data import ATTRIBUTES, LimitConfig, generate, parse_doc, parse_query, write_beir  # noqa: E402

from slimvec.ingest.beir import load_qrels, load_queries  # noqa: E402

TINY = LimitConfig(docs=60, attrs_per_doc=12, core=9, conjunctions=40, seed=5)


def _read_corpus(path: Path) -> dict[str, str]:
    import json

    with open(path / "corpus.jsonl", encoding="utf-8") as f:
        return {r["_id"]: r["text"] for r in map(json.loads, f)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(generate(TINY), tmp_path_factory.mktemp("limit") / "set")


def test_qrels_are_exact_membership_read_back_from_the_files(tiny: Path) -> None:
    # Recomputed from the written texts alone, not from the generator's own bookkeeping.
    corpus = {d: set(parse_doc(t)) for d, t in _read_corpus(tiny).items()}
    queries = load_queries(tiny)
    qrels = load_qrels(tiny, "test")
    assert set(qrels) == set(queries)
    assert all(len(a) == TINY.attrs_per_doc for a in corpus.values())
    for qid, text in queries.items():
        asked = set(parse_query(text))
        assert 1 <= len(asked) <= 2
        assert set(qrels[qid]) == {d for d, a in corpus.items() if asked <= a}, qid


def test_every_pair_of_the_core_is_some_querys_relevant_set(tiny: Path) -> None:
    data = generate(TINY)
    relevant_sets = {frozenset(r) for r in load_qrels(tiny, "test").values()}
    assert len(data.core_ids) == TINY.core
    for pair in combinations(data.core_ids, 2):
        assert frozenset(pair) in relevant_sets, pair
    # One-attribute queries are exactly the pairs; conjunctions have one relevant core document and
    # two core documents holding one of the two attributes each.
    kinds = data.kinds
    assert sum(k == "pair" for k in kinds.values()) == TINY.core * (TINY.core - 1) // 2
    corpus = {d: set(parse_doc(t)) for d, t in _read_corpus(tiny).items()}
    for qid, kind in kinds.items():
        if kind == "and":
            a, b = data.queries[qid]
            (answer,) = data.qrels[qid]
            partial = {d for d, s in corpus.items() if (a in s) != (b in s)}
            assert answer in data.core_ids and len(partial) == 2 and partial <= set(data.core_ids)


def test_generation_is_deterministic_by_seed(tmp_path: Path) -> None:
    a = write_beir(generate(TINY), tmp_path / "a")
    b = write_beir(generate(TINY), tmp_path / "b")
    c = write_beir(generate(LimitConfig(**{**TINY.__dict__, "seed": 6})), tmp_path / "c")
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "SOURCE.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "corpus.jsonl").read_bytes() != (c / "corpus.jsonl").read_bytes()
    assert (a / "qrels/test.tsv").read_bytes() != (c / "qrels/test.tsv").read_bytes()


def test_bad_sizes_fail_in_one_line_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match="attrs_per_doc"):
        LimitConfig(docs=50, attrs_per_doc=5, core=9).check()
    with pytest.raises(ValueError, match="word list"):
        LimitConfig(docs=100, attrs_per_doc=60, core=60).check()
    with pytest.raises(ValueError, match="docs"):
        LimitConfig(docs=5, attrs_per_doc=12, core=9).check()


def test_each_attribute_is_exactly_one_bm25_term() -> None:
    # Exact membership is only what BM25 sees if no two attributes share a stem and none is a stopword.
    from slimvec.retrievers.bm25 import Bm25Config, Tokenizer

    tok = Tokenizer(Bm25Config())
    terms = [tok.one(w) for w in ATTRIBUTES]
    assert all(len(t) == 1 for t in terms)
    assert len({t[0] for t in terms}) == len(ATTRIBUTES)


def test_bm25_collection_ranks_every_relevant_set_in_its_top_2(tiny: Path, tmp_path: Path) -> None:
    # Where exact membership decides relevance, term matching represents every pattern: both documents of
    # every pair, and the one document holding both attributes of every conjunction, rank in the top 2
    # (a real collection with the built-in bm25 profile, as benchmarks/limit.py runs it).
    from slimvec import Collection
    from slimvec.ingest import read_sources

    queries, qrels = load_queries(tiny), load_qrels(tiny, "test")
    with Collection.create(tmp_path / "col", profile="bm25") as col:
        col.add(read_sources([tiny / "corpus.jsonl"], strict=True))
        qids = sorted(queries)
        hits = col.search_many([queries[q] for q in qids], k=2)
    for qid, top in zip(qids, hits):
        assert set(qrels[qid]) <= {h.id for h in top}, qid


def test_free_single_vectors_of_too_small_a_dimension_miss_pairs_a_larger_one_fits() -> None:
    # Six documents, all 15 pairs: unit vectors on the circle (d = 2) can only cut off neighbouring pairs
    # (at most 6), so no optimisation reaches 100% Recall@2; in d = 6 one-hot documents would do, and
    # the optimiser finds a solution.
    assert not limit.free_embedding_fits(6, 2, steps=600, restarts=2)
    assert limit.free_embedding_fits(6, 6, steps=600, restarts=2)


def test_recall2_check_is_strict_on_a_hand_built_case() -> None:
    docs = np.eye(3)
    rel = limit.pair_qrels(3)
    assert limit.recall2_all(docs[rel].sum(axis=1), docs, rel)
    assert not limit.recall2_all(np.ones((3, 3)), docs, rel)  # all tied: the relevant pair is not above


def test_maxsim_with_one_2d_token_per_attribute_fits_every_pair() -> None:
    assert limit.maxsim_pairs_fit(20)


def test_four_dimensions_hold_every_pair_exactly_with_a_shrinking_margin() -> None:
    # Beyond the optimiser: unit documents on Carathéodory's curve in R^4 with LP-found queries rank every
    # pair first (margin > 0), at a size where free-embedding optimisation in d = 4 already fails (13).
    m13, m16 = limit.caratheodory_margin(13), limit.caratheodory_margin(16)
    assert 0 < m16 < m13
    # On the circle (d = 2) the same construction cannot: two non-neighbouring points of five get no margin.
    assert limit.caratheodory_margin(5, d=2) <= 1e-9
