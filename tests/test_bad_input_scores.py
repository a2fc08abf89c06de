"""Bad input, kind 7: scores are not membership.

Generated corpora over a small vocabulary (so common terms get a zero or negative idf), generated
queries, filters and deletes: for every BM25 method bm25s offers, BM25 must return exactly the allowed
documents that hold a query term (up to k), whatever the sign of their score, and never a filtered-out
or deleted one. The sparse retriever is held to the same rule with term weights of both signs.
Real SQLite store and real bm25s; the sparse term weights come from a plumbing encoder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _bad_input import tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimvec.documents import Chunk, Document
from slimvec.retrievers.base import Query
from slimvec.retrievers.bm25 import Bm25Config, Bm25Retriever
from slimvec.retrievers.sparse import SparseRetriever
from slimvec.store import Store

METHODS = ["robertson", "lucene", "atire", "bm25l", "bm25+"]
VOCAB = ["protein", "muscle", "sleep", "memory", "yeast", "heat", "bone", "calcium"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def corpus_case(draw):
    # Skewed word choice: the first words land in most documents, so their Robertson idf is <= 0.
    word = st.sampled_from(VOCAB[:2] * 4 + VOCAB)
    docs = draw(st.lists(st.lists(word, min_size=1, max_size=6), min_size=1, max_size=14))
    query = draw(st.lists(st.sampled_from(VOCAB + ["absent"]), min_size=1, max_size=3))
    allowed = draw(st.lists(st.booleans(), min_size=len(docs), max_size=len(docs)))
    deleted = draw(st.lists(st.integers(0, len(docs) - 1), max_size=3))
    k = draw(st.integers(1, len(docs) + 2))
    return docs, query, allowed, set(deleted), k


def _store(path: Path, docs: list[list[str]], deleted: set[int]) -> Store:
    store = Store.create(path, {"model": "none", "dim": 2})
    texts = [" ".join(words) for words in docs]
    documents = [Document(f"d{i}", t) for i, t in enumerate(texts)]
    chunks = [Chunk(d.id, 0, 0, len(d.text), d.text) for d in documents]
    store.commit(documents, chunks, np.zeros((len(docs), 2), dtype=np.float32), replace=False)
    if deleted:
        store.delete([f"d{i}" for i in deleted])
    return store


def _expected(docs, query, allowed, deleted) -> set[int]:
    return {i for i, words in enumerate(docs)
            if set(words) & set(query) and allowed[i] and i not in deleted}


def _check(scores: np.ndarray, rows: np.ndarray, members: set[int], k: int) -> None:
    got = [int(r) for r in rows if r >= 0]
    assert len(got) == min(k, len(members))
    assert set(got) <= members  # no filtered-out, deleted or term-less row, whatever its score
    assert len(got) == len(set(got))
    live = scores[: len(got)]
    assert np.all(np.isfinite(live)) and np.all(np.diff(live) <= 0)


@SETTINGS
@given(case=corpus_case(), method=st.sampled_from(METHODS))
def test_bm25_returns_the_documents_holding_a_query_term_for_every_method(case, method) -> None:
    docs, query, allowed, deleted, k = case
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "col", docs, deleted=set())
        r = Bm25Retriever(Bm25Config(method=method, stemmer=None, stopwords=None))
        r.sync(store)
        if deleted:  # deleted after the index was built: only the mask keeps them out
            store.delete([f"d{i}" for i in deleted])
        alive = np.zeros(len(docs), dtype=bool)
        alive[store.alive_rows()] = True
        mask = alive & np.asarray(allowed)
        scores, rows = r.search(Query(" ".join(query)), k, mask)
        members = _expected(docs, query, allowed, deleted)
        _check(scores, rows, members, k)
        if k >= len(members):
            assert {int(x) for x in rows if x >= 0} == members  # every match, even at score <= 0
        store.close()
    tally("7: BM25 queries over generated corpora, all five methods", 1, 0)


class _TermWeights:
    """Plumbing encoder: each vocabulary word is one dimension with a fixed signed weight."""

    kind = "sparse"
    dim = len(VOCAB) + 1

    def __init__(self, doc_weights: list[float], query_weights: list[float]) -> None:
        self.doc_weights, self.query_weights = doc_weights, query_weights

    def _encode(self, texts: list[str], weights: list[float]) -> sp.csr_matrix:
        m = sp.lil_matrix((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                j = VOCAB.index(w) if w in VOCAB else len(VOCAB)
                m[i, j] = weights[j]
        return m.tocsr()

    def encode_documents(self, texts: list[str]) -> sp.csr_matrix:
        return self._encode(texts, self.doc_weights)

    def encode_queries(self, texts: list[str]) -> sp.csr_matrix:
        return self._encode(texts, self.query_weights)


@SETTINGS
@given(case=corpus_case(), weights=st.lists(st.sampled_from([-2.0, -0.5, 0.5, 1.0]), min_size=2 * len(VOCAB) + 2,
                                            max_size=2 * len(VOCAB) + 2))
def test_sparse_returns_the_rows_sharing_a_weighted_term_whatever_the_sign(case, weights) -> None:
    docs, query, allowed, deleted, k = case
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "col", docs, deleted)
        enc = _TermWeights(weights[: len(VOCAB) + 1], weights[len(VOCAB) + 1 :])
        r = SparseRetriever(lambda: enc, "plumbing")
        r.sync(store)
        alive = np.zeros(len(docs), dtype=bool)
        alive[store.alive_rows()] = True
        scores, rows = r.search(Query(" ".join(query)), k, alive & np.asarray(allowed))
        members = _expected(docs, [w for w in query if w in VOCAB], allowed, deleted)
        _check(scores, rows, members, k)
        store.close()
    tally("7: sparse queries with signed term weights", 1, 0)
