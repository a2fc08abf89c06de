"""The BM25 score matrix built with array operations (retrievers/bm25_matrix.py) is bitwise bm25s's own, on real
SciFact text with slimvec's tokenizer, for every bm25s variant and unusual rows (empty, one token repeated)."""

import bm25s
import numpy as np
import pytest

from slimvec.chunking import chunk_text
from slimvec.retrievers.bm25 import Bm25Config, Tokenizer
from slimvec.retrievers.bm25_matrix import score_matrix


@pytest.fixture(scope="module")
def rows(scifact_docs):
    """(token ids per row, vocabulary size): the SciFact documents of the suite (up to 1,000), then an empty row, a row repeating one
    token, a row of one token seen nowhere else, and a document again (equal rows)."""
    tokens = Tokenizer(Bm25Config())([chunk_text(d.title, d.text) for d in scifact_docs[:1000]])
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tokens]
    ids += [[], [ids[0][0]] * 7, [len(vocab)], list(ids[3])]
    return ids, len(vocab) + 1


def _cache(ids):
    flat = np.asarray([t for doc in ids for t in doc], dtype=np.int32)
    return flat, np.concatenate([[0], np.cumsum([len(d) for d in ids])]).astype(np.int64)


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (0.9, 0.4), (1.2, 1.0)])
def test_the_matrix_is_bm25s_own_bitwise(rows, method, k1, b):
    ids, n_vocab = rows
    ref = bm25s.BM25(k1=k1, b=b, method=method)
    want = ref.build_index_from_ids(unique_token_ids=list(range(n_vocab)), corpus_token_ids=ids, show_progress=False)
    mine = bm25s.BM25(k1=k1, b=b, method=method)
    tokens, offsets = _cache(ids)
    before = tokens.copy(), offsets.copy()
    got = score_matrix(mine, tokens, offsets, n_vocab)
    for key in ("data", "indices", "indptr"):
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    assert got["num_docs"] == want["num_docs"] == len(ids)
    if ref.nonoccurrence_array is None:
        assert mine.nonoccurrence_array is None
    else:
        assert np.array_equal(mine.nonoccurrence_array, ref.nonoccurrence_array)
    assert np.array_equal(tokens, before[0]) and np.array_equal(offsets, before[1])  # the caller's cache intact


def test_query_scores_equal_bm25s_on_real_queries(rows, scifact_judged):
    ids, n_vocab = rows
    ref = bm25s.BM25(method="lucene")
    ref.scores = ref.build_index_from_ids(list(range(n_vocab)), ids, show_progress=False)
    mine = bm25s.BM25(method="lucene")
    mine.scores = score_matrix(mine, *_cache(ids), n_vocab)
    rng = np.random.default_rng(0)
    nonzero = 0
    for _ in range(20):  # queries of real document terms: the ranking a search reads
        q = rng.choice(ids[int(rng.integers(0, len(ids) - 4))], 4).tolist()
        got, want = mine.get_scores_from_ids(q), ref.get_scores_from_ids(q)
        assert np.array_equal(got, want)
        nonzero += int(np.count_nonzero(got))
    assert nonzero > 100
