"""Faults found by the session-19 breaker in that session's BM25 rewrite (posting lists, dead rows kept in the
cache), each pinned by a test."""

from fakes import FakeEncoder

from slimvec import Collection, Document


def _bm25(col, q):
    return [(h.id, h.score) for h in col.search(q, k=20)]


def test_a_handle_that_skipped_rows_deleted_before_it_saw_them_does_not_append_to_another_handles_files(tmp_path):
    """Dead rows stay in a cache under the same fit, so two handles of one folder could hold different rows under
    one fit: the writer cached a document and then its replacement (the old row dead), a lagging handle caught up
    after the upsert and skipped the old row. Its next commit appended to the writer's files from the row count
    they held (equal to its own), so nothing of its commit was written, and a reopened collection never found the
    committed document."""
    path = tmp_path / "c"
    a = Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8))
    a.add([Document(f"d{i}", f"common words about topic{i} and cells", "") for i in range(10)])
    b = Collection.open(path, encoder=FakeEncoder(dim=8))
    assert _bm25(b, "cells")
    a.add([Document("x", "xenon xylophone cells", "")])
    a.upsert([Document("x", "xenon revised cells", "")])  # row 10 dead, kept in a's cache
    b.add([Document("y", "yak yellow cells", "")])  # b skips row 10: never saw it alive
    want = {q: _bm25(b, q) for q in ["yak", "xenon", "revised", "cells topic3"]}
    assert want["yak"] and want["xenon"] and want["revised"]
    a.close()
    b.close()
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:
        assert {q: _bm25(again, q) for q in want} == want
        assert again.check() == []
        assert again.info()["indexes"]["bm25"]["indexed_rows"] == 12


def test_postings_files_that_do_not_add_up_to_the_token_cache_are_built_again(tmp_path, scifact_docs):
    """A postings.json naming only some of the segments (one left out), or a segment whose counts are not the cache's,
    passed the load's checks (each segment well formed, rows in range and ascending) and scored silently wrong:
    rows lost a term, or a term's count. Each position's counts must add up to its row's length."""
    import json
    import shutil

    import numpy as np

    path = tmp_path / "c"
    queries = ["cancer cells", "protein expression in mice", "vitamin d deficiency"]
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add(scifact_docs[:80])
        col.add(scifact_docs[80:90])  # a second, smaller segment
        want = {q: _bm25(col, q) for q in queries}
    folder = path / "index" / "bm25"
    saved = json.loads((folder / "postings.json").read_text())
    assert len(saved["segments"]) == 2
    shutil.copytree(folder, tmp_path / "orig")

    def one_left_out():
        (folder / "postings.json").write_text(json.dumps({**saved, "segments": saved["segments"][:1]}))

    def counts_doubled():
        name = folder / f"postings-{saved['segments'][0]}.npz"
        with np.load(name) as z:
            arrays = dict(z)
        np.savez(name, **{**arrays, "tf": arrays["tf"] * 2})

    def vocabulary_of_a_trillion():  # allocated before any check: MemoryError out of Collection.open
        name = folder / f"postings-{saved['segments'][0]}.npz"
        with np.load(name) as z:
            arrays = dict(z)
        np.savez(name, **{**arrays, "n_terms": np.int64(10**12)})

    for damage in (one_left_out, counts_doubled, vocabulary_of_a_trillion):
        shutil.rmtree(folder)
        shutil.copytree(tmp_path / "orig", folder)
        damage()
        with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:
            assert {q: _bm25(again, q) for q in queries} == want, damage.__name__


def test_commits_of_rows_without_tokens_do_not_pile_up_segments(tmp_path):
    """A segment was merged into the one before it while that one held under MERGE_RATIO times its entries: never
    for a commit whose rows have no tokens (stopwords only), 0 < 4 * 0 being false, so each such commit left one
    more segment (and file), past the O(log rows) the module promises."""
    import json

    with Collection.create(tmp_path / "c", profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add([Document("first", "cells and proteins", "")])
        for i in range(12):
            col.add([Document(f"empty{i}", "the of and", "")])
        bm25 = col.info()["indexes"]["bm25"]
        assert bm25["indexed_rows"] == 13 and bm25["postings_segments"] <= 2
        saved = json.loads((tmp_path / "c" / "index" / "bm25" / "postings.json").read_text())
        assert len(saved["segments"]) <= 2 and len(list((tmp_path / "c" / "index" / "bm25").glob("postings-*"))) <= 2
        assert [h.id for h in col.search("cells", k=3)] == ["first"]


def test_a_sharded_bm25_collection_compacts_after_deletes_the_router_has_not_summed_yet(tmp_path, scifact_docs):
    """Deletes now leave a shard's statistics at once, so its stats_key moves before the router sums them again;
    `Bm25Retriever.compacted` asked for a scorer, which refuses out-of-date corpus-wide statistics: the automatic
    compaction inside each shard's delete stopped with a warning at every write, and an explicit compact after
    another handle's deletes raised CollectionError."""
    from slimvec.distributed import create_sharded, open_sharded
    from slimvec.profiles import profile_from_dict

    docs = scifact_docs[:60]
    prof = profile_from_dict({"name": "x", "retrievers": ["bm25"], "mode": "bm25", "chunk_mode": "whole",
                              "compact_threshold": 0.2, "compact_min_dead": 1})
    enc = FakeEncoder(dim=8)
    one = Collection.create(tmp_path / "one", profile="bm25", encoder=enc)
    sharded = create_sharded(tmp_path / "sh", shards=2, profile=prof, encoder=enc)
    for c in (one, sharded):
        c.add(docs)
    assert _bm25(sharded, "cancer cells") == _bm25(one, "cancer cells")  # the router sums the statistics
    for c in (one, sharded):
        c.delete([d.id for d in docs[:30]])  # past the threshold in both shards
    assert sharded.info()["dead_rows"] == 0  # compacted automatically
    assert _bm25(sharded, "cancer cells") == _bm25(one, "cancer cells")
    other = open_sharded(tmp_path / "sh", encoder=enc)
    for c in (one, other):
        c.delete([d.id for d in docs[30:35]])  # under the threshold: left for an explicit compaction
    other.close()
    assert sharded.compact()["compacted"]
    assert _bm25(sharded, "cancer cells") == _bm25(one, "cancer cells")
    one.close()
    sharded.close()


def test_a_postings_json_that_is_not_an_object_is_built_again_not_an_error(tmp_path):
    """postings.json is a derived file: a damaged one means building the postings from the token cache. One that
    held valid JSON other than an object (null, a list, a number) raised AttributeError out of Collection.open."""
    path = tmp_path / "c"
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add([Document(f"d{i}", f"common words about topic{i} and cells", "") for i in range(10)])
        want = _bm25(col, "topic3 cells")
    for content in ["null", "[]", "0", '"x"']:
        (path / "index" / "bm25" / "postings.json").write_text(content)
        with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:
            assert _bm25(again, "topic3 cells") == want, content


def test_a_small_commit_writes_postings_of_its_own_size_not_the_vocabularys(tmp_path, scifact_docs, monkeypatch):
    """Each segment file held `ptr`, (vocabulary + 1,) int64, whatever the segment's size: a one-document commit into
    a collection of a 26k-term vocabulary wrote 208 kB of postings for its ~200 tokens (O(vocabulary) per commit, not
    the O(new rows) promised). Files hold the terms present and their counts; files with `ptr` still load."""
    import json

    import numpy as np

    from slimvec.retrievers.bm25_postings import Postings

    path = tmp_path / "c"
    folder = path / "index" / "bm25"
    col = Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8))
    col.add(scifact_docs[:299])
    before = set(folder.glob("postings-*.npz"))
    col.add(scifact_docs[299:300])
    vocabulary = col.info()["indexes"]["bm25"]["vocabulary"]
    written = sum(f.stat().st_size for f in set(folder.glob("postings-*.npz")) - before)
    assert 0 < written < 2 * vocabulary  # the pointers alone were 8 bytes a term
    queries = ["cancer cells", "protein expression in mice"]
    want = {q: _bm25(col, q) for q in queries}
    col.close()
    # the first postings files' layout (ptr) still loads, without a build from the token cache
    for name in json.loads((folder / "postings.json").read_text())["segments"]:
        with np.load(folder / f"postings-{name}.npz") as z:
            arrays = dict(z)
        ptr = np.zeros(int(arrays["n_terms"]) + 1, np.int64)
        ptr[arrays["terms"] + 1] = arrays["counts"]
        np.savez(folder / f"postings-{name}.npz", ptr=np.cumsum(ptr), rows=arrays["rows"], tf=arrays["tf"])
    builds, original = [], Postings.of_cache
    monkeypatch.setattr(Postings, "of_cache", lambda *a, **k: builds.append(1) or original(*a, **k))
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:
        assert {q: _bm25(again, q) for q in queries} == want and builds == []
