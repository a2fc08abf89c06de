"""Faults found by session 22's third breaker, each with the behaviour it now has."""

from __future__ import annotations

import os
import re
import threading

import pytest

from slimvec.errors import IngestError
from slimvec.ingest.files import iter_folder


# ---- a named pipe in a folder: the walk opened it and waited for a writer, forever, without a word ----------------
def test_a_named_pipe_in_a_folder_is_reported_not_waited_on(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("plain words here")
    pipe = docs / "b.txt"
    os.mkfifo(pipe)
    # A writer feeding the pipe each time it is opened: reading it as a file then returns its text (the fault)
    # instead of hanging the test. The pipe is opened for reading below, after the walk, to let the writer go.
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            try:
                with pipe.open("w") as f:
                    f.write("text through a pipe")
            except OSError:  # the reader closed first
                pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        got = {p.name: d for p, d in iter_folder(docs, lambda _: None)}
    finally:
        stop.set()
        fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        writer.join()
        os.close(fd)
    assert got["a.txt"].text == "plain words here"
    assert isinstance(got["b.txt"], IngestError)
    assert str(got["b.txt"]) == f"{pipe}: a named pipe (FIFO), not a regular file: only files are read"


# ---- CSV: a header naming the id or text column as exports do got no word of --id-field / --text-field -------------
# A JSONL or Parquet record with 'id' or 'content' gets the option that reads it (16aecef); the CSV twin said only
# "_id: no such column (columns: id, content)".
def test_a_csv_header_naming_its_id_or_text_column_otherwise_gets_the_option_that_reads_it(tmp_path):
    from slimvec.ingest import FieldMap
    from slimvec.ingest.tables import iter_table

    path = tmp_path / "export.csv"
    path.write_text("id,content\na,alpha words\n")
    errors = [str(e) for _, e in iter_table(path, FieldMap())]
    assert errors == [f"{path}:1: _id: no such column (columns: id, content); the file has column 'id': read it with "
                      "--id-field id"]
    errors = [str(e) for _, e in iter_table(path, FieldMap(id_field="id"))]
    assert errors == [f"{path}:1: text: no such column (columns: id, content); the file has column 'content': read "
                      "it with --text-field content"]
    assert [(d.id, d.text) for _, d in iter_table(path, FieldMap(id_field="id", text_field="content"))] == [
        ("a", "alpha words")]


# ---- CSV: a ';' header said so only when its cells were bare and named the field exactly ---------------------------
# 088da41 names the separator of "_id;text"; a header whose cells are quoted ('"_id";"text"', as LibreOffice and
# pandas' to_csv(sep=';', quoting=ALL) write it) failed to parse as "malformed CSV header: ',' expected after '"'",
# and "id;text" (the id under an export's name) got "no such column" with no word of either.
def test_a_csv_separated_by_semicolons_says_so_with_quoted_cells_or_another_id_name(tmp_path):
    from slimvec.ingest import FieldMap
    from slimvec.ingest.tables import iter_table

    said = "the header is separated by ';', not commas: save the file with commas between columns"
    (quoted := tmp_path / "quoted.csv").write_text('"_id";"text"\n"a";"alpha"\n')
    (named := tmp_path / "named.csv").write_text("id;text\na;alpha\n")
    (mac := tmp_path / "mac.csv").write_bytes(b"id;content\ra;alpha\r")
    for path in (quoted, named, mac):
        errors = [str(e) for _, e in iter_table(path, FieldMap())]
        assert len(errors) == 1 and said in errors[0], errors
    assert str(next(iter_table(quoted, FieldMap()))[1]).startswith(f"{quoted}:1: malformed CSV header: ")
    # a quoted header separated by commas, and a comma inside a quoted cell, are read as ever
    (plain := tmp_path / "plain.csv").write_text('"_id","text"\n"a","alpha; beta, gamma"\n')
    assert [(d.id, d.text) for _, d in iter_table(plain, FieldMap())] == [("a", "alpha; beta, gamma")]


# ---- a shard opened by another spelling of its path took the writes its router must route -------------------------
# f7f4c15 refuses adds to DIR/shards/001 opened on its own, by the path as spelled: "001" from inside shards/
# (`cd DIR/shards && slimvec index docs -c 001`), "shards/001/../001" or a link to the shard took them all the same.
def test_a_shard_opened_by_a_relative_path_or_a_link_refuses_adds_too(tmp_path, monkeypatch):
    from fakes import FakeEncoder

    from slimvec import Collection, Document
    from slimvec.distributed import create_sharded
    from slimvec.errors import CollectionError

    path = tmp_path / "sh"
    with create_sharded(path, shards=2, profile="exact-f32", encoder=FakeEncoder()) as sharded:
        sharded.add([Document(f"d{i}", f"alpha beta {i}") for i in range(6)])
    (tmp_path / "link").symlink_to(path / "shards" / "001")
    monkeypatch.chdir(path / "shards")
    for spelling in ("001", "./001", str(path / "shards" / "001" / ".." / "001"), str(tmp_path / "link")):
        with Collection.open(spelling, encoder=FakeEncoder()) as shard:
            held = len(shard)
            with pytest.raises(CollectionError, match="is a shard of the sharded collection .*sh; add, upsert"):
                shard.add([Document("stray", "stray words")])
            assert len(shard) == held
    with Collection.open(path, encoder=FakeEncoder()) as sharded:
        assert len(sharded) == 6 and sharded.check() == []


# ---- a shard migrated on its own: switched to another model, after which its sharded collection did not open ------
# f7f4c15 refuses adds, upserts and enable on a shard opened alone; `slimvec migrate DIR/shards/001 --to MODEL` went
# through, switched the shard, and every later Collection.open(DIR) failed: "collection was built with model ...".
def test_a_shard_cannot_be_migrated_alone(tmp_path):
    from fakes import FakeEncoder

    from slimvec import Collection, Document
    from slimvec.distributed import create_sharded
    from slimvec.errors import ConfigError
    from slimvec.migrate import runner
    from slimvec.migrate.state import has_migration

    path = tmp_path / "sh"
    with create_sharded(path, shards=2, profile="exact-f32", encoder=FakeEncoder(32)) as sharded:
        sharded.add([Document(f"d{i}", f"alpha beta gamma {i} " * 3) for i in range(80)])
    shard = path / "shards" / "001"
    with pytest.raises(ConfigError, match=f"{shard}: is a shard of the sharded collection {path}, whose shards share "
                                          "one model; a shard cannot be migrated alone"):
        runner.migrate(shard, "fake-new", encoder=FakeEncoder(24, name="fake-new"), sample=20)
    assert not has_migration(shard)
    with Collection.open(path, encoder=FakeEncoder(32)) as sharded:
        assert sharded.check() == [] and len(sharded) == 80
        assert [h.id for h in sharded.search("alpha beta gamma 7", k=1)] == ["d7"]


# ---- a missing or short token file: a bare FileNotFoundError / ValueError traceback, `slimvec check` one too -------
# 65b0bd5 made a missing vectors/float32.bin a one-line CollectionError; the token files of a multi-vector
# collection (tokens/tokens.bin, offsets.bin) failed every search with numpy's traceback, and so did `check`.
@pytest.mark.parametrize("damage", ["remove tokens.bin", "remove offsets.bin", "truncate tokens.bin"])
def test_a_missing_or_short_token_file_is_a_one_line_collection_error_and_check_names_it(tmp_path, damage):
    from fakes import FakeEncoder

    from slimvec import Collection, Document
    from slimvec.errors import CollectionError

    path = tmp_path / "mv"
    with Collection.create(path, profile="multivector", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"alpha beta {i}") for i in range(5)])
    verb, name = damage.split()
    target = path / "tokens" / name
    if verb == "remove":
        target.unlink()
    else:
        os.truncate(target, 10)
    said = f"{target}: missing; run `slimvec check`" if verb == "remove" else f"{target}: 10 bytes hold fewer than"
    with Collection.open(path, encoder=FakeEncoder()) as col:
        with pytest.raises(CollectionError, match=re.escape(said)):
            col.search("alpha beta 3", k=2)
        problems = col.check()
    assert len(problems) == 1 and problems[0].startswith(said)


# ---- eval --corpus naming the dataset's corpus.jsonl through a link: read as a plain table again ------------------
# 93c4f17 reads `--corpus DATASET/corpus.jsonl` as the BEIR folder (title-only records accepted), telling the file by
# its resolved path; a dataset whose corpus.jsonl is a symbolic link (git-annex and DVC keep files so) resolved
# elsewhere, and the title-only record was refused as "text: empty" again.
def test_eval_corpus_naming_the_dataset_corpus_through_a_link_is_read_as_the_beir_folder(tmp_path):
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.preflight import check_eval_inputs, corpus_source
    from slimvec.profiles import BUILTIN

    (store := tmp_path / "annex").mkdir()
    (store / "corpus.jsonl").write_text('{"_id": "d1", "title": "Only a title here", "text": ""}\n'
                                        '{"_id": "d2", "title": "", "text": "some body text"}\n')
    ds_dir = tmp_path / "ds"
    (ds_dir / "qrels").mkdir(parents=True)
    (ds_dir / "corpus.jsonl").symlink_to(store / "corpus.jsonl")
    (ds_dir / "queries.jsonl").write_text('{"_id": "q1", "text": "title"}\n')
    (ds_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    ds = load_dataset(ds_dir)
    assert corpus_source(ds, ds_dir / "corpus.jsonl") == ds.path
    check_eval_inputs(ds_dir, [BUILTIN["exact-f32"]], "test", corpus_path=ds_dir / "corpus.jsonl")  # no error
    other = tmp_path / "other.jsonl"  # another corpus is still read as the table it is
    other.write_text('{"_id": "d1", "text": "alpha"}\n')
    assert corpus_source(ds, other) == other


# ---- HTTP twin of 57aab4c: GET then POST ?upsert=true of a sectioned document re-cut it into token windows ---------
# Collection.get keeps given sections so that upserting its document back keeps them; the HTTP API's GET gave id,
# title, text and metadata only, and its POST took no sections (extra fields refused), so the usual way to change a
# field over HTTP lost the sections: section hits were gone and text outside every section became searchable.
def test_http_get_then_upsert_of_a_sectioned_document_keeps_its_sections(tmp_path):
    from _server_util import AUTH, KEY
    from fakes import FakeEncoder
    from fastapi.testclient import TestClient

    from slimvec import Collection, Document
    from slimvec.documents import Section
    from slimvec.server import create_app

    text = "alpha beta gamma delta. epsilon zeta eta theta. outside words kappa lambda"
    secs = (Section("a", 0, 23, ("Intro",)), Section("b", 24, 47, ("Intro", "More")))
    with Collection.create(tmp_path / "c", profile="exact-f32", encoder=FakeEncoder(max_tokens=16)) as col:
        col.add([Document("s", text, "T", {"v": 1}, sections=secs), Document("p", "plain words", "", {})])
        rows = col.info()["rows"]
        with TestClient(create_app({"col": col}, api_key=KEY), raise_server_exceptions=False) as client:
            plain = client.get("/api/collections/col/documents/p").json()
            assert plain == {"id": "p", "title": "", "text": "plain words", "metadata": {}}  # as before
            doc = client.get("/api/collections/col/documents/s").json()
            assert doc["sections"] == [{"_id": "a", "start": 0, "end": 23, "path": ["Intro"]},
                                       {"_id": "b", "start": 24, "end": 47, "path": ["Intro", "More"]}]
            r = client.post("/api/collections/col/documents?upsert=true", json=[doc, plain], headers=AUTH)
            assert r.status_code == 200, r.text
            assert col.info()["rows"] == rows and col.info()["dead_rows"] == 0  # stored as given: nothing re-cut
            r = client.post("/api/collections/col/documents?upsert=true", headers=AUTH,
                            json=[{**doc, "metadata": {"v": 2}}])
            assert r.status_code == 200, r.text
            assert col.get("s") == Document("s", text, "T", {"v": 2}, secs)
            bad = client.post("/api/collections/col/documents?upsert=true", headers=AUTH,
                              json=[{**doc, "sections": [{"_id": "a", "start": 0, "end": 999}]}])
            assert bad.status_code == 400 and "document 's': sections:" in bad.text
        assert col.get("s") == Document("s", text, "T", {"v": 2}, secs)


# ---- LlamaIndex alpha on a collection whose profile fuses by rank: an error about a field the caller never gave ----
# dd16dee turns VectorStoreQuery.alpha into fusion_weights; on a profile fusing by 'rrf' (collections from before
# profiles recorded their fusion, or a profile choosing it) the query failed with "fusion weights apply to
# fusion='weighted' or 'softmax', not rrf": no word of alpha, and no fusion option a LlamaIndex caller can set.
def test_llama_index_alpha_on_a_rank_fused_collection_is_refused_naming_alpha(tmp_path):
    pytest.importorskip("llama_index.core")
    from fakes import FakeEncoder
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from slimvec import Collection, Document
    from slimvec.errors import ConfigError
    from slimvec.integrations.llama_index import SlimvecVectorStore
    from slimvec.profiles import BUILTIN, profile_from_dict

    prof = profile_from_dict({**BUILTIN["hybrid"].model_dump(mode="json"), "name": "h-rrf", "fusion": "rrf"})
    with Collection.create(tmp_path / "c", profile=prof, encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"alpha beta {i}") for i in range(5)])
        store = SlimvecVectorStore(col)
        hybrid = {"query_str": "alpha 3", "similarity_top_k": 2, "mode": VectorStoreQueryMode.HYBRID}
        with pytest.raises(ConfigError, match=r"^query: alpha weighs vector against text scores, and this "
                                              r"collection's profile fuses the two rankings by rank \(fusion 'rrf'\)"):
            store.query(VectorStoreQuery(**hybrid, alpha=0.7))
        assert "d3" in store.query(VectorStoreQuery(**hybrid)).ids  # without alpha: rank fusion, as before
        assert len(store.query(VectorStoreQuery(**hybrid, hybrid_top_k=3)).ids) == 3
