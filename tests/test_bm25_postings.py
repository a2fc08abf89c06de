"""BM25 posting lists appended commit by commit and scored at query time (retrievers/bm25_postings.py) give bitwise
bm25s's own scores, on real SciFact text with slimvec's tokenizer, for every bm25s variant and unusual rows (empty,
one token repeated), however the rows arrived (one build, many small appends, segments merged, rows dropped)."""

import math

import bm25s
import numpy as np
import pytest

from slimvec.chunking import chunk_text
from slimvec.retrievers.bm25 import Bm25Config, Tokenizer
from slimvec.retrievers.bm25_global import term_scorer
from slimvec.retrievers.bm25_postings import Postings
from slimvec.retrievers.postings import MERGE_RATIO


@pytest.fixture(scope="module")
def rows(scifact_docs):
    """(token ids per row, vocabulary size): the SciFact documents of the suite (up to 1,000), then an empty row, a
    row repeating one token, a row of one token seen nowhere else, and a document again (equal rows)."""
    tokens = Tokenizer(Bm25Config())([chunk_text(d.title, d.text) for d in scifact_docs[:1000]])
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tokens]
    ids += [[], [ids[0][0]] * 7, [len(vocab)], list(ids[3])]
    return ids, len(vocab) + 1


def _cache(ids):
    flat = np.asarray([t for doc in ids for t in doc], dtype=np.int32)
    return flat, np.concatenate([[0], np.cumsum([len(d) for d in ids])]).astype(np.int64)


def _appended(ids, n_vocab, sizes):
    """Postings of `ids` appended in commits of `sizes` rows (cycled), as a collection's commits append them."""
    postings, at, i = Postings(), 0, 0
    while at < len(ids):
        part = ids[at : at + sizes[i % len(sizes)]]
        postings.append(*_cache(part), n_vocab)
        at, i = at + len(part), i + 1
    return postings


def _scorer(ids, n_vocab, postings, **params):
    lengths = np.diff(_cache(ids)[1])
    own = (len(ids), int(lengths.sum()), postings.df(n_vocab))
    return term_scorer(bm25s.BM25(**params), postings, lengths, [str(t) for t in range(n_vocab)], own)


def assert_bm25s_own(ids, n_vocab, postings=None, **params):
    """Every term's (rows, scores) is bm25s's matrix column, bitwise and in bm25s's dtype."""
    want = bm25s.BM25(**params).build_index_from_ids(list(range(n_vocab)), ids, show_progress=False)
    scorer = _scorer(ids, n_vocab, postings or Postings.of_cache(*_cache(ids), n_vocab), **params)
    for t in range(n_vocab):
        parts = scorer.term(t)
        rows = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, np.int32)
        got = np.concatenate([v for _, v in parts]) if parts else np.zeros(0, want["data"].dtype)
        a, b = want["indptr"][t], want["indptr"][t + 1]
        assert np.array_equal(rows, want["indices"][a:b]), t
        assert got.dtype == want["data"].dtype and np.array_equal(got, want["data"][a:b], equal_nan=True), t


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (0.9, 0.4), (1.2, 1.0)])
def test_term_scores_are_bm25s_matrix_bitwise(rows, method, k1, b):
    ids, n_vocab = rows
    tokens, offsets = _cache(ids)
    before = tokens.copy(), offsets.copy()
    assert_bm25s_own(ids, n_vocab, k1=k1, b=b, method=method)
    assert np.array_equal(tokens, before[0]) and np.array_equal(offsets, before[1])  # the caller's cache intact


@pytest.mark.parametrize("sizes", [[1], [7, 1, 100], [333]])
def test_postings_appended_commit_by_commit_score_as_one_build(rows, sizes):
    ids, n_vocab = rows
    postings = _appended(ids, n_vocab, sizes)
    assert postings.rows == len(ids)
    entries = sum(s.entries for s in postings.segments)
    # each segment holds at least MERGE_RATIO times the next one's entries: O(log) segments a query visits
    assert len(postings.segments) <= 1 + math.log(entries, MERGE_RATIO)
    assert all(a.entries >= MERGE_RATIO * b.entries for a, b in zip(postings.segments, postings.segments[1:]))
    assert_bm25s_own(ids, n_vocab, postings, method="bm25+")
    assert_bm25s_own(ids, n_vocab, postings, method="lucene")


def test_postings_without_dropped_rows_equal_postings_of_the_rows_kept(rows):
    ids, n_vocab = rows
    keep = np.random.default_rng(0).random(len(ids)) < 0.7
    kept = _appended(ids, n_vocab, [50, 3]).kept(keep)
    fresh = Postings.of_cache(*_cache([r for r, k in zip(ids, keep) if k]), n_vocab)
    assert kept.rows == fresh.rows == int(keep.sum())
    for t in range(n_vocab):
        got, want = list(kept.term(t)), list(fresh.term(t))
        assert np.array_equal(np.concatenate([r for r, _ in got] or [[]]), np.concatenate([r for r, _ in want] or [[]]))
        assert np.array_equal(np.concatenate([c for _, c in got] or [[]]), np.concatenate([c for _, c in want] or [[]]))
    assert np.array_equal(kept.df(n_vocab), fresh.df(n_vocab))


@pytest.mark.parametrize("method", ["lucene", "bm25l"])
def test_query_scores_equal_bm25s_on_real_queries(rows, method):
    ids, n_vocab = rows
    ref = bm25s.BM25(method=method)
    ref.scores = ref.build_index_from_ids(list(range(n_vocab)), ids, show_progress=False)
    scorer = _scorer(ids, n_vocab, _appended(ids, n_vocab, [64, 5]), method=method)
    rng = np.random.default_rng(0)
    nonzero = 0
    for _ in range(20):  # queries of real document terms, one repeated: the ranking a search reads
        q = rng.choice(ids[int(rng.integers(0, len(ids) - 4))], 4).tolist()
        q.append(q[0])
        got, want = scorer.scores(q, len(ids)), ref.get_scores_from_ids(q)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        nonzero += int(np.count_nonzero(got))
    assert nonzero > 100


def test_a_term_repeated_past_float32s_whole_numbers_counts_as_bm25s_counts_it():
    """bm25s counts a row's terms with a Counter (exact integers); counting in float32 stopped at 2**24
    (found by the session-18 breaker in the score matrix these postings replace)."""
    assert_bm25s_own([[1] * (2**24 + 2) + [2], [1, 2, 3]], 4, k1=1e8)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_the_term_counts_take_bm25s_dtype(method):
    """bm25s scores the counts in its `dtype`: a float16 (k1 + 1) * tf overflows to inf there, and must here."""
    assert_bm25s_own([[1] * 2049 + [2], [1, 2, 3]], 4, dtype="float16", k1=1e4, method=method)
