"""`slimvec migrate` on real collections: search through every stage, kills, the switch, refusals."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _switch_crash import crash_after_moves
from fakes import FakeEncoder, registered_encoders
from migrate_worker import NEW, fresh_build_owners, reembedding_calls, run_and_kill

from slimvec import Collection
from slimvec.encoders.memo import MemoEncoder
from slimvec.errors import CollectionError
from slimvec.migrate import runner
from slimvec.migrate.merged import MigratingCollection
from slimvec.migrate.state import has_migration, progress

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


def _hits(col, queries, k=10):
    return [[(h.id, round(h.score, 5)) for h in col.search(q, k=k)] for q in queries]


@pytest.fixture(scope="module")
def minilm():
    from slimvec.encoders.registry import load_encoder

    return load_encoder("all-MiniLM-L6-v2")


MIGRATE_DOCS = 60  # real models both ways: enough chunks for a fitted sample and several re-embedding batches


def test_wordllama_to_minilm_answers_at_every_stage_and_ends_as_a_fresh_build(tmp_path, scifact_docs,
                                                                              scifact_judged, minilm):
    # Memoised: the fresh build at the end gets the very vectors the migration computed for each text, so any row
    # stored against the wrong chunk shows as a different answer, and MiniLM runs once per text, not twice.
    minilm = MemoEncoder(minilm)
    docs = scifact_docs[:MIGRATE_DOCS]
    queries = [q for q, _ in list(scifact_judged.values())[:8]]
    path = tmp_path / "col"
    with Collection.create(path, model="wordllama") as col:
        col.add(docs)
    record = runner.start(path, "all-MiniLM-L6-v2", adapter="procrustes", sample=30, encoder=minilm)
    native = record["native_at_start"]  # the sample's documents, stored natively at start
    assert record["status"] == "reembedding" and record["documents"] == MIGRATE_DOCS and 0 < native < MIGRATE_DOCS // 2 + 10
    seen = []

    def at_batch(done: int, total: int) -> None:
        with Collection.open(path, encoder=minilm) as col:  # another reader, opened mid-migration
            assert isinstance(col, MigratingCollection)
            hits = col.search(queries[0], k=10)
            assert len(hits) == 10 and len({h.id for h in hits}) == 10
            assert col.info()["migration"]["reembedded"] == done
            seen.append(done)

    with Collection.open(path, encoder=minilm) as col:
        assert col.info()["migration"] == {"to": "all-MiniLM-L6-v2", "adapter": record["adapter"],
                                           "status": "reembedding", "documents": MIGRATE_DOCS,
                                           "reembedded": native, "fraction": round(native / MIGRATE_DOCS, 4)}
        assert all(len(h) == 10 for h in _hits(col, queries))
        with pytest.raises(CollectionError, match="slimvec migrate"):
            col.add(docs[:1])
    out = runner.reembed(path, batch=10, encoder=minilm, on_batch=at_batch)
    assert out == {"reembedded": MIGRATE_DOCS - native, "documents": MIGRATE_DOCS, "switched": True}
    assert len(seen) >= 3 and seen[-1] == MIGRATE_DOCS and seen == sorted(set(seen)) and seen[0] > native
    assert not has_migration(path) and progress(path) is None
    fresh = tmp_path / "fresh"
    with Collection.create(fresh, model="all-MiniLM-L6-v2", encoder=minilm) as col:
        col.add(docs)
        want = _hits(col, queries)
    with Collection.open(path, encoder=minilm) as col:
        assert type(col) is Collection and col.manifest["model"] == "all-MiniLM-L6-v2"
        assert col.check() == []
        got = _hits(col, queries)
    assert got == want  # the same ids and scores: one vector per text, stored against its own chunk


def _plumbing_collection(path: Path, docs) -> None:
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(docs)


@pytest.fixture()
def by_name():
    """The plumbing encoders registered by name, so every stage of a migration opens without an encoder."""
    with registered_encoders(FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=64, name=NEW)):
        yield


def test_ten_kills_during_reembedding_lose_nothing_and_encode_nothing_twice(tmp_path, scifact_docs, by_name):
    docs = scifact_docs[:120]
    path, log = tmp_path / "col", tmp_path / "calls.log"
    _plumbing_collection(path, docs)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{HERE}"}
    cmd = [sys.executable, str(HERE / "migrate_worker.py"), str(path), str(log), "2"]  # 60 batches: ten kills land before the end
    rng = random.Random(0)
    kills = 0
    while kills < 10:
        if not run_and_kill(cmd, env, log, rng.randint(1, 3), rng.uniform(0, 0.02)):
            break
        kills += 1
        with Collection.open(path) as col:  # search keeps answering after every kill, at whatever stage
            assert len(col.search("cells", k=5)) == 5
    assert kills == 10, "the migration finished before ten kills landed"
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert not has_migration(path)
    # Every chunk encoded at least once, by the start (the sample, stored in the target) or the re-embedding;
    # no sample chunk encoded again by the re-embedding; a chunk encoded again only when the batch that held it
    # was in flight at a kill (not committed), so repeated calls <= kills.
    seen, repeated_calls, calls, sample = reembedding_calls(log)
    owners = fresh_build_owners(docs, tmp_path / "fresh")
    assert sample and not sample & set(seen)
    assert sample | set(seen) == set(owners)
    assert repeated_calls <= kills
    assert sum(seen.values()) - len(seen) <= kills * max(len(c) for c in calls)
    with Collection.open(path, encoder=FakeEncoder(dim=64, name=NEW)) as col, \
            Collection.open(tmp_path / "fresh", encoder=FakeEncoder(dim=64, name=NEW)) as fresh:
        assert col.check() == []
        assert len(col) == 120 and {d.id for d in docs} == {col.get(d.id).id for d in docs}
        for q in ("cells", "protein expression", "cancer risk"):
            assert [(h.id, h.score) for h in col.search(q, k=10)] == [(h.id, h.score) for h in fresh.search(q, k=10)]


class CountingEncoder(FakeEncoder):
    """The plumbing new model, counting how often each text is encoded."""

    def __init__(self) -> None:
        super().__init__(dim=64, name=NEW)
        self.seen: dict[str, int] = {}

    def encode_documents(self, texts: list[str], progress: bool = False):
        for t in texts:
            self.seen[t] = self.seen.get(t, 0) + 1
        return super().encode_documents(texts)


def test_sample_documents_are_stored_at_start_scored_natively_and_never_encoded_again(tmp_path, scifact_docs):
    docs = scifact_docs[:60]
    path = tmp_path / "col"
    _plumbing_collection(path, docs)
    new = CountingEncoder()
    record = runner.start(path, NEW, sample=30, encoder=new)
    native = record["native_at_start"]
    at_start = dict(new.seen)
    assert 0 < native < 60 and record["pairs"] == 30 and len(at_start) >= 30
    with Collection.open(path, encoder=new) as col:
        assert col.info()["migration"]["reembedded"] == native
        stored = [d for d in docs if col.target.get(d.id) is not None]
        assert len(stored) == native
        # A stored sample document is scored natively: its hit carries the target's score on the score line,
        # the one fitted at start ("line") or the query's own from the reference pairs ("per-query": the mean
        # and spread of the record's line_depth top reference scores matched between the two spaces).
        q = stored[0].text[:80]
        own = next(h for h in col.target.search(q, k=60) if h.id == stored[0].id)
        assert col.merge == "per-query"
        with np.load(path / "migration" / "reference.npz") as z:
            d = record["line_depth"]
            assert 0 < d < len(z["x_new"]) == 30  # a sample of 30: every pair kept
            sn = np.sort(new.encode_queries([q])[0] @ z["x_new"].T)[-d:]
            so = np.sort(col.adapter.apply(new.encode_queries([q]))[0] @ z["y_old"].T)[-d:]
        slope = so.std() / sn.std()
        for merge, (a, b) in (("per-query", (slope, so.mean() - slope * sn.mean())), ("line", record["score_map"])):
            col.merge = merge
            hit = next(h for h in col.search(q, k=60) if h.id == stored[0].id)
            assert hit.score == pytest.approx(a * own.score + b, abs=1e-4)
    new.seen = at_start  # the searches above encoded queries through encode_documents (the plumbing encoder)
    out = runner.reembed(path, batch=7, encoder=new)
    assert out["reembedded"] == 60 - native and out["switched"]
    assert max(new.seen.values()) == 1  # every chunk text encoded once, by the start or by the re-embedding
    owners = fresh_build_owners(docs, tmp_path / "fresh")
    assert len(new.seen) == len(owners)
    with Collection.open(path, encoder=new) as col, Collection.open(tmp_path / "fresh", encoder=new) as fresh:
        assert col.check() == [] and len(col) == 60
        for q in ("cells", "protein expression"):
            assert [(h.id, h.score) for h in col.search(q, k=10)] == [(h.id, h.score) for h in fresh.search(q, k=10)]


@pytest.mark.parametrize("crash_after", [1, 4])
def test_a_crash_during_the_switch_rolls_forward_on_the_next_open(tmp_path, scifact_docs, monkeypatch, crash_after):
    docs = scifact_docs[:60]
    path = tmp_path / "col"
    _plumbing_collection(path, docs)
    new = FakeEncoder(dim=64, name=NEW)
    runner.start(path, NEW, sample=200, encoder=new)
    runner.reembed(path, batch=16, encoder=new, switch_when_done=False)
    with crash_after_moves(monkeypatch, crash_after), pytest.raises(KeyboardInterrupt):
        runner.switch(path)
    assert has_migration(path) and progress(path)["status"] == "switching"
    with Collection.open(path, encoder=new) as col:  # rolls forward
        assert type(col) is Collection and col.manifest["model"] == NEW
        assert col.check() == [] and len(col) == 60
        assert len(col.search("cells", k=5)) == 5
    assert not has_migration(path)



def test_the_switch_waits_for_every_other_handle_to_close(tmp_path, scifact_docs):
    # A handle still open on the old files (a server) would read the new generation's files by path, and its
    # SQLite connection would delete the new -wal file when it closes: the switch refuses until it is gone.
    docs = scifact_docs[:40]
    path = tmp_path / "col"
    _plumbing_collection(path, docs)
    new = FakeEncoder(dim=64, name=NEW)
    runner.start(path, NEW, sample=200, encoder=new)
    server = Collection.open(path, encoder=new)  # opened mid-migration, kept open like a server's
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(CollectionError, match=rf"still open elsewhere.*slimvec migrate {path} --to {NEW}"):
        runner.reembed(path, batch=16, encoder=new)
    assert progress(path)["status"] != "switching" and sorted(p.name for p in path.iterdir()) == before
    assert len(server.search("cells", k=5)) == 5  # the open handle keeps answering from the old generation
    server.close()
    assert runner.migrate(path, NEW, encoder=new)["switched"] is True  # the rerun only switches
    with Collection.open(path, encoder=new) as col:
        assert col.manifest["model"] == NEW and col.check() == [] and len(col) == 40


def test_mixing_models_names_migrate_and_a_second_migration_is_refused(tmp_path, scifact_docs):
    path = tmp_path / "col"
    _plumbing_collection(path, scifact_docs[:40])
    with pytest.raises(CollectionError, match=f"slimvec migrate {path} --to {NEW}"):
        Collection.open(path, encoder=FakeEncoder(dim=64, name=NEW))
    new = FakeEncoder(dim=64, name=NEW)
    runner.start(path, NEW, sample=100, encoder=new)
    with pytest.raises(CollectionError, match="already under way"):
        runner.start(path, NEW, sample=100, encoder=new)
    with Collection.open(path) as col:
        assert col.check() == []
        with pytest.raises(CollectionError, match="writes are refused"):
            col.delete(["x"])


def test_old_model_queries_rank_the_old_part_as_the_old_model_does(tmp_path, scifact_docs, by_name):
    import shutil

    from slimvec.errors import ConfigError

    docs = scifact_docs[:60]
    path = tmp_path / "col"
    _plumbing_collection(path, docs)
    shutil.copytree(path, tmp_path / "before")  # the old collection as it was, for its own ranking
    new = FakeEncoder(dim=64, name=NEW)
    with pytest.raises(ConfigError, match="queries must be one of adapter, old-model"):
        runner.start(path, NEW, sample=30, encoder=new, queries="both")
    assert not has_migration(path) and not (path / "migration").exists()
    record = runner.start(path, NEW, sample=30, encoder=new, queries="old-model")
    assert record["queries"] == "old-model"
    with Collection.open(path, encoder=new) as col, Collection.open(tmp_path / "before") as before:
        assert col.queries == "old-model"
        for q in ("cells", "protein expression", "cancer risk"):
            own = {h.id: h.score for h in before.search(q, k=60)}
            hits = col.search(q, k=60)
            assert len(hits) == 60 and {h.id for h in hits} == {d.id for d in docs}
            old_part = [h for h in hits if col.target.get(h.id) is None]
            assert old_part and all(h.score == pytest.approx(own[h.id], abs=1e-6) for h in old_part)
            # the old part keeps the old model's order among itself
            assert [h.id for h in old_part] == [i for i in sorted(own, key=lambda i: -own[i])
                                                if i in {h.id for h in old_part}]
