"""Deleted and replaced rows leave BM25's statistics at the next sync but stay in its cache and postings until they
are COMPACT_AT of it, so an upsert commit appends instead of rewriting the index; scores always equal a fresh
bm25s index over the live documents (retrievers/bm25.py `_take_deletes`)."""

import json

import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.index import rowfiles
from slimvec.retrievers.bm25 import COMPACT_AT

QUERIES = ["cancer cells", "protein expression in mice", "vitamin d deficiency", "the role of inflammation"]


def _top(col):
    return {q: [(h.id, h.score) for h in col.search(q, k=10)] for q in QUERIES}


def _fresh(tmp_path, docs):
    with Collection.create(tmp_path / "fresh", profile="bm25", encoder=FakeEncoder(dim=8)) as fresh:
        fresh.add(list(docs))
        out = _top(fresh)
    import shutil

    shutil.rmtree(tmp_path / "fresh")
    return out


def test_upserts_and_deletes_append_until_dead_rows_reach_the_threshold(tmp_path, scifact_docs):
    docs = {d.id: d for d in scifact_docs[:60]}
    path = tmp_path / "c"
    col = Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8))
    col.add(list(docs.values()))
    folder = path / "index" / "bm25"
    fit = rowfiles.read_meta(folder)["fit"]
    segments = set(json.loads((folder / "postings.json").read_text())["segments"])
    replaced = 0
    for i, d in enumerate(scifact_docs[:60:3]):
        if i % 4 == 3:
            col.delete([d.id])  # a delete alone leaves the statistics too
            del docs[d.id]
        else:
            docs[d.id] = Document(d.id, d.text + " revised", d.title)
            col.upsert([docs[d.id]])
        replaced += 1
        bm25 = col.info()["indexes"]["bm25"]
        assert _top(col) == _fresh(tmp_path, docs.values()), i
        assert bm25["indexed_rows"] == len(col)  # one chunk per document here
        if replaced < COMPACT_AT * 60:
            # no rewrite: the same fit, every earlier segment file still named
            assert rowfiles.read_meta(folder)["fit"] == fit and bm25["dead_rows"] == replaced
            assert segments <= set(json.loads((folder / "postings.json").read_text())["segments"])
    assert bm25["dead_rows"] < replaced and rowfiles.read_meta(folder)["fit"] != fit  # dropped in one pass
    want = _top(col)
    col.close()
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:  # dead rows found again from the store
        assert _top(again) == want
        assert again.info()["indexes"]["bm25"]["dead_rows"] == bm25["dead_rows"]


@pytest.mark.parametrize("compact", [False, True])
def test_a_reopened_or_compacted_collection_scores_as_the_open_one(tmp_path, scifact_docs, compact):
    path = tmp_path / "c"
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add(scifact_docs[:40])
        col.delete([d.id for d in scifact_docs[:5]])
        want = _top(col)
        assert want == _fresh(tmp_path, scifact_docs[5:40])
        if compact:
            col.compact()
            assert _top(col) == want and col.info()["indexes"]["bm25"]["dead_rows"] == 0
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as again:
        assert _top(again) == want


def test_a_commit_copies_its_own_rows_not_the_token_cache(tmp_path, scifact_docs):
    """The token cache grows in place: 100 one-document commits reallocate it a handful of times (a quarter of
    spare room each time), not once per commit, and `ram_bytes` counts the room."""
    with Collection.create(tmp_path / "c", profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add(scifact_docs[:50])
        r = col._retrievers["bm25"]
        buffers = set()
        for d in scifact_docs[50:150]:
            col.add([d])
            buffers.add(id(r._tokens.base))
        assert len(buffers) <= 8  # 50 -> 150 documents' tokens: 3x, about log(3) / log(1.25) = 5 reallocations
        assert r.ram_bytes() >= r._tokens.base.nbytes > r._tokens.nbytes
        assert _top(col) == _fresh(tmp_path, scifact_docs[:150])


def test_the_live_rows_are_read_once_per_commit(tmp_path, scifact_docs):
    with Collection.create(tmp_path / "c", profile="bm25", encoder=FakeEncoder(dim=8)) as col, \
            Collection.open(tmp_path / "c", encoder=FakeEncoder(dim=8)) as other:
        col.add(scifact_docs[:20])
        first = col.store.alive_rows()
        assert col.store.alive_rows() is first and not first.flags.writeable
        other.delete([scifact_docs[3].id])  # another handle's commit: a new read, without the deleted row
        again = col.store.alive_rows()
        assert again is not first and len(again) == len(first) - 1


def test_the_store_logs_each_deleted_row_under_its_dead_count(tmp_path, scifact_docs):
    with Collection.create(tmp_path / "c", profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add(scifact_docs[:10])
        store = col.store
        rows = {d: [r for (r,) in store.db.execute("SELECT row FROM chunks WHERE doc_id = ?", (d,))]
                for d in (scifact_docs[2].id, scifact_docs[5].id)}
        col.delete([scifact_docs[2].id])
        col.upsert([Document(scifact_docs[5].id, "replaced text", "t")])
        assert store.dead_rows == len(rows[scifact_docs[2].id]) + len(rows[scifact_docs[5].id])
        assert store.rows_deleted(0, store.dead_rows).tolist() == rows[scifact_docs[2].id] + rows[scifact_docs[5].id]
        first = len(rows[scifact_docs[2].id])
        assert store.rows_deleted(first, store.dead_rows).tolist() == rows[scifact_docs[5].id]
        # a dead count the log does not account for (deletes made before it, or by an older slimvec): None
        store.db.execute("UPDATE state SET value = value + 1 WHERE key = 'dead'")
        assert store.rows_deleted(0, store.dead_rows) is None
        assert store.rows_deleted(first, first) is not None


def test_a_served_handle_takes_another_handles_deletes_from_the_log_not_a_scan(tmp_path, scifact_docs, monkeypatch):
    from slimvec.store import Store

    path = tmp_path / "c"
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as writer:
        writer.add(scifact_docs[:40])
        with Collection.open(path, encoder=FakeEncoder(dim=8)) as server:
            server.search("cancer cells", k=5)  # caught up: its first look read the live rows
            scans = []
            original = Store.alive_rows

            def counting(self):
                scans.append(1)
                return original(self)

            monkeypatch.setattr(Store, "alive_rows", counting)
            for d in scifact_docs[:6]:
                writer.upsert([Document(d.id, d.text + " revised", d.title)])
            writer.delete([scifact_docs[7].id])
            served = _top(server)
            assert scans == []  # BM25 and the row map read the log
            assert len(server) == 39 and server.info()["indexes"]["bm25"]["dead_rows"] == server.store.dead_rows == 7
    monkeypatch.undo()
    live = [Document(d.id, d.text + " revised", d.title) for d in scifact_docs[:6]] + scifact_docs[6:7] + scifact_docs[8:40]
    assert served == _fresh(tmp_path, live)


def test_a_collection_made_before_the_log_gets_one_and_reads_every_row_where_it_has_gaps(tmp_path, scifact_docs):
    path = tmp_path / "c"
    with Collection.create(path, profile="bm25", encoder=FakeEncoder(dim=8)) as col:
        col.add(scifact_docs[:20])
        col.delete([scifact_docs[0].id])
        col.store.db.execute("DROP TABLE dead_log")  # as a collection written before the log
    with Collection.open(path, encoder=FakeEncoder(dim=8)) as server, \
            Collection.open(path, encoder=FakeEncoder(dim=8)) as writer:
        server.search("cancer cells", k=5)
        writer.delete([scifact_docs[1].id])  # logged: the table is back
        dead = server.store.dead_rows
        assert server.store.rows_deleted(0, dead) is None and server.store.rows_deleted(dead - 1, dead) is not None
        assert _top(server) == _fresh(tmp_path, scifact_docs[2:20])
