"""Faults fixed in session 22, each with the behaviour it now has."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.errors import ConfigError, IngestError
from slimvec.ingest import read_sources
from slimvec.interop import export_collection, import_records

HYBRID = {"name": "h", "retrievers": ["dense", "bm25"], "mode": "hybrid"}
DOCS = [Document(id="a", text="alpha beta"), Document(id="b", text="gamma delta"),
        Document(id="c", text="epsilon zeta gamma")]
cli = CliRunner()


# ---- 1: query vectors given to a search that does not use them ----------------------------------------
# `search_many(["q"], vectors=v, mode="bm25")` dropped the vectors and searched the text, silently (even vectors of
# a wrong shape). They are refused in one line now, as an option the plan would not use is (session 21); vectors
# that are the texts' own encodings (`encoded=True`: the sharded router, a migration, an evaluation run) pass.
def _refused(search, mode="bm25"):
    with pytest.raises(ConfigError) as e:
        search()
    message = str(e.value)
    assert message.startswith("vectors apply to modes that search by a dense vector (dense, hybrid)")
    assert f"this search runs mode {mode!r}" in message and "\n" not in message


def _ids(hits):
    return [[(h.id, h.score) for h in q] for q in hits]


def test_vectors_for_a_mode_that_does_not_search_by_them_are_refused(tmp_path):
    enc = FakeEncoder()
    with Collection.create(tmp_path / "col", profile=HYBRID, encoder=enc) as col:
        col.add(DOCS)
        v = enc.encode_queries(["gamma"])
        _refused(lambda: col.search_many(["gamma"], vectors=v, mode="bm25"))
        _refused(lambda: col.search_many(["gamma"], vectors=np.zeros((3, 5)), mode="bm25"))  # not even checked before
        _refused(lambda: col.search_many(["gamma"], vectors=v, mode="bm25", rerank="none"))
        # Where they are used, they still search; the texts' own encodings pass whatever the mode.
        text = _ids(col.search_many(["gamma"], mode="bm25"))
        assert _ids(col.search_many(["gamma"], vectors=v, mode="bm25", encoded=True)) == text
        for mode in ("dense", "hybrid"):
            assert _ids(col.search_many(["gamma"], vectors=v, mode=mode)) == _ids(col.search_many(["gamma"], mode=mode))
        assert col.search_many(["gamma"], vectors=v, mode="bm25", rerank="dense")[0]  # the dense reranker reads them
        # A collection keeping no dense index says so.
    with Collection.create(tmp_path / "bm25", profile={"name": "b", "retrievers": ["bm25"], "mode": "bm25"},
                           encoder=enc) as col:
        col.add(DOCS)
        with pytest.raises(ConfigError, match=r"dense vector \(this collection keeps no dense index\); this search "
                                              r"runs mode 'bm25'"):
            col.search_many(["gamma"], vectors=v)


def test_a_sharded_collection_refuses_them_too_and_its_shards_still_take_the_router_vectors(tmp_path):
    from slimvec.distributed import create_sharded

    enc = FakeEncoder()
    with Collection.create(tmp_path / "one", profile=HYBRID, encoder=enc) as one:
        one.add(DOCS)
        want = {m: _ids(one.search_many(["gamma", "alpha"], mode=m)) for m in ("dense", "bm25", "hybrid")}
    sharded = create_sharded(tmp_path / "sh", shards=2, profile=HYBRID, encoder=enc)
    try:
        sharded.add(DOCS)
        v = enc.encode_queries(["gamma", "alpha"])
        _refused(lambda: sharded.search_many(["gamma", "alpha"], vectors=v, mode="bm25"))
        for mode in ("dense", "bm25", "hybrid"):  # the router sends its vectors (encoded=True) to every shard
            assert _ids(sharded.search_many(["gamma", "alpha"], mode=mode)) == want[mode]
        assert _ids(sharded.search_many(["gamma", "alpha"], vectors=v, mode="hybrid")) == want["hybrid"]
    finally:
        sharded.close()


def test_a_migrating_collection_refuses_them_too(tmp_path, scifact_docs):
    from migrate_worker import NEW

    from slimvec.migrate import runner
    from slimvec.migrate.merged import MigratingCollection

    old, new = FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=64, name=NEW)
    with registered_encoders(old, new):
        with Collection.create(tmp_path / "col", profile=HYBRID, encoder=old) as col:
            col.add(scifact_docs[:60])
        runner.start(tmp_path / "col", NEW, sample=30, encoder=new)
        with Collection.open(tmp_path / "col", encoder=new) as col:
            assert isinstance(col, MigratingCollection)
            queries = ["cells", "protein expression"]
            v = new.encode_queries(queries)  # the new model's vectors, as a migrating collection takes them
            _refused(lambda: col.search_many(queries, vectors=v, mode="bm25"))
            assert _ids(col.search_many(queries, vectors=v, mode="dense")) == _ids(col.search_many(queries, mode="dense"))
            assert _ids(col.search_many(queries, mode="bm25")) and col.search_many(queries, vectors=v, mode="hybrid")


# ---- 2: an export's or a migrated collection's reranker that cannot load here ---------------------------------------
# `slimvec import` of an export whose profile reranks with a cross-encoder directory missing on this machine failed
# with the create-time check's line ("rerank: cross-encoder '/x': no such directory"), naming neither the export's
# profile nor the way on; `slimvec migrate` of such a collection the same. Both say so now, and where to go.
def _reranking_collection(root: Path, old: FakeEncoder) -> Path:
    model = root / "ce"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    with Collection.create(root / "col", profile={"name": "mine", "retrievers": ["dense", "bm25"],
                                                  "rerank": f"cross-encoder:{model}"}, encoder=old) as col:
        col.add([Document(id=f"d{i}", text=f"word{i} common text {i % 3}") for i in range(40)])
        export_collection(col, f"parquet:{root / 'x.parquet'}")
    shutil.rmtree(model)  # gone on "this machine"
    return model


def test_import_names_the_exported_reranker_and_the_way_on(tmp_path):
    old = FakeEncoder(dim=32, name="fake-bow")
    with registered_encoders(old):
        model = _reranking_collection(tmp_path, old)
        source = f"parquet:{tmp_path / 'x.parquet'}"
        res = cli.invoke(app, ["import", source, "-c", str(tmp_path / "imp")])
        assert res.exit_code == 2 and not (tmp_path / "imp").exists()
        line = res.output.strip()
        assert line.startswith(f"error: {source}: the exported profile 'mine' reranks with 'cross-encoder:{model}'")
        assert "no such directory" in line and "`--profile NAME` or `--profile-file FILE`" in line and "\n" not in line
        with pytest.raises(ConfigError, match="the exported profile 'mine' reranks with"):  # the Python call alike
            import_records(source, tmp_path / "imp")
        assert not (tmp_path / "imp").exists()
        # The way on works: a profile of one's own, here the exported one without its rerank.
        mine = tmp_path / "p.json"
        mine.write_text(json.dumps({"name": "mine", "retrievers": ["dense", "bm25"]}), encoding="utf-8")
        res = cli.invoke(app, ["import", source, "-c", str(tmp_path / "imp"), "--profile-file", str(mine)])
        assert res.exit_code == 0, res.output
        with Collection.open(tmp_path / "imp") as col:
            assert len(col) == 40 and col.manifest["profile"].get("rerank") is None
            assert col.search("word3 common", mode="hybrid")[0].id == "d3"


def test_migrate_names_the_collection_reranker_and_the_way_on(tmp_path):
    from migrate_worker import NEW

    from slimvec.migrate.state import has_migration, migration_dir

    old, new = FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=64, name=NEW)
    with registered_encoders(old, new):
        model = _reranking_collection(tmp_path, old)
        res = cli.invoke(app, ["migrate", str(tmp_path / "col"), "--to", NEW, "--sample", "20", "--json"])
        assert res.exit_code == 2
        line = res.output.strip()
        assert line.startswith(f"error: {tmp_path / 'col'}: the collection's profile reranks with "
                               f"'cross-encoder:{model}', which a migration keeps")
        assert "no such directory" in line and "run the migration again" in line and "\n" not in line
        assert not has_migration(tmp_path / "col") and not migration_dir(tmp_path / "col").exists()
        with Collection.open(tmp_path / "col") as col:  # untouched, and searchable without its reranker
            assert len(col) == 40 and col.search("word3 common", rerank="none")[0].id == "d3"


# ---- 3: one file reached twice, through a link or not, is treated alike ---------------------------------------------
# `slimvec index docs docs/link.txt` (a link in the folder, given again) read the file once with a note, while
# `slimvec index docs docs/b.txt` (a file in the folder, given again) was refused as overlapping sources, and so was
# a link to a file inside the folder. For the user it is one situation, one file reached twice: each is now read
# once, under the first path met, with a `note:` naming the other spelling and the id stored (the lenient way,
# which session 21 chose for links; the overlap refusal of session 20 was a breaker's remedy for storing such a file
# twice, not a behaviour asked for). Overlapping folders, and a folder or table given twice, are still refused.
@pytest.fixture()
def tree(tmp_path, monkeypatch) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("alpha one", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.txt").write_text("beta two", encoding="utf-8")
    (tmp_path / "out.txt").write_text("outside three", encoding="utf-8")
    (tmp_path / "docs" / "olink.txt").symlink_to(Path("..") / "out.txt")  # a link to a file outside the folder
    (tmp_path / "docs" / "ilink.txt").symlink_to("a.txt")  # and to one inside it
    monkeypatch.chdir(tmp_path)
    return tmp_path


WALKED = ["a.txt", "olink.txt", "sub/b.txt"]


@pytest.mark.parametrize(("sources", "ids", "note"), [
    (["docs", "docs/olink.txt"], WALKED, "docs/olink.txt: skipped, already read by the walk of docs (id olink.txt)"),
    (["docs", "docs/a.txt"], WALKED, "docs/a.txt: skipped, already read by the walk of docs (id a.txt)"),
    (["docs", "docs/ilink.txt"], WALKED, "docs/ilink.txt: skipped, the same file as docs/a.txt (id a.txt)"),
    (["docs", "docs/sub/b.txt"], WALKED, "docs/sub/b.txt: skipped, already read by the walk of docs (id sub/b.txt)"),
    (["docs/sub/b.txt", "docs"], ["a.txt", "b.txt", "olink.txt"],
     "docs/sub/b.txt: skipped, already read as given before (id b.txt)"),
    (["docs/a.txt", "docs/a.txt"], ["a.txt"], "docs/a.txt: skipped, already read as given before (id a.txt)"),
    (["docs/ilink.txt", "docs/a.txt"], ["ilink.txt"], "docs/a.txt: skipped, the same file as docs/ilink.txt"),
])
def test_a_file_given_again_is_read_once_with_a_note_link_or_not(tree, sources, ids, note):
    notes, errors = [], []
    docs = list(read_sources(sources, on_skip=notes.append, on_error=errors.append))
    assert sorted(d.id for d in docs) == ids and not errors
    same = [n for n in notes if n.startswith(note)]  # docs/ilink.txt, passed over by the walk and as given: one note
    assert len(same) == 1 and "read once" in same[0] and "\n" not in same[0], notes


def test_cli_index_of_a_folder_and_a_file_in_it_stores_the_file_once(tree):
    with registered_encoders(FakeEncoder(name="fake-s22")):
        for extra in ("docs/a.txt", "docs/olink.txt"):  # a file and a link in the folder, given again: alike
            res = cli.invoke(app, ["index", "docs", extra, "-c", "col", "--model", "fake-s22"])
            assert res.exit_code == 0, res.output
            assert f"note: {extra}: skipped, already read by the walk of docs" in res.output
            with Collection.open("col") as col:
                assert len(col) == 3 and all(col.get(i) is not None for i in WALKED)
    # Still refused: overlapping folders (each of their files would be noted), a folder or table given twice.
    (tree / "t.jsonl").write_text('{"_id": "r1", "text": "a record"}\n', encoding="utf-8")
    for sources, message in ((["docs", "docs/sub"], "docs/sub: inside docs, which is also given"),
                             (["t.jsonl", "./t.jsonl"], "t.jsonl: given twice (also as t.jsonl)")):
        with pytest.raises(IngestError, match=f"^{re.escape(message)}"):
            read_sources(sources)


# ---- 4: hard links are one file --------------------------------------------------------------------------------------
# Two names of one file (`ln a.txt b.txt`) became two documents, while a symbolic link to it was one: "the same file"
# was its resolved path, and a hard link resolves to itself. It is the file's device and inode now, so the second
# name is passed over with a note and the first spelling keeps its id.
@pytest.fixture()
def hard(tmp_path, monkeypatch) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha one", encoding="utf-8")
    (tmp_path / "docs" / "c.txt").write_text("gamma three", encoding="utf-8")
    os.link(tmp_path / "docs" / "a.txt", tmp_path / "docs" / "b.txt")
    os.link(tmp_path / "docs" / "c.txt", tmp_path / "elsewhere.txt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("sources", "ids", "note"), [
    (["docs"], ["a.txt", "c.txt"], "docs/b.txt: skipped, the same file as docs/a.txt (id a.txt), read once"),
    (["docs", "elsewhere.txt"], ["a.txt", "c.txt"],
     "elsewhere.txt: skipped, the same file as docs/c.txt (id c.txt), read once"),
    (["elsewhere.txt", "docs"], ["a.txt", "elsewhere.txt"],
     "docs/c.txt: skipped, the same file as elsewhere.txt (id elsewhere.txt), read once"),
])
def test_hard_links_to_one_file_are_one_document(hard, sources, ids, note):
    notes, errors = [], []
    docs = list(read_sources(sources, on_skip=notes.append, on_error=errors.append))
    assert sorted(d.id for d in docs) == ids and not errors
    assert sum(n.startswith(note) for n in notes) == 1, notes


def test_cli_index_stores_hard_links_once_and_a_rerun_changes_nothing(hard):
    with registered_encoders(FakeEncoder(name="fake-s22")):
        for _ in range(2):
            res = cli.invoke(app, ["index", "docs", "-c", "col", "--model", "fake-s22"])
            assert res.exit_code == 0, res.output
            assert "note: docs/b.txt: skipped, the same file as docs/a.txt" in res.output
        with Collection.open("col") as col:
            assert len(col) == 2 and col.get("b.txt") is None and col.get("a.txt").text == "alpha one"


def test_distributed_ingest_stores_hard_links_and_a_file_given_again_once(hard, ray_cluster):
    from slimvec.distributed.ingest import index

    notes: list[str] = []
    # absolute paths: the session's Ray workers did not start in this test's folder
    n = index([hard / "docs", hard / "elsewhere.txt", hard / "docs" / "a.txt"], hard / "col", workers=1,
              model="wordllama", on_skip=notes.append)
    assert n == 2, notes  # a.txt and c.txt, as read_sources reads them
    docs = hard / "docs"
    for note in (f"{docs / 'b.txt'}: skipped, the same file as {docs / 'a.txt'} (id a.txt)",  # in the walk
                 f"{hard / 'elsewhere.txt'}: skipped, the same file as {docs / 'c.txt'} (id c.txt)",  # across paths
                 f"{docs / 'a.txt'}: skipped, already read by the walk of {docs} (id a.txt)"):
        assert any(x.startswith(note) for x in notes), notes
    with Collection.open(hard / "col") as col:
        assert len(col) == 2 and col.get("b.txt") is None and col.get("elsewhere.txt") is None


# ---- 5: info shows the nprobe searches use -----------------------------------------------------------------------------
# A profile fixing nprobe 64 on a collection with fewer lists (here 8) showed "nprobe": 64 in info, while faiss (and
# the retriever's own cap) probed the 8 lists there are. info shows what a search probes now, and the profile's
# number beside it when it was capped; the normal case keeps its keys as they were.
IVF = {"name": "ivf-small", "codec": "binary", "index": "ivf", "rescore": True, "oversample": 40, "nlist": 8}
IVF_DOCS = [Document(id=f"d{i}", text=f"word{i} w{i % 7} x{i % 13} common") for i in range(400)]


def _ivf(path: Path, nprobe: int) -> dict:
    with Collection.create(path, profile={**IVF, "nprobe": nprobe}, encoder=FakeEncoder()) as col:
        col.add(IVF_DOCS)
        hits = [[(h.id, h.score) for h in col.search(q, k=10)] for q in ("word3 common", "w5 x2", "x11")]
        return {"info": col.info()["indexes"]["dense"], "hits": hits}


def test_info_shows_a_profile_nprobe_above_nlist_capped_and_names_the_profile_value(tmp_path):
    capped, all_lists, fewer = (_ivf(tmp_path / str(n), n) for n in (64, 8, 3))
    assert capped["info"]["kind"] == "ivf" and capped["info"]["nlist"] == 8
    assert capped["info"]["nprobe"] == 8 and capped["info"]["nprobe_profile"] == 64
    assert capped["hits"] == all_lists["hits"]  # 64 probes what 8 probes: every list
    assert all_lists["info"]["nprobe"] == 8 and "nprobe_profile" not in all_lists["info"]
    assert fewer["info"]["nprobe"] == 3 and "nprobe_profile" not in fewer["info"]  # the normal case, as before
    with Collection.open(tmp_path / "64", encoder=FakeEncoder()) as col:  # reopened: the same
        assert col.info()["indexes"]["dense"] == capped["info"]
    res = cli.invoke(app, ["info", str(tmp_path / "64"), "--json"])
    assert res.exit_code == 0 and '"nprobe": 8' in res.output and '"nprobe_profile": 64' in res.output


def test_a_table_given_twice_through_two_hard_links_is_refused_as_given_twice(tmp_path):
    table = tmp_path / "export.jsonl"
    table.write_text('{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    os.link(table, tmp_path / "copy.jsonl")
    with pytest.raises(IngestError, match=r"copy\.jsonl: given twice \(also as .*export\.jsonl\)"):
        list(read_sources([table, tmp_path / "copy.jsonl"]))


def test_a_record_with_its_id_or_text_under_another_common_name_gets_the_option_that_reads_it(tmp_path):
    from slimvec.ingest import FieldMap
    from slimvec.ingest.tables import iter_table

    path = tmp_path / "export.jsonl"
    path.write_text('{"id": "a", "text": "alpha"}\n{"_id": "b", "content": "beta"}\n{"_id": "c"}\n')
    errors = [str(e) for _, e in iter_table(path, FieldMap()) if isinstance(e, IngestError)]
    assert errors == [f"{path}:1: _id: missing (the record has 'id': read it with --id-field id)",
                      f"{path}:2: text: missing (the record has 'content': read it with --text-field content)",
                      f"{path}:3: text: missing"]
