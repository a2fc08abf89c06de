"""One forward pass of the model per query, whichever stage needs token vectors: mode multivector, and the
maxsim reranker after a dense first stage (found while benchmarking, benchmarks/multivector_profiles.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slimvec import Collection, Document
from slimvec.encoders.registry import load_encoder

DOCS = [
    Document("1", "Aspirin lowers the risk of heart attacks in adults with high blood pressure.", "Aspirin"),
    Document("2", "Vitamin D deficiency is common in northern countries during winter.", "Vitamin D"),
    Document("3", "Regular exercise improves insulin sensitivity in type 2 diabetes.", "Exercise"),
]


class CountingEncoder:
    """The real minilm-tokens model, counting query forward passes (every query method is one pass)."""

    QUERY_METHODS = ("encode_queries", "encode_query_tokens", "encode_queries_with_tokens")

    def __init__(self) -> None:
        self.real = load_encoder("minilm-tokens")
        self.passes = 0

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.real, attr)
        if attr in self.QUERY_METHODS:
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.passes += 1
                return value(*args, **kwargs)
            return counted
        return value


@pytest.fixture(scope="module")
def counted(tmp_path_factory) -> tuple[Collection, CountingEncoder]:
    enc = CountingEncoder()
    col = Collection.create(Path(tmp_path_factory.mktemp("mv")) / "c", profile="multivector", encoder=enc)
    col.add(DOCS)
    return col, enc


def test_multivector_mode_encodes_each_query_once(counted) -> None:
    col, enc = counted
    enc.passes = 0
    hits = col.search("does aspirin prevent heart attacks", mode="multivector")
    assert hits[0].id == "1"
    assert enc.passes == 1


def test_maxsim_rerank_after_dense_mode_encodes_each_query_once(counted) -> None:
    # The dense first stage and the maxsim reranker both need the query: search_many encodes dense and token
    # vectors together (encode_queries_with_tokens) instead of one pass each.
    col, enc = counted
    enc.passes = 0
    hits = col.search("does aspirin prevent heart attacks", mode="dense", rerank="maxsim")
    assert hits[0].id == "1"
    assert enc.passes == 1, f"{enc.passes} forward passes of the model for one query"
