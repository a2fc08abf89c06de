"""Sharded collections on Ray: one actor per shard gives the in-process answers; a killed actor is restarted
and the search retried, an actor that stays dead fails the call naming its shard."""

import shutil
import threading

import psutil
import pytest
import ray  # extra "ray", part of the test extra

from slimvec.distributed import create_sharded, open_sharded
from slimvec.errors import CollectionError

N_SHARDS = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory, scifact_docs, scifact_judged):
    """A 3-shard exact collection of 40 SciFact docs, written in-process, and its in-process answers. WordLlama, a
    real static model: the actors' plumbing is under test here, and it loads in a second in each actor."""
    path = tmp_path_factory.mktemp("ray") / "sharded"
    queries = [q for q, _ in scifact_judged.values()][:10]
    with create_sharded(path, shards=N_SHARDS, profile="exact-f32", model="wordllama",
                        retrievers=["dense", "bm25"]) as local:
        local.add(scifact_docs[:40])
        expected = [[(h.id, h.score) for h in hits] for hits in local.search_many(queries, k=10)]
        vectors = local.encoder.encode_queries(queries)
    return path, queries, vectors, expected


def _other_modes(col, queries):
    """BM25 (corpus-wide statistics), hybrid and router-side reranking answers."""
    return [_pairs(col.search_many(queries, k=10, mode="bm25")), _pairs(col.search_many(queries, k=10, mode="hybrid")),
            _pairs(col.search_many(queries, k=5, mode="bm25", rerank="dense", rerank_depth=10))]


def _pairs(all_hits):
    return [[(h.id, h.score) for h in hits] for hits in all_hits]


def test_actors_give_the_in_process_answers_and_take_writes(ray_cluster, built, scifact_docs, tmp_path):
    path, queries, vectors, expected = built
    path = shutil.copytree(path, tmp_path / "copy")  # this test writes
    with open_sharded(path) as local:
        others = _other_modes(local, queries)
    assert all(others) and others[0] != others[1]
    with open_sharded(path, ray=True) as remote:
        assert len(remote) == 40
        assert _pairs(remote.search_many(queries, k=10)) == expected  # driver encodes the queries
        assert _other_modes(remote, queries) == others
        assert _pairs(remote.search_many(queries, k=10, vectors=vectors)) == expected
        info = remote.info()
        assert info["documents"] == 40 and len(info["shards"]) == N_SHARDS
        assert remote.check() == []
        # reads go over each actor's local socket (one message per shard and search), writes through Ray
        channels = [s._local.channel for s in remote.shards]
        sent = [c.sent for c in channels]
        assert _pairs(remote.search_many(queries, k=10, vectors=vectors)) == expected
        assert [c.sent for c in channels] == [n + 1 for n in sent]
        # writes go through the owning shard's actor and are seen by a later in-process open
        assert remote.delete([scifact_docs[0].id]) == 1
        assert [c.sent for c in channels] == [n + 1 for n in sent]
        # another thread reads on sockets of its own
        other: list = []
        worker = threading.Thread(target=lambda: other.append(
            (_pairs(remote.search_many(queries, k=10, vectors=vectors)), [s._local.channel for s in remote.shards])))
        worker.start()
        worker.join()
        answer, theirs = other[0]
        assert answer == _pairs(remote.search_many(queries, k=10, vectors=vectors))
        assert all(a is not b for a, b in zip(theirs, channels)) and all(c.sent == 1 for c in theirs)
        assert scifact_docs[0].id not in {i for hits in answer for i, _ in hits}
        # the socket refuses a client without the actor's key, and still serves
        from multiprocessing import AuthenticationError
        from multiprocessing.connection import Client

        address, _ = remote.shards[0]._endpoint
        with pytest.raises(AuthenticationError):
            Client(address, "AF_UNIX", authkey=bytes(32))
        assert _pairs(remote.search_many(queries, k=10, vectors=vectors)) == answer
        # listing and deleting by filter go through the actors too (a delete by filter is a write: through Ray)
        kept = sorted(d.id for d in scifact_docs[1:40])
        assert [d.id for d in remote.scroll(limit=100)[0]] == kept and remote.count({"_id": kept[0]}) == 1
        assert remote.scroll(limit=7) == (remote.scroll(limit=100)[0][:7], kept[7])
        assert remote.delete(filter={"_id": {"$in": kept[:2]}}) == 2 and remote.count() == 37
    with open_sharded(path) as local:
        assert local.get(scifact_docs[0].id) is None and len(local) == 37
        assert [d.id for d in local.scroll(limit=100)[0]] == kept[2:]


def test_actor_killed_mid_search_or_between_searches_is_restarted_and_the_read_sent_again(ray_cluster, built):
    """Killed mid-search: the reads in flight on its socket are sent again through Ray. Killed between searches:
    the next read finds the dead socket and does the same; BM25 statistics, which the new process lost, are handed
    over again; later reads use the restarted actor's new socket."""
    path, queries, vectors, expected = built
    with open_sharded(path) as local:
        bm25 = _pairs(local.search_many(queries, k=10, mode="bm25"))
    with open_sharded(path, ray=True) as remote:
        victim = remote.shards[1].actor
        out: list = []
        # many searches in flight so the kill lands while shard 1 has calls queued or running
        worker = threading.Thread(target=lambda: out.extend(
            remote.search_many(queries, k=10, vectors=vectors) for _ in range(5)))
        worker.start()
        ray.kill(victim, no_restart=False)
        worker.join()
        assert len(out) == 5 and all(_pairs(o) == expected for o in out)
        assert _pairs(remote.search_many(queries, k=10, vectors=vectors)) == expected  # the restarted actor serves
        assert _pairs(remote.search_many(queries, k=10, mode="bm25")) == bm25
        shard = remote.shards[0]
        before = shard._endpoint
        pid = int(before[0].split(b"-")[2])  # the socket's address names the actor's process
        proc = psutil.Process(pid)
        proc.kill()  # a crash, not a Ray kill: Ray restarts the actor
        proc.wait(timeout=60)
        assert _pairs(remote.search_many(queries, k=10, vectors=vectors)) == expected
        assert _pairs(remote.search_many(queries, k=10, mode="bm25")) == bm25
        assert shard._endpoint not in (before, False, None) and shard._local.channel is not None


def test_actor_that_stays_dead_fails_the_search_naming_the_shard(ray_cluster, built):
    path, queries, vectors, _ = built
    remote = open_sharded(path, ray=True)
    ray.kill(remote.shards[2].actor, no_restart=True)
    with pytest.raises(CollectionError, match=r"shard 2 \(.*shards/002\): its actor died"):
        remote.search_many(queries, k=10, vectors=vectors)
    for s in remote.shards[:2]:
        ray.kill(s.actor, no_restart=True)



def test_compact_through_the_actors_after_searches_that_read_payloads_here(ray_cluster, built, scifact_docs, tmp_path):
    """The router reads final payloads from the shards' files and loads the query model from shard 0: neither
    handle may stop the shards' compaction, and the searches after it read the new files."""
    path, queries, vectors, _ = built
    path = shutil.copytree(path, tmp_path / "copy")
    gone = [d.id for d in scifact_docs[:40:3]]
    with open_sharded(path, ray=True) as remote:
        assert remote.search_many(queries, k=10)  # the query model loaded here, payloads read here
        assert remote._readers
        remote.delete(gone)
        report = remote.compact()
        assert report["compacted"] and report["dead_rows"] > 0 and len(report["shards"]) == N_SHARDS
        after = remote.search_many(queries, k=10, vectors=vectors)
    with open_sharded(path) as local:
        assert after == local.search_many(queries, k=10, vectors=vectors) and len(local) == 40 - len(gone)
        assert not {h.id for hits in after for h in hits} & set(gone)
