"""Faults found by the session-18 breaker in that session's changes, each pinned by a test."""

import sys
from pathlib import Path

import numpy as np


def test_the_catch_up_benchmarks_peer_builds_what_a_restarted_server_builds(monkeypatch):
    """benchmarks/catch_up.py's peer (a fresh open + search, "what a server restarted after the load pays") opened
    the directory after the server's search had saved its BM25 matrix, so for a hybrid profile it timed loading
    that file, not the rebuild a restarted server makes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import catch_up

    from slimvec.retrievers.bm25_postings import Postings

    builds, original = [], Postings.of_cache

    def counting(*args, **kwargs):
        builds.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Postings, "of_cache", counting)
    x = np.random.default_rng(0).standard_normal((2010, 16)).astype(np.float32)
    m = catch_up.measure(x / np.linalg.norm(x, axis=1, keepdims=True), 2000, 10, "hybrid")
    # BM25's postings are appended at each commit and saved with it: neither the server catching up nor the
    # peer opening the loader's files builds them from the whole token cache (before postings, each built a
    # score matrix: 3 builds)
    assert builds == [] and m["same"]
