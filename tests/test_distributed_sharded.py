"""Sharded collections in-process: exact search equals one collection on real SciFact (ids, scores, ties),
writes reach the owning shard, info/check aggregate, unsharded modes are refused."""

import pytest

from slimvec import Collection, Document
from slimvec.distributed import ShardedCollection, create_sharded, shard_of
from slimvec.encoders.memo import MemoEncoder
from slimvec.encoders.registry import load_encoder
from slimvec.errors import ConfigError, IngestError

N_SHARDS = 3
N_DOCS = 150


@pytest.fixture(scope="module")
def memo():
    """A real static model (WordLlama), memoised once for the whole file: each SciFact text is encoded once,
    whichever fixture or test needs it first. Sharding is model-agnostic (the router merges what the shards
    score), and bge encoding each text alone made this file's set-up take ~50 s."""
    return MemoEncoder(load_encoder("wordllama"))


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


def _twins(root, profile: str, memo: MemoEncoder):
    """(one collection, sharded collection) with the same profile and one memoised encoder, so both store the
    same vector for a text whatever batch it comes in."""
    one = Collection.create(root / "one", profile=profile, encoder=memo)
    return one, create_sharded(root / "sh", shards=N_SHARDS, profile=profile, encoder=memo)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, scifact_docs, memo):
    """(one collection, sharded collection) built by the same calls from the same SciFact documents."""
    docs = _with_ties(scifact_docs[:N_DOCS])
    root = tmp_path_factory.mktemp("sharded")
    one, sharded = _twins(root, "exact-f32", memo)
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


def _recording_payloads(sharded, monkeypatch):
    """Wrap every shard's `payloads` call; returns the list of (shard, rows asked, answer was None)."""
    calls: list[tuple[int, list[int], bool]] = []
    for i, s in enumerate(sharded.shards):
        def wrapped(generation, rows, i=i, real=s.core.payloads):
            got = real(generation, rows)
            calls.append((i, list(rows), got is None))
            return got
        monkeypatch.setattr(s.core, "payloads", wrapped)
    return calls


def test_shards_answer_ids_and_scores_and_only_the_final_k_payloads_are_read(pair, scifact_judged, monkeypatch):
    """Round one: every shard's top k without payload; round two: the payloads of the merged top k only, each
    row from the shard that holds it. The hits are one collection's, every field of them."""
    one, sharded, _ = pair
    queries = [q for q, _ in scifact_judged.values()][:20]
    calls = _recording_payloads(sharded, monkeypatch)
    for k in (1, 5, 10):
        calls.clear()
        got = sharded.search_many(queries, k=k)
        assert got == one.search_many(queries, k=k)  # ids, scores, titles, snippets, metadata, spans
        assert all(h.snippet for hits in got for h in hits)
        asked = {(i, r) for i, rows, _ in calls for r in rows}
        assert len(asked) == sum(len(rows) for _, rows, _ in calls)  # each row read once, in one call per shard
        assert len({i for i, _, _ in calls}) == len(calls)
        assert 0 < len(asked) <= k * len(queries)  # the final k per query, not k per shard
        assert {i for i, _ in asked} == {shard_of(h.id, N_SHARDS) for hits in got for h in hits}
    calls.clear()
    bare = sharded.search_many(queries, k=10, with_payload=False)
    assert bare == one.search_many(queries, k=10, with_payload=False) and calls == []


def test_a_compaction_between_the_two_rounds_gives_the_payload_search_answer(tmp_path, scifact_docs, scifact_judged,
                                                                             memo, monkeypatch):
    """A shard compacted after it answered round one has renumbered its rows: it refuses to read them (another
    generation), and the router searches again with payload, so every hit still carries its own chunk."""
    docs = scifact_docs[:60]
    one, sharded = _twins(tmp_path, "exact-f32", memo)
    one.add(docs)
    sharded.add(docs)
    queries = [q for q, _ in scifact_judged.values()][:5]
    first = sharded.search_many(queries, k=5)
    hit = {h.id for hits in first for h in hits}
    # each shard's first document that is no hit: its rows go, every later row moves down (and most still exist)
    gone = [next(d.id for d in docs if d.id not in hit and shard_of(d.id, N_SHARDS) == i) for i in range(N_SHARDS)]
    calls = _recording_payloads(sharded, monkeypatch)
    for i, s in enumerate(sharded.shards):
        def compact_first(generation, rows, col=s.core.col, mine=tuple(g for g in gone if shard_of(g, N_SHARDS) == i),
                          real=s.core.payloads):
            col.delete(list(mine))
            assert col.compact()["compacted"]
            return real(generation, rows)
        monkeypatch.setattr(s.core, "payloads", compact_first)
    got = sharded.search_many(queries, k=5)
    one.delete(gone)
    assert calls and all(refused for _, _, refused in calls)
    assert got == one.search_many(queries, k=5)
    one.close()
    sharded.close()


def test_info_sums_the_shards_and_check_is_clean(pair):
    one, sharded, docs = pair
    info = sharded.info()
    assert info["documents"] == len(docs) == sum(s["documents"] for s in info["shards"])
    assert info["chunks"] == one.info()["chunks"]
    assert len(info["shards"]) == N_SHARDS and all(s["documents"] > 0 for s in info["shards"])
    assert info["disk_bytes"] > sum(s["disk_bytes"] for s in info["shards"])  # plus the router's own files
    assert info["ram_bytes"] == sum(s["ram_bytes"] for s in info["shards"])
    assert sharded.check() == []


def test_writes_reach_the_owning_shard_only(tmp_path, scifact_docs, scifact_judged, memo):
    docs = scifact_docs[:30]
    one, sharded = _twins(tmp_path, "exact-f32", memo)
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


def test_modes_that_are_not_sharded_yet_are_refused(tmp_path, scifact_docs, memo):
    sharded = create_sharded(tmp_path / "sh", shards=2, profile="exact-f32", retrievers=["dense", "bm25"],
                             encoder=memo)
    sharded.add(scifact_docs[:6])
    with pytest.raises(ConfigError, match="unit='section' with the fused mode 'hybrid' is not supported"):
        sharded.search("protein folding", mode="hybrid", unit="section")
    with pytest.raises(ConfigError, match="reranking with unit='section' is not supported"):
        sharded.search("protein folding", rerank="dense", unit="section")
    assert len(sharded.search("protein folding", k=3)) == 3  # dense still works
    sharded.close()


def test_fused_mode_fuses_the_global_rankings_once(tmp_path, scifact_docs, scifact_judged, memo):
    """hybrid-sparse with rrf: each part's per-shard lists merged, then one fusion: the one-collection answers,
    including the snippet (the dense part's best chunk)."""
    docs = scifact_docs[:24]  # SPLADE encodes them for each of the two collections
    one, sharded = _twins(tmp_path, "hybrid-sparse", memo)
    one.add(docs)
    sharded.add(docs)
    queries = [q for q, _ in scifact_judged.values()][:6]
    a, b = one.search_many(queries, k=10, fusion="rrf"), sharded.search_many(queries, k=10, fusion="rrf")
    assert [[(h.id, h.score, h.snippet) for h in x] for x in b] == [[(h.id, h.score, h.snippet) for h in x] for x in a]
    one.close()
    sharded.close()


# ---- BM25 with corpus-wide statistics -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bm25_pair(tmp_path_factory, scifact_docs, memo):
    """(one collection, sharded collection) of profile "hybrid" (dense float32 + BM25, softmax fusion), built by
    the same calls: two adds, a delete, an add that reaches one shard only, then a delete after the last add."""
    docs = scifact_docs[:N_DOCS]
    one, sharded = _twins(tmp_path_factory.mktemp("bm25"), "hybrid", memo)
    gone = docs[10].id
    # the last add goes to one shard that is not the deleted document's: the others must still stop counting it
    late = next(d for d in scifact_docs[N_DOCS:] if shard_of(d.id, N_SHARDS) != shard_of(gone, N_SHARDS))
    for c in (one, sharded):
        c.add(docs[:70])
        c.add(docs[70:])
        assert c.delete([gone]) == 1
        c.add([late])
        assert c.delete([docs[20].id]) == 1  # after the last add: one collection still counts it until the next
    yield one, sharded
    one.close()
    sharded.close()


def _bm25(col):
    return col.shards[0].core.col._retrievers["bm25"] if isinstance(col, ShardedCollection) else col._retrievers["bm25"]


def test_sharded_bm25_scores_equal_one_collection(bm25_pair, scifact_judged):
    one, sharded = bm25_pair
    queries = [q for q, _ in scifact_judged.values()]
    for k in (1, 10, 50):
        a, b = one.search_many(queries, mode="bm25", k=k), sharded.search_many(queries, mode="bm25", k=k)
        assert [_pairs(h) for h in b] == [_pairs(h) for h in a]
    assert sum(len(h) for h in b) > len(queries) * 10  # real BM25 matches were compared
    # each shard's own statistics give other scores: the equality above needs the corpus-wide ones
    _bm25(sharded).use_global(None, None, None)
    own = dict(_pairs(sharded.shards[0].core.col.search(queries[0], mode="bm25", k=200)))
    ref = dict(_pairs(one.search(queries[0], mode="bm25", k=200)))
    assert own and all(ref[i] != s for i, s in own.items())
    # a shard that lost them (a restarted actor) refuses to score with its own instead
    from slimvec.distributed.shards import StaleBm25Stats

    with pytest.raises(StaleBm25Stats, match="holds BM25 statistics None"):
        sharded.shards[0].core.search_many(queries[:1], {"mode": "bm25", "k": 3}, None, "any-key")
    # the router hands them back before its next search
    assert [_pairs(h) for h in sharded.search_many(queries, mode="bm25", k=10)] == \
           [_pairs(h) for h in one.search_many(queries, mode="bm25", k=10)]


def test_sharded_hybrid_equals_one_collection_with_each_fuser(bm25_pair, scifact_judged):
    one, sharded = bm25_pair
    queries = [q for q, _ in scifact_judged.values()][:20]
    for fusion in (None, "weighted", "rrf"):  # None: the profile's softmax
        opts = {} if fusion is None else {"fusion": fusion}
        a, b = one.search_many(queries, k=10, **opts), sharded.search_many(queries, k=10, **opts)
        assert [[(h.id, h.score, h.snippet) for h in x] for x in b] == \
               [[(h.id, h.score, h.snippet) for h in x] for x in a], fusion


def test_bm25_statistics_follow_writes_in_any_shard(bm25_pair, scifact_docs, scifact_judged):
    """A write to one shard changes N, avgdl and df for every shard: the router sums them again."""
    one, sharded = bm25_pair
    q = next(iter(scifact_judged.values()))[0]
    # a refused add commits nothing: the statistics still count the document deleted after the last add
    for c in (one, sharded):
        with pytest.raises(IngestError, match="already stored"):
            c.add([scifact_docs[0]])
    assert _pairs(sharded.search(q, mode="bm25", k=20)) == _pairs(one.search(q, mode="bm25", k=20))
    extra = [d for d in scifact_docs[N_DOCS + 5:N_DOCS + 40] if d.id not in {x.id for x in scifact_docs[:N_DOCS]}]
    part = [d for d in extra if shard_of(d.id, N_SHARDS) == 0][:3]
    for c in (one, sharded):
        c.add(part)
    assert _pairs(sharded.search(q, mode="bm25", k=20)) == _pairs(one.search(q, mode="bm25", k=20))
    for c in (one, sharded):
        c.delete([d.id for d in part])


# ---- rerankers and calibrated relevance -----------------------------------------------------------------


@pytest.mark.parametrize("spec", ["dense", "bi-encoder:all-MiniLM-L6-v2", "cross-encoder"])
def test_reranking_runs_once_at_the_router_and_equals_one_collection(bm25_pair, scifact_judged, spec):
    """The global first stage reranked at the router with each candidate's chunks asked of its shard: the
    one-collection ids, scores and snippets (the reranker's best chunk), for a plain and a fused first stage."""
    one, sharded = bm25_pair
    # one query for the cross-encoder: it scores each (query, chunk) pair alone, ~0.2 s a pair on 2 cores
    queries = [q for q, _ in scifact_judged.values()][: 1 if spec == "cross-encoder" else 2]
    for mode in ("bm25", "hybrid"):
        opts = {"k": 5, "mode": mode, "rerank": spec, "rerank_depth": 8}
        a, b = one.search_many(queries, **opts), sharded.search_many(queries, **opts)
        assert [[(h.id, h.score, h.snippet, h.chunk_start) for h in x] for x in b] == \
               [[(h.id, h.score, h.snippet, h.chunk_start) for h in x] for x in a], mode
        assert all(len(x) == 5 for x in b)
        first = [h.id for h in sharded.search(queries[0], k=5, mode=mode, rerank="none")]
        assert [h.id for h in b[0]] != first or spec == "dense"  # the reranker did reorder (a real check)
    f = {"group": "a"}
    assert _pairs(sharded.search(queries[0], k=5, mode="bm25", rerank=spec, rerank_depth=8, filter=f)) == \
           _pairs(one.search(queries[0], k=5, mode="bm25", rerank=spec, rerank_depth=8, filter=f))


def test_min_relevance_with_a_calibrator_fitted_on_the_sharded_collection(bm25_pair, scifact_judged):
    from slimvec.evaluation.calibrate import fit_calibrator

    one, sharded = bm25_pair
    queries = {qid: q for qid, (q, _) in scifact_judged.items()}
    qrels = {qid: {d: 1 for d in rel} for qid, (_, rel) in scifact_judged.items()}
    cals = [fit_calibrator(c, queries, qrels, mode="bm25") for c in (one, sharded)]
    assert cals[1].to_dict() == cals[0].to_dict()  # same scores, same fit
    assert set(sharded.calibrators) == {"bm25"}
    for q in list(queries.values())[:10]:
        a = one.search(q, k=10, mode="bm25", min_relevance="auto")
        b = sharded.search(q, k=10, mode="bm25", min_relevance="auto")
        assert [(h.id, h.score, h.relevance) for h in b] == [(h.id, h.score, h.relevance) for h in a]
        assert all(h.relevance is not None for h in b)
    with Collection.open(sharded.path) as again:  # calibration.json sits in the router directory
        assert set(again.calibrators) == {"bm25"}


# ---- serving and the CLI ------------------------------------------------------------------------------


def test_slimvec_serve_answers_from_a_sharded_collection(bm25_pair, scifact_judged):
    """A real uvicorn server on loopback over the directories `slimvec serve DIR` opens: searches in every mode
    equal one collection's, info lists the shards (paths relative), a write lands in its shard."""
    import httpx
    from _server_util import AUTH, KEY

    from slimvec.server import create_app
    from slimvec.server.runner import load_collections, server_thread

    one, sharded = bm25_pair
    cols = load_collections([sharded.path])
    name = sharded.path.name
    assert isinstance(cols[name], ShardedCollection)
    queries = [q for q, _ in scifact_judged.values()][:4]
    try:
        with server_thread(create_app(cols, api_key=KEY)) as base, httpx.Client(base_url=base, timeout=120) as http:
            for q in queries:
                for mode in ("bm25", "hybrid", "dense"):
                    r = http.post(f"/api/collections/{name}/search", json={"q": q, "k": 10, "mode": mode})
                    assert r.status_code == 200, r.text
                    got = [(h["id"], h["score"]) for h in r.json()["hits"]]
                    assert got == _pairs(one.search(q, k=10, mode=mode)) and got, mode
            info = http.get(f"/api/collections/{name}").json()
            assert info["sharded"] and info["documents"] == len(one) and len(info["shards"]) == N_SHARDS
            assert [s["path"] for s in info["shards"]] == [f"shards/{i:03d}" for i in range(N_SHARDS)]
            doc = {"id": "served-1", "title": "Axolotl", "text": "Axolotl limb regeneration after amputation."}
            assert http.post(f"/api/collections/{name}/documents", json=[doc], headers=AUTH).status_code == 200
            assert http.get(f"/api/collections/{name}/documents/served-1").json()["text"] == doc["text"]
            r = http.post(f"/api/collections/{name}/search", json={"q": "axolotl regeneration", "mode": "bm25"})
            assert r.json()["hits"][0]["id"] == "served-1"
    finally:
        cols[name].close()
    one.add([Document(doc["id"], doc["text"], doc["title"])])
    # the fixture's own handle sees the server's write, its BM25 statistics included
    assert _pairs(sharded.search(queries[0], mode="bm25", k=20)) == _pairs(one.search(queries[0], mode="bm25", k=20))
    for c in (one, sharded):
        assert c.delete(["served-1"]) == 1


def test_cli_search_info_check_on_a_sharded_directory(bm25_pair, scifact_judged):
    import json

    from typer.testing import CliRunner

    from slimvec.cli import app

    one, sharded = bm25_pair
    q = next(iter(scifact_judged.values()))[0]
    cli = CliRunner()
    res = cli.invoke(app, ["search", str(sharded.path), q, "--mode", "bm25", "-k", "5", "--json"])
    assert res.exit_code == 0, res.stdout
    assert [(h["id"], h["score"]) for h in json.loads(res.stdout)["hits"]] == _pairs(one.search(q, mode="bm25", k=5))
    res = cli.invoke(app, ["info", str(sharded.path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["documents"] == len(one)
    res = cli.invoke(app, ["check", str(sharded.path), "--json"])
    assert res.exit_code == 0, res.stdout
    report = json.loads(res.stdout)
    assert report["ok"] and report["documents"] == len(one) and report["chunks"] == one.store.counts()["chunks"]
    res = cli.invoke(app, ["info", str(sharded.path)])
    assert res.exit_code == 0 and f"{N_SHARDS} (each shard" in res.stdout


def test_cli_compact_reports_the_whole_calls_seconds_and_each_shards_own(tmp_path, scifact_docs, memo):
    """In-process shards compact one after another: the call's seconds are at least their sum, and each shard
    reports its own time (not the call's)."""
    import json

    from typer.testing import CliRunner

    from slimvec.cli import app

    docs = scifact_docs[:60]
    with create_sharded(tmp_path / "sh", shards=N_SHARDS, profile="exact-f32", encoder=memo) as sharded:
        sharded.add(docs)
        sharded.delete([d.id for d in docs[:45]])
    res = CliRunner().invoke(app, ["compact", str(tmp_path / "sh"), "--json"])
    assert res.exit_code == 0, res.stdout
    report = json.loads(res.stdout)
    own = [s["seconds"] for s in report["shards"]]
    assert len(own) == N_SHARDS and all(s["compacted"] for s in report["shards"]) and all(t > 0 for t in own)
    assert report["seconds"] >= sum(own) > max(own)
    assert report["dead_rows"] == sum(s["dead_rows"] for s in report["shards"]) > 0
    with Collection.open(tmp_path / "sh") as again:
        assert len(again) == 15 and again.check() == []


def test_create_makes_an_interrupted_create_again_but_never_a_directory_holding_documents(tmp_path, scifact_docs,
                                                                                         memo):
    from slimvec.errors import CollectionError

    half = tmp_path / "half"
    Collection.create(half / "shards" / "000", profile="exact-f32", encoder=memo).close()  # killed after shard 0
    (half / "shards" / "001").mkdir()  # and inside shard 1's Collection.create
    with create_sharded(half, shards=N_SHARDS, profile="exact-f32", encoder=memo) as again:
        again.add(scifact_docs[:5])
        assert len(again) == 5 and sorted(p.name for p in (half / "shards").iterdir()) == ["000", "001", "002"]
    (half / "shards.json").unlink()  # a router manifest lost later: the shards hold documents, left alone
    with pytest.raises(CollectionError, match="directory is not empty"):
        create_sharded(half, shards=N_SHARDS, profile="exact-f32", encoder=memo)
    held = 0
    for i in range(N_SHARDS):
        with Collection.open(half / "shards" / f"00{i}") as shard:
            held += len(shard)
    assert held == 5
