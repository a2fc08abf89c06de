"""Faults fixed in session 22, each with the behaviour it now has."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.errors import ConfigError

HYBRID = {"name": "h", "retrievers": ["dense", "bm25"], "mode": "hybrid"}
DOCS = [Document(id="a", text="alpha beta"), Document(id="b", text="gamma delta"),
        Document(id="c", text="epsilon zeta gamma")]
cli = CliRunner()


# ---- 1: query vectors given to a search that does not use them ----------------------------------------
# `search_many(["q"], vectors=v, mode="bm25")` dropped the vectors and searched the text, silently (even vectors of
# a wrong shape). They are refused in one line now, as an option the plan would not use is (session 21); vectors
# that are the texts' own encodings (`encoded=True`: the sharded router, a migration, an evaluation run) pass.
def _refused(search, mode="bm25"):
    with pytest.raises(ConfigError) as e:
        search()
    message = str(e.value)
    assert message.startswith("vectors apply to modes that search by a dense vector (dense, hybrid)")
    assert f"this search runs mode {mode!r}" in message and "\n" not in message


def _ids(hits):
    return [[(h.id, h.score) for h in q] for q in hits]


def test_vectors_for_a_mode_that_does_not_search_by_them_are_refused(tmp_path):
    enc = FakeEncoder()
    with Collection.create(tmp_path / "col", profile=HYBRID, encoder=enc) as col:
        col.add(DOCS)
        v = enc.encode_queries(["gamma"])
        _refused(lambda: col.search_many(["gamma"], vectors=v, mode="bm25"))
        _refused(lambda: col.search_many(["gamma"], vectors=np.zeros((3, 5)), mode="bm25"))  # not even checked before
        _refused(lambda: col.search_many(["gamma"], vectors=v, mode="bm25", rerank="none"))
        # Where they are used, they still search; the texts' own encodings pass whatever the mode.
        text = _ids(col.search_many(["gamma"], mode="bm25"))
        assert _ids(col.search_many(["gamma"], vectors=v, mode="bm25", encoded=True)) == text
        for mode in ("dense", "hybrid"):
            assert _ids(col.search_many(["gamma"], vectors=v, mode=mode)) == _ids(col.search_many(["gamma"], mode=mode))
        assert col.search_many(["gamma"], vectors=v, mode="bm25", rerank="dense")[0]  # the dense reranker reads them
        # A collection keeping no dense index says so.
    with Collection.create(tmp_path / "bm25", profile={"name": "b", "retrievers": ["bm25"], "mode": "bm25"},
                           encoder=enc) as col:
        col.add(DOCS)
        with pytest.raises(ConfigError, match=r"dense vector \(this collection keeps no dense index\); this search "
                                              r"runs mode 'bm25'"):
            col.search_many(["gamma"], vectors=v)


def test_a_sharded_collection_refuses_them_too_and_its_shards_still_take_the_router_vectors(tmp_path):
    from slimvec.distributed import create_sharded

    enc = FakeEncoder()
    with Collection.create(tmp_path / "one", profile=HYBRID, encoder=enc) as one:
        one.add(DOCS)
        want = {m: _ids(one.search_many(["gamma", "alpha"], mode=m)) for m in ("dense", "bm25", "hybrid")}
    sharded = create_sharded(tmp_path / "sh", shards=2, profile=HYBRID, encoder=enc)
    try:
        sharded.add(DOCS)
        v = enc.encode_queries(["gamma", "alpha"])
        _refused(lambda: sharded.search_many(["gamma", "alpha"], vectors=v, mode="bm25"))
        for mode in ("dense", "bm25", "hybrid"):  # the router sends its vectors (encoded=True) to every shard
            assert _ids(sharded.search_many(["gamma", "alpha"], mode=mode)) == want[mode]
        assert _ids(sharded.search_many(["gamma", "alpha"], vectors=v, mode="hybrid")) == want["hybrid"]
    finally:
        sharded.close()


def test_a_migrating_collection_refuses_them_too(tmp_path, scifact_docs):
    from migrate_worker import NEW

    from slimvec.migrate import runner
    from slimvec.migrate.merged import MigratingCollection

    old, new = FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=64, name=NEW)
    with registered_encoders(old, new):
        with Collection.create(tmp_path / "col", profile=HYBRID, encoder=old) as col:
            col.add(scifact_docs[:60])
        runner.start(tmp_path / "col", NEW, sample=30, encoder=new)
        with Collection.open(tmp_path / "col", encoder=new) as col:
            assert isinstance(col, MigratingCollection)
            queries = ["cells", "protein expression"]
            v = new.encode_queries(queries)  # the new model's vectors, as a migrating collection takes them
            _refused(lambda: col.search_many(queries, vectors=v, mode="bm25"))
            assert _ids(col.search_many(queries, vectors=v, mode="dense")) == _ids(col.search_many(queries, mode="dense"))
            assert _ids(col.search_many(queries, mode="bm25")) and col.search_many(queries, vectors=v, mode="hybrid")

