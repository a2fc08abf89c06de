"""Document ids in RAM as one UTF-8 buffer (`store.rowmap.DocIds`): the same ids back, counted in `info`'s RAM,
and upserts and deletes across handles still map every live row to its document."""

from __future__ import annotations

from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.store.rowmap import DocIds

IDS = ["d0", "", "é", "文档-7", "emoji 🙂", "a/b?c#d", "x" * 500]


def test_doc_ids_give_back_every_id_and_count_their_bytes():
    ids = DocIds()
    for i in IDS:
        ids.append(i)
    assert [ids[n] for n in range(len(ids))] == IDS and len(ids) == len(IDS)
    assert ids.nbytes == sum(len(i.encode()) for i in IDS) + 8 * len(IDS)


def test_ids_only_hits_after_upserts_and_deletes_in_another_handle(tmp_path):
    path = tmp_path / "c"
    names = ["résumé", "文档", "plain", "🙂 id", "last"]
    with Collection.create(path, encoder=FakeEncoder(16)) as col:
        col.add([Document(n, f"text about {n}") for n in names])
        reader = Collection.open(path, encoder=FakeEncoder(16))
        try:
            assert {h.id for h in reader.search("text", k=10, with_payload=False)} == set(names)
            col.upsert([Document("文档", "replaced text about 文档"), Document("new", "a new one")])
            col.delete(["plain"])
            got = reader.search("text about 文档", k=10, with_payload=False)  # the reader catches up
            assert sorted(h.id for h in got) == sorted(["résumé", "文档", "🙂 id", "last", "new"])
            assert [h.id for h in got] == [h.id for h in col.search("text about 文档", k=10)]
            info = reader.info()
            ids_bytes = reader._rows.doc_ids.nbytes
            assert ids_bytes >= sum(len(n.encode()) for n in names) and info["ram_bytes"] >= ids_bytes
        finally:
            reader.close()
