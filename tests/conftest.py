"""Shared fixtures: real SciFact documents from ../shared/data and one real collection built once."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from slimvec import Collection, Document

DATA = Path(os.environ.get("SLIMVEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SCIFACT = DATA / "scifact"
N_DOCS = 300
N_QUERIES = 25


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def scifact_judged() -> dict[str, tuple[str, set[str]]]:
    """First N_QUERIES SciFact test queries: id -> (text, relevant doc ids)."""
    qrels: dict[str, set[str]] = {}
    with open(SCIFACT / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, set()).add(did)
    queries = {q["_id"]: q["text"] for q in _jsonl(SCIFACT / "queries.jsonl")}
    chosen = list(qrels)[:N_QUERIES]
    return {q: (queries[q], qrels[q]) for q in chosen}


@pytest.fixture(scope="session")
def scifact_docs(scifact_judged) -> list[Document]:
    """N_DOCS real SciFact abstracts: every doc judged for the chosen queries, then corpus order."""
    corpus = _jsonl(SCIFACT / "corpus.jsonl")
    needed = set().union(*(rel for _, rel in scifact_judged.values()))
    picked = [d for d in corpus if d["_id"] in needed]
    picked += [d for d in corpus if d["_id"] not in needed][: N_DOCS - len(picked)]
    # Synthetic metadata for filter tests: a year, a group and a list of tags, derived from the position.
    return [
        Document(d["_id"], d["text"], d["title"],
                 {"year": 2000 + i % 25, "group": ["a", "b", "c"][i % 3], "tags": ["x", "y", "z"][: 1 + i % 3],
                  "odd": bool(i % 2)})
        for i, d in enumerate(picked)
    ]


@pytest.fixture(scope="session")
def built_collection(tmp_path_factory, scifact_docs) -> Path:
    """A real exact-search collection of the SciFact docs, built once per session (copy it before mutating)."""
    path = tmp_path_factory.mktemp("scifact") / "col"
    with Collection.create(path, model="all-MiniLM-L6-v2") as col:  # MiniLM: what the tests' figures assume
        col.add(scifact_docs)
    return path


@pytest.fixture()
def scifact_collection(built_collection, tmp_path) -> Path:
    """A private copy of the built collection that a test may change."""
    dst = tmp_path / "col"
    shutil.copytree(built_collection, dst)
    return dst


@pytest.fixture(scope="session")
def real() -> tuple[np.ndarray, np.ndarray]:
    """Real MiniLM vectors of SciFact documents and queries (cached under the temp dir between runs)."""
    from _real_vectors import real_vectors

    return real_vectors()


@pytest.fixture(scope="session")
def unit() -> np.ndarray:
    """2,000 random unit vectors of dimension 384."""
    x = np.random.default_rng(0).standard_normal((2000, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[int]:
    """The session's one local Ray instance (loopback, 3 CPUs, no dashboard, workers at this process's priority),
    shared by the distributed test files; yields how many encoder actors fit (one CPU stays for Ray Data's tasks)."""
    import ray

    from slimvec.distributed.actors import connect

    connect(None, num_cpus=3)
    yield int(ray.cluster_resources()["CPU"]) - 1
    ray.shutdown()


@pytest.fixture()
def keyed_client(tmp_path) -> Iterator[tuple]:
    """(TestClient, Collection): the HTTP app with API key `_server_util.KEY` serving "col", a FakeEncoder
    collection of `_server_util.DOCS` private to the test (server errors come back as responses, not raised)."""
    from _server_util import KEY, make_collection
    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    col = make_collection(tmp_path / "col")
    with TestClient(create_app({"col": col}, api_key=KEY), raise_server_exceptions=False) as c:
        yield c, col
    col.close()
