"""Session 23 fixes made beside the helpers' (each test fails on the code before its fix)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fakes import FakeEncoder, registered_encoders
from migrate_worker import NEW

from slimvec import Collection
from slimvec.documents import Document
from slimvec.errors import ConfigError
from slimvec.migrate import runner
from slimvec.migrate.merged import MigratingCollection

OLD = "fake-bow"


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"cells protein {i} cancer risk word{i % 7} other{i % 3}") for i in range(n)]


def test_a_migrating_collection_takes_each_calls_models_vectors_and_names_the_migration_when_mixed(tmp_path):
    """search_vectors searches the old collection with the old model's vectors (what the LangChain and LlamaIndex
    stores embed with until the switch); search_many(vectors=) takes the new model's. Before, a vector of the
    other model's dimension got a bare shape error ("expected (1, 64)") on a collection whose info says 32."""
    old, new = FakeEncoder(dim=32, name=OLD), FakeEncoder(dim=64, name=NEW)
    with registered_encoders(old, new):
        with Collection.create(tmp_path / "col", encoder=old) as col:
            col.add(_docs(60))
        shutil.copytree(tmp_path / "col", tmp_path / "before")
        runner.start(tmp_path / "col", NEW, sample=30, encoder=new)
        with Collection.open(tmp_path / "col") as col, Collection.open(tmp_path / "before") as before:
            assert isinstance(col, MigratingCollection)
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
