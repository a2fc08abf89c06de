"""Session 23 fixes made beside the helpers' (each test fails on the code before its fix)."""

from __future__ import annotations

import numpy as np
import pytest
from _migration_util import migrating_beside_copy
from fakes import FakeEncoder, registered_encoders
from migrate_worker import NEW

from slimvec import Collection
from slimvec.documents import Document
from slimvec.errors import ConfigError

OLD = "fake-bow"


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"cells protein {i} cancer risk word{i % 7} other{i % 3}") for i in range(n)]


def test_a_migrating_collection_takes_each_calls_models_vectors_and_names_the_migration_when_mixed(tmp_path):
    """search_vectors searches the old collection with the old model's vectors (what the LangChain and LlamaIndex
    stores embed with until the switch); search_many(vectors=) takes the new model's. Before, a vector of the
    other model's dimension got a bare shape error ("expected (1, 64)") on a collection whose info says 32."""
    old, new = FakeEncoder(dim=32, name=OLD), FakeEncoder(dim=64, name=NEW)
    with migrating_beside_copy(tmp_path, old, new, _docs(60)) as (col, before):
        for q in ("cells protein", "cancer risk word3", "other1"):
            v = old.encode_queries([q])
            got = [(h.id, h.score) for h in col.search_vectors(v, k=8)[0]]
            assert got == [(h.id, h.score) for h in before.search_vectors(v, k=8)[0]]
            assert len(got) == 8
        with pytest.raises(ConfigError, match=r"search_vectors: query vectors of dimension 64 during the "
                                              rf"migration to '{NEW}': they must be the old model's"):
            col.search_vectors(new.encode_queries(["cells"]), k=5)
        with pytest.raises(ConfigError, match=r"search_many\(vectors=...\): query vectors of dimension 32 "
                                              r"during the migration .* the NEW model's"):
            col.search_many(["cells"], vectors=old.encode_queries(["cells"]))
        hits = col.search_many(["cells"], vectors=new.encode_queries(["cells"]))[0]
        assert hits and np.isfinite([h.score for h in hits]).all()


def test_a_filters_mask_is_read_once_per_committed_state_and_never_served_stale(tmp_path):
    """A filter is evaluated over every document's metadata in SQLite (O(documents)); the mask is kept for the state
    it was read in. Before, every search re-ran the SQL; a kept mask must still follow every commit (this handle's,
    another handle's or process's) and a compaction's renumbered rows."""
    enc = FakeEncoder(dim=32, name=OLD)
    docs = [Document(f"d{i:02d}", f"cells protein {i} word{i % 5}", metadata={"topic": ("a", "b")[i % 2]})
            for i in range(40)]
    with registered_encoders(enc), Collection.create(tmp_path / "col", encoder=enc) as col:
        col.add(docs)
        calls = []
        real = col.store.rows_matching
        col.store.rows_matching = lambda *a, **kw: calls.append(a[0]) or real(*a, **kw)

        def topic_a(q: str = "cells protein") -> list[str]:
            return [h.id for h in col.search(q, k=40, filter={"topic": "a"})]

        want = sorted(d.id for d in docs if d.metadata["topic"] == "a")
        assert sorted(topic_a()) == want
        assert sorted(topic_a("word3")) == want and len(calls) == 1  # the same filter, another query: kept
        assert sorted(h.id for h in col.search("cells", k=40, filter={"topic": "b"})) == \
            sorted(set(d.id for d in docs) - set(want)) and len(calls) == 2
        with Collection.open(tmp_path / "col") as other:  # another handle commits
            other.add([Document("new", "cells protein new", metadata={"topic": "a"})])
            assert "new" in topic_a() and len(calls) == 3
            col.delete(["d01", "new"])
            got = topic_a()
            assert "d01" not in got and "new" not in got and len(calls) == 4
            other.delete([f"d{i:02d}" for i in range(0, 30, 2)])
        before = topic_a()
        col.compact()  # rows renumbered, the generation as it was
        assert sorted(topic_a()) == sorted(before) == sorted(
            i for i in want if i != "d01" and i not in {f"d{j:02d}" for j in range(0, 30, 2)})
        with Collection.open(tmp_path / "col") as fresh:
            assert topic_a() == [h.id for h in fresh.search("cells protein", k=40, filter={"topic": "a"})]


def test_a_kept_mask_is_never_the_answer_to_a_filter_the_language_refuses(tmp_path):
    enc = FakeEncoder(dim=32, name=OLD)
    from slimvec.errors import FilterError

    with registered_encoders(enc), Collection.create(tmp_path / "col", encoder=enc) as col:
        col.add(_docs(12))
        assert len(col.search("cells", k=20, filter={"_id": {"$in": ["d1", "d2"]}})) == 2
        with pytest.raises(FilterError, match=r"\$in takes a list"):
            col.search("cells", k=20, filter={"_id": {"$in": ("d1", "d2")}})
