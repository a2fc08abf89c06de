"""Faults found by the session-18 breaker in that session's changes, each pinned by a test."""

import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest

from slimvec.retrievers.bm25_matrix import score_matrix


def _cache(ids):
    flat = np.asarray([t for doc in ids for t in doc], dtype=np.int32)
    return flat, np.concatenate([[0], np.cumsum([len(d) for d in ids])]).astype(np.int64)


def _assert_bm25s_own(ids, n_vocab, **params):
    ref = bm25s.BM25(**params)
    want = ref.build_index_from_ids(list(range(n_vocab)), ids, show_progress=False)
    mine = bm25s.BM25(**params)
    got = score_matrix(mine, *_cache(ids), n_vocab)
    for key in ("data", "indices", "indptr"):
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key], equal_nan=True), key


def test_a_term_repeated_past_float32s_whole_numbers_counts_as_bm25s_counts_it():
    """bm25s counts a row's terms with a Counter (exact integers); counting in float32 stopped at 2**24."""
    _assert_bm25s_own([[1] * (2**24 + 2) + [2], [1, 2, 3]], 4, k1=1e8)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_the_term_counts_take_bm25s_dtype(method):
    """bm25s scores the counts in its `dtype`: a float16 (k1 + 1) * tf overflows to inf there, and must here."""
    _assert_bm25s_own([[1] * 2049 + [2], [1, 2, 3]], 4, dtype="float16", k1=1e4, method=method)


def test_the_catch_up_benchmarks_peer_builds_what_a_restarted_server_builds(monkeypatch):
    """benchmarks/catch_up.py's peer (a fresh open + search, "what a server restarted after the load pays") opened
    the directory after the server's search had saved its BM25 matrix, so for a hybrid profile it timed loading
    that file, not the rebuild a restarted server makes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import catch_up

    import slimvec.retrievers.bm25 as bm25

    builds, original = [], bm25.score_matrix

    def counting(*args, **kwargs):
        builds.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(bm25, "score_matrix", counting)
    x = np.random.default_rng(0).standard_normal((2010, 16)).astype(np.float32)
    m = catch_up.measure(x / np.linalg.norm(x, axis=1, keepdims=True), 2000, 10, "hybrid")
    assert len(builds) == 3 and m["same"]  # the server's first search, its catch-up, and the peer's own build
