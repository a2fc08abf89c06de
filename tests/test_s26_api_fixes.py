"""Session 26 API fixes (collection API, CLI, HTTP server, profiles); each test fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest
from _server_util import make_collection
from fakes import FakeEncoder
from fastapi.testclient import TestClient

from slimvec.documents import Document
from slimvec.errors import ConfigError
from slimvec.search.options import SearchOptions
from slimvec.server import create_app

OLD, NEW = "fake-bow", "fake-bow-rolled"


class RolledEncoder(FakeEncoder):
    """Another model of the same dimension: the bag of words of FakeEncoder with its coordinates rotated, so its
    vectors scored against the old model's rows rank at random."""

    def _vec(self, text: str) -> np.ndarray:
        return np.roll(super()._vec(text), 11)


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"cells protein {i} cancer risk word{i % 7} other{i % 3} tag{i}") for i in range(n)]


# ---- 4. strict numbers in a search body --------------------------------------------------------------------------
@pytest.fixture()
def client(tmp_path):
    col = make_collection(tmp_path / "col")
    with TestClient(create_app({"col": col}, api_key=None), raise_server_exceptions=False) as c:
        yield c
    col.close()


# The other numeric fields of the body (k, rerank_depth, fusion_weights, fusion_temperature) were strict already.
@pytest.mark.parametrize("value", ["0.5", "1", " .5", "1e-1"])
def test_a_search_body_refuses_min_relevance_sent_as_a_string(client, value):
    r = client.post("/api/collections/col/search", json={"q": "bone", "min_relevance": value})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "min_relevance"]


def test_min_relevance_takes_numbers_and_auto_and_its_text_only_from_the_cli_and_get(client):
    assert SearchOptions.of(min_relevance=0.5).min_relevance == 0.5
    assert SearchOptions.of(min_relevance=np.float32(0.25)).min_relevance == 0.25
    assert SearchOptions.of(min_relevance="AUTO").min_relevance == "auto"
    with pytest.raises(ConfigError, match=r"^min_relevance: .*the string '0.5' \(send the number itself"):
        SearchOptions.of(min_relevance="0.5")
    # a query parameter is text: GET converts it and reaches the search (no calibration: the same 400 as POST's)
    got = client.get("/api/collections/col/search", params={"q": "bone", "min_relevance": "0.5"})
    posted = client.post("/api/collections/col/search", json={"q": "bone", "min_relevance": 0.5})
    assert got.status_code == posted.status_code == 400 and "calibrat" in got.json()["detail"]
    bad = client.get("/api/collections/col/search", params={"q": "bone", "min_relevance": "half"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "min_relevance"]
