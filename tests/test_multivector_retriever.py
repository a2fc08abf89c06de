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
