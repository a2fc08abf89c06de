"""Faults found by session 22's second breaker in long-lived collections, each with the behaviour it now has."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.errors import CollectionError
from slimvec.migrate import runner

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def _docs(n: int = 120, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    return [Document(f"d{i}", " ".join(rng.choice(WORDS) for _ in range(12)), "", {"g": i % 3}) for i in range(n)]


def _migrating(path: Path) -> FakeEncoder:
    """A collection of 120 documents with a migration to "fake-new" fitted and none re-embedded; its new model."""
    with Collection.create(path, profile="exact-f32", encoder=FakeEncoder(32)) as col:
        col.add(_docs())
    new = FakeEncoder(24, name="fake-new")
    runner.migrate(path, "fake-new", encoder=new, fit_only=True, sample=40)
    return new


# ---- a migrating collection took `enable` (and `set_calibrator`), then dropped them at the switch ----------------
# Writes to a collection under migration are refused until the switch, but `enable("bm25")` (what `slimvec index
# --bm25` calls first) and `set_calibrator` were not: they wrote the OLD generation's manifest or calibration.json,
# which the switch replaces by the target's, so the BM25 index a user enabled (and searched with meanwhile) was gone
# after the migration, silently. And `slimvec index --bm25` into it enabled BM25, then failed on the upsert: half
# applied.
def test_a_migrating_collection_refuses_enable_and_set_calibrator(tmp_path):
    from slimvec.search.calibration import Calibrator

    path = tmp_path / "col"
    new = _migrating(path)
    with Collection.open(path, encoder=new) as col:
        with pytest.raises(CollectionError, match="migration to 'fake-new' is under way"):
            col.enable("bm25")
        with pytest.raises(CollectionError, match="migration to 'fake-new' is under way"):
            col.set_calibrator("dense", Calibrator.__new__(Calibrator))
        assert col.manifest["retrievers"] == ["dense"]
    assert not (path / "calibration.json").exists()
    runner.reembed(path, encoder=new)
    with Collection.open(path, encoder=new) as col:  # enabled after the switch, it stays
        col.enable("bm25")
        assert [h.id for h in col.search("alpha beta", mode="bm25")]
