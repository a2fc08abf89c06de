"""MultiVectorRetriever / MaxSimReranker over a real store: MaxSim reranking of first-stage candidates, with
deletes and filters (the `allowed` mask) honoured and the token file kept in step with the commit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimvec.documents import Chunk, Document
from slimvec.errors import CollectionError
from slimvec.index.flat import ExactIndex
from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.retriever import MaxSimReranker, MultiVectorRetriever, query_tokens
from slimvec.multivector.tokenstore import TokenStore
from slimvec.retrievers.base import Query
from slimvec.retrievers.dense import DenseRetriever
from slimvec.search.rerank import Candidates
from slimvec.store import Store

DIM = 8


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class TableEncoder:
    """Plumbing stand-in: query text -> fixed token vectors (never used for quality claims)."""

    kind = "multivector"
    dim = DIM

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls = 0

    def encode_query_tokens(self, texts: list[str]) -> list[np.ndarray]:
        self.calls += 1
        return [self.table[t] for t in texts]


@pytest.fixture()
def collection(tmp_path: Path):
    rng = np.random.default_rng(0)
    docs_tokens = [_unit(rng.standard_normal((int(n), DIM))) for n in rng.integers(1, 12, 40)]
    store = Store.create(tmp_path / "col", {"model": "fake", "dim": DIM})
    ts = TokenStore.create(tmp_path / "col" / "tokens", dim=DIM, storage="float32")
    docs = [Document(f"d{i}", f"text {i}", metadata={"even": i % 2 == 0}) for i in range(40)]
    for lo in (0, 25):  # two commits
        part = slice(lo, 25 if lo == 0 else 40)
        with store.writer():
            start = store.committed_rows
            ts.append(start, docs_tokens[part])
            dense = np.stack([_unit(t.mean(axis=0)) for t in docs_tokens[part]])
            store.commit(docs[part], [Chunk(d.id, 0, 0, 4, d.text) for d in docs[part]], dense, replace=False)
    return store, ts, docs_tokens


def _query(docs_tokens: list[np.ndarray], target: int) -> tuple[Query, TableEncoder]:
    q = _unit(docs_tokens[target][:2] + 0.05)
    return Query("q"), TableEncoder({"q": q})


def test_search_is_maxsim_over_first_stage_candidates(collection) -> None:
    store, ts, docs_tokens = collection
    query, enc = _query(docs_tokens, 7)
    query._vector = _unit(docs_tokens[7].mean(axis=0))
    first = DenseRetriever(ExactIndex(DIM))
    mv = MultiVectorRetriever(first, ts, enc, depth=10)
    mv.sync(store)
    assert mv.rows == 40
    allowed = np.ones(40, bool)
    scores, rows = mv.search(query, 5, allowed)
    _, cand = first.search(query, 10, allowed)
    q = enc.table["q"]
    offsets = ts.offsets()
    ref = {int(r): float(maxsim_scores(q, ts.tokens()[offsets[r] : offsets[r + 1]], [0, offsets[r + 1] - offsets[r]])[0])
           for r in cand}
    best = sorted(ref, key=lambda r: -ref[r])[:5]
    assert rows.tolist() == best and rows[0] == 7
    np.testing.assert_allclose(scores, [ref[r] for r in best], rtol=1e-5)
    assert enc.calls == 1 and query_tokens(query, enc) is query._tokens  # query tokens encoded once


def test_allowed_mask_hides_deleted_and_filtered_rows(collection) -> None:
    store, ts, docs_tokens = collection
    query, enc = _query(docs_tokens, 7)
    query._vector = _unit(docs_tokens[7].mean(axis=0))
    store.delete(["d7"])  # delete: the row stays in the files and is masked out
    alive = np.zeros(40, bool)
    alive[store.alive_rows()] = True
    odd_only = alive & (np.arange(40) % 2 == 1)  # a filter keeping odd documents
    mv = MultiVectorRetriever(DenseRetriever(ExactIndex(DIM)), ts, enc, depth=40)
    mv.sync(store)
    _, rows = mv.search(query, 40, odd_only)
    kept = rows[rows >= 0]
    assert 7 not in kept and set(kept.tolist()) == set(np.flatnonzero(odd_only).tolist())
    _, rows = mv.search(query, 3, np.zeros(40, bool))
    assert rows.tolist() == [-1, -1, -1]


def test_token_file_behind_the_commit_is_an_error(collection, tmp_path: Path) -> None:
    store, ts, _ = collection
    ts.truncate(30)
    mv = MultiVectorRetriever(DenseRetriever(ExactIndex(DIM)), ts, TableEncoder({}))
    mv.sync(store)  # recorded, not raised: `check` reports it
    assert mv.check(store, np.ones(40, bool)) == ["token offsets hold 30 rows, 40 committed"]
    with pytest.raises(CollectionError, match="30 rows, 40 committed"):
        mv.search(Query("q"), 3, np.ones(40, bool))


def test_maxsim_reranker_scores_each_candidate_row(collection) -> None:
    _, ts, docs_tokens = collection
    query, enc = _query(docs_tokens, 3)
    rr = MaxSimReranker(ts, enc)
    cands = Candidates(docs=[0, 1], counts=[2, 1], rows=[3, 9, 20])
    got = rr.score(query, cands)
    q = enc.table["q"]
    expect = [float(maxsim_scores(q, docs_tokens[r], [0, len(docs_tokens[r])])[0]) for r in (3, 9, 20)]
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_centroid_maxsim_is_maxsim_over_each_tokens_centroid() -> None:
    from slimvec.multivector.codes import fit_token_codec
    from slimvec.multivector.maxsim import maxsim_centroids

    rng = np.random.default_rng(11)
    x = _unit(rng.standard_normal((300, DIM)))
    codec = fit_token_codec("residual:8:2", x)
    codes = codec.encode(x)
    offsets = np.array([0, 10, 10, 60, 300])
    q = _unit(rng.standard_normal((3, DIM)))
    docs = np.array([3, 1, 0, 2])
    expect = []
    for d in docs:  # by hand: the centroid of each token from its id bytes, then ColBERT's sum of maxima
        rows = range(offsets[d], offsets[d + 1])
        cents = [codec.centroids[int(codes[r, 0]) + 256 * int(codes[r, 1])] for r in rows]
        expect.append(sum(max(float(t @ c) for c in cents) for t in q) if cents else 0.0)
    np.testing.assert_allclose(maxsim_centroids(q, codes, offsets, docs, codec.centroids), expect, atol=1e-5)


def test_centroid_keep_scores_the_best_by_centroids_exactly(tmp_path: Path) -> None:
    from slimvec.multivector.codes import fit_token_codec
    from slimvec.multivector.maxsim import maxsim_centroids

    rng = np.random.default_rng(12)
    docs_tokens = [_unit(rng.standard_normal((int(n), DIM))) for n in rng.integers(1, 12, 40)]
    codec = fit_token_codec("residual:8:2", np.concatenate(docs_tokens))
    store = Store.create(tmp_path / "col", {"model": "fake", "dim": DIM})
    ts = TokenStore.create(tmp_path / "col" / "tokens", dim=DIM, storage="codes", codec=codec)
    docs = [Document(f"d{i}", f"text {i}") for i in range(40)]
    with store.writer():
        ts.append(0, docs_tokens)
        dense = np.stack([_unit(t.mean(axis=0)) for t in docs_tokens])
        store.commit(docs, [Chunk(d.id, 0, 0, 4, d.text) for d in docs], dense, replace=False)
    q = _unit(docs_tokens[7][:3] + 0.1)
    enc = TableEncoder({"q": q})
    dense_stage = DenseRetriever(ExactIndex(DIM))
    full = MultiVectorRetriever(dense_stage, tmp_path / "col" / "tokens", enc, depth=40)
    pruned = MultiVectorRetriever(dense_stage, tmp_path / "col" / "tokens", enc, depth=40, centroid_keep=6)
    for r in (full, pruned):
        r.sync(store)
    allowed = np.ones(40, bool)
    queries = [Query("q"), Query("q")]
    for qq in queries:
        qq._vector = _unit(q.mean(axis=0))
    s_full, r_full = full.search(queries[0], 40, allowed)
    s_pr, r_pr = pruned.search(queries[1], 6, allowed)  # 40 candidates > 6: pruning applies
    codes, offsets = ts.tokens(40), ts.offsets(40)
    approx = maxsim_centroids(q, codes, offsets, np.arange(40), codec.centroids)
    exact = dict(zip(r_full.tolist(), s_full.tolist()))
    best6 = np.argsort(-approx, kind="stable")[:6].tolist()
    # the six best by centroids, scored exactly, in exact order: not the six best by exact MaxSim
    assert sorted(r_pr.tolist()) == sorted(best6)
    np.testing.assert_allclose(s_pr, [exact[r] for r in r_pr], atol=1e-6)
    assert list(s_pr) == sorted(s_pr, reverse=True)
    assert set(best6) != set(r_full[:6].tolist())  # the case is one where pruning changes the result
    # k above centroid_keep: the best k by centroids are scored exactly (at least k rows are exact)
    q3 = Query("q")
    q3._vector = queries[1]._vector
    s10, r10 = pruned.search(q3, 10, allowed)
    assert sorted(r10.tolist()) == sorted(np.argsort(-approx, kind="stable")[:10].tolist())
    np.testing.assert_allclose(s10, [exact[r] for r in r10], atol=1e-6)
