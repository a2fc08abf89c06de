"""Sharded collections in-process: exact search equals one collection on real SciFact (ids, scores, ties),
writes reach the owning shard, info/check aggregate, unsharded modes are refused."""

import pytest

from slimvec import Collection, Document
from slimvec.distributed import ShardedCollection, create_sharded, shard_of
from slimvec.encoders.memo import MemoEncoder
from slimvec.errors import ConfigError, IngestError

N_SHARDS = 3
N_DOCS = 150




def _with_ties(docs: list[Document]) -> list[Document]:
    """SciFact docs plus an exact copy of doc 0 whose shard is *lower* than the original's, added after it:
    the tie must go to the original (committed first), not to the lower shard."""
    orig = docs[0]
    home = shard_of(orig.id, N_SHARDS)
    copy_id = next(f"copy-{i}" for i in range(100) if shard_of(f"copy-{i}", N_SHARDS) < home) if home else None
    if copy_id is None:  # the original sits in shard 0: put the copy first and the original later instead
        copy_id = next(f"copy-{i}" for i in range(100) if shard_of(f"copy-{i}", N_SHARDS) > home)
        return [Document(copy_id, orig.text, orig.title, orig.metadata)] + docs
    return docs + [Document(copy_id, orig.text, orig.title, orig.metadata)]


def _twins(root, profile: str):
    """(one collection, sharded collection) with the same profile and one memoised encoder, so both store the
    same vector for a text whatever batch it comes in."""
    one = Collection.create(root / "one", profile=profile)
    one._encoder = enc = MemoEncoder(one.encoder)
    return one, create_sharded(root / "sh", shards=N_SHARDS, profile=profile, encoder=enc)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, scifact_docs):
    """(one collection, sharded collection) built by the same calls from the same SciFact documents."""
    docs = _with_ties(scifact_docs[:N_DOCS])
    root = tmp_path_factory.mktemp("sharded")
    one, sharded = _twins(root, "exact-f32")
    for part in (docs[:60], docs[60:]):  # two calls: rows and ordinals advance across calls
        one.add(part)
        sharded.add(part)
    yield one, sharded, docs
    one.close()
    sharded.close()


def _pairs(hits):
    return [(h.id, h.score) for h in hits]


def test_exact_sharded_search_equals_one_collection(pair, scifact_judged):
    one, sharded, _ = pair
    queries = [q for q, _ in scifact_judged.values()]
    for k in (1, 10, 40):
        a, b = one.search_many(queries, k=k), sharded.search_many(queries, k=k)
        assert [_pairs(h) for h in b] == [_pairs(h) for h in a]
    assert {shard_of(h.id, N_SHARDS) for hits in b for h in hits} == set(range(N_SHARDS))  # every shard answered
    # payload comes through too
    assert [(h.title, h.snippet, h.metadata) for h in sharded.search(queries[0])] == \
           [(h.title, h.snippet, h.metadata) for h in one.search(queries[0])]


def test_exact_ties_across_shards_go_to_the_document_committed_first(pair):
    one, sharded, docs = pair
    orig = docs[1] if docs[0].id.startswith("copy-") else docs[0]
    copy = next(d for d in docs if d.id.startswith("copy-"))
    assert shard_of(orig.id, N_SHARDS) != shard_of(copy.id, N_SHARDS)
    query = f"{orig.title} {orig.text[:200]}"
    a, b = one.search(query, k=5), sharded.search(query, k=5)
    assert {a[0].id, a[1].id} == {orig.id, copy.id} and a[0].score == a[1].score  # a real exact tie
    assert _pairs(b) == _pairs(a)
    first = docs.index(orig) < docs.index(copy)
    assert b[0].id == (orig.id if first else copy.id)


def test_filtered_search_equals_one_collection(pair, scifact_judged):
    one, sharded, _ = pair
    q = next(iter(scifact_judged.values()))[0]
    f = {"group": "b"}
    assert _pairs(sharded.search(q, k=15, filter=f)) == _pairs(one.search(q, k=15, filter=f))


def test_collection_open_on_the_router_directory_gives_the_sharded_api(pair, scifact_judged):
    one, sharded, _ = pair
    q = next(iter(scifact_judged.values()))[0]
    with Collection.open(sharded.path) as again:
        assert isinstance(again, ShardedCollection)
        assert len(again) == len(one)
        assert _pairs(again.search(q)) == _pairs(one.search(q))


def test_info_sums_the_shards_and_check_is_clean(pair):
    one, sharded, docs = pair
    info = sharded.info()
    assert info["documents"] == len(docs) == sum(s["documents"] for s in info["shards"])
    assert info["chunks"] == one.info()["chunks"]
    assert len(info["shards"]) == N_SHARDS and all(s["documents"] > 0 for s in info["shards"])
    assert info["disk_bytes"] > sum(s["disk_bytes"] for s in info["shards"])  # plus the router's own files
    assert info["ram_bytes"] == sum(s["ram_bytes"] for s in info["shards"])
    assert sharded.check() == []


def test_writes_reach_the_owning_shard_only(tmp_path, scifact_docs, scifact_judged):
    docs = scifact_docs[:30]
    one, sharded = _twins(tmp_path, "exact-f32")
    one.add(docs)
    sharded.add(docs)
    cores = [s.core.col for s in sharded.shards]
    for d in docs:
        holders = [i for i, c in enumerate(cores) if c.get(d.id) is not None]
        assert holders == [shard_of(d.id, N_SHARDS)]
    # upsert: a changed text replaces the stored one in its shard; delete removes from its shard
    changed = Document(docs[3].id, "Completely different text about penguins and ice.", "Penguins")
    for c in (one, sharded):
        c.upsert([changed])
        assert c.delete([docs[5].id, "no-such-id"]) == 1
    home = cores[shard_of(changed.id, N_SHARDS)]
    assert home.get(changed.id).text == changed.text and sharded.get(docs[5].id) is None
    assert len(sharded) == len(one) == 29
    queries = [q for q, _ in scifact_judged.values()] + ["penguins on ice"]
    assert [_pairs(h) for h in sharded.search_many(queries, k=10)] == \
           [_pairs(h) for h in one.search_many(queries, k=10)]
    assert sharded.search("penguins on ice", k=1)[0].id == changed.id
    # an add that clashes with a stored id in any shard writes nothing anywhere
    before = [len(c) for c in cores]
    fresh = Document("brand-new", "text", "t")
    with pytest.raises(IngestError, match=rf"id '{docs[7].id}' \(position 1\) is already stored"):
        sharded.add([fresh, docs[7]])
    assert [len(c) for c in cores] == before and sharded.get("brand-new") is None
    with pytest.raises(IngestError, match="appears twice"):
        sharded.add([fresh, fresh])
    one.close()
    sharded.close()


def test_modes_that_are_not_sharded_yet_are_refused(tmp_path, scifact_docs):
    sharded = create_sharded(tmp_path / "sh", shards=2, profile="exact-f32", retrievers=["dense", "bm25"])
    sharded.add(scifact_docs[:6])
    with pytest.raises(ConfigError, match="bm25, whose scores need collection-wide statistics"):
        sharded.search("protein folding", mode="bm25")
    with pytest.raises(ConfigError, match="mode 'hybrid' runs bm25"):
        sharded.search("protein folding", mode="hybrid")
    with pytest.raises(ConfigError, match="reranking"):
        sharded.search("protein folding", rerank="dense")
    assert len(sharded.search("protein folding", k=3)) == 3  # dense still works
    sharded.close()


def test_fused_mode_fuses_the_global_rankings_once(tmp_path, scifact_docs, scifact_judged):
    """hybrid-sparse with rrf: each part's per-shard lists merged, then one fusion: the one-collection answers,
    including the snippet (the dense part's best chunk)."""
    docs = scifact_docs[:40]
    one, sharded = _twins(tmp_path, "hybrid-sparse")
    one.add(docs)
    sharded.add(docs)
    queries = [q for q, _ in scifact_judged.values()][:10]
    a, b = one.search_many(queries, k=10, fusion="rrf"), sharded.search_many(queries, k=10, fusion="rrf")
    assert [[(h.id, h.score, h.snippet) for h in x] for x in b] == [[(h.id, h.score, h.snippet) for h in x] for x in a]
    with pytest.raises(ConfigError, match="fusion 'softmax' of mode 'hybrid-sparse' is not supported"):
        sharded.search(queries[0])
    one.close()
    sharded.close()
