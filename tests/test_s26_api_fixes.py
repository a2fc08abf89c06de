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


# ---- 6. invalid UTF-8 in a URL is refused, not decoded into another text ------------------------------------------
# The path and query checks for lone surrogates could never fire (the URL decoding turns such bytes into U+FFFD): a
# document id or page offset became another text without a word (a 404 naming an id nobody sent, an empty page).
@pytest.mark.parametrize("method,url,where", [
    ("GET", "/api/collections/col/documents/%ED%A0%80", "path"),
    ("DELETE", "/api/collections/col/documents/d%ED%A0%801", "path"),
    ("GET", "/api/collections/col/documents?offset=%ED%B0%80", "query: parameter 'offset'"),
    ("GET", "/api/collections/col/search?q=bone%FF", "query: parameter 'q'"),
])
def test_invalid_utf8_in_the_url_is_a_422_naming_where(client, method, url, where):
    r = client.request(method, url)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{where}") and "not valid UTF-8" in r.json()["detail"]
    assert client.get("/api/collections/col/documents/d1").status_code == 200
    assert client.get("/api/collections/col/documents", params={"offset": "d2"}).json()["documents"][0]["id"] == "d2"
