"""Faults found by the session-20 breaker (user-facing input paths), each with the behaviour it now has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeEncoder, registered_encoders
from typer.testing import CliRunner

from slimvec import Collection, Document, registry
from slimvec.cli import app
from slimvec.encoders.registry import register_encoder
from slimvec.errors import ConfigError
from slimvec.profiles import load_profile

SRC = Path(__file__).parent.parent / "src"
cli = CliRunner()


def _profile_file(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "mine", **fields}), encoding="utf-8")
    return path


# A profile's mode was any string: one its retrievers cannot run (misspelt, or needing an index the profile does
# not keep) was replaced by dense or the first retriever at every search, without a word; fusion weights no fused
# mode of the profile could take were ignored, or made every search of the collection fail ("3 fusion weights for
# the 2 retrievers"), and all-zero weights scored every document 0 (the search options refuse both).
@pytest.mark.parametrize(("fields", "message"), [
    ({"mode": "hybird", "retrievers": ["dense", "bm25"]}, "unknown mode 'hybird' cannot run"),
    ({"mode": "bm25"}, "mode 'bm25' cannot run on this profile's retrievers (dense): choose one of dense"),
    ({"mode": "hybrid", "retrievers": ["bm25"]}, "mode 'hybrid' cannot run"),
    ({"mode": "sparse", "retrievers": ["dense", "bm25"]}, "mode 'sparse' cannot run"),
    ({"mode": "hybrid", "retrievers": ["dense", "bm25"], "fusion_weights": [1, 2, 3]},
     "3 fusion_weights, but a fused search takes one per retriever: 2 for mode 'hybrid'"),
    ({"mode": "hybrid", "retrievers": ["dense", "bm25"], "fusion_weights": [0, 0]}, "at least one weight must be > 0"),
    ({"fusion_weights": [0.3, 0.7]}, "retrievers (dense) run no fused mode"),
    ({"retrievers": ["bm25"], "mode": "bm25", "fusion_weights": [1.0]}, "run no fused mode"),
])
def test_a_profile_mode_or_weights_its_retrievers_cannot_run_are_refused_when_it_loads(tmp_path, fields, message):
    path = _profile_file(tmp_path, **fields)
    (tmp_path / "docs.jsonl").write_text('{"_id": "a", "text": "alpha"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_profile(file=path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value) and "\n" not in str(e.value)
    res = cli.invoke(app, ["index", str(tmp_path / "docs.jsonl"), "-c", str(tmp_path / "col"), "--profile-file",
                           str(path)])
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "col").exists()


@pytest.mark.parametrize("fields", [
    {"retrievers": ["bm25"]},  # no mode named: the field's default "dense" means the first retriever
    {"retrievers": ["dense", "bm25"], "fusion_weights": [0.3, 0.7]},  # weights for --mode hybrid
    {"retrievers": ["dense", "bm25", "sparse"], "mode": "hybrid-sparse", "fusion_weights": [1, 0]},
    {"retrievers": ["bm25", "dense"], "mode": "bm25"},
])
def test_profiles_whose_mode_and_weights_fit_their_retrievers_still_load_and_search(tmp_path, fields):
    prof = load_profile(file=_profile_file(tmp_path, **fields))
    with Collection.create(tmp_path / "col", profile=prof, encoder=FakeEncoder(max_tokens=256)) as col:
        col.add([Document("a", "alpha beta"), Document("b", "gamma delta")])
        assert col.search("alpha", k=1)[0].id == "a"


NEW = "fake-bow-s20"


@pytest.fixture()
def fake_models():
    with registered_encoders(FakeEncoder(dim=32, name="fake-bow"), FakeEncoder(dim=48, name=NEW)):
        yield


# `slimvec migrate --batch 0` fitted the adapter, re-embedded the sample and stored the migration, then refused the
# batch size; a rerun then went on with the stored options, taking an unknown --adapter without a word.
def test_migrate_refuses_a_bad_batch_before_starting_and_bad_options_on_a_rerun(tmp_path, fake_models, scifact_docs):
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder(dim=32, name="fake-bow")) as col:
        col.add(scifact_docs[:30])
    for batch in ("0", "-1"):
        res = cli.invoke(app, ["migrate", str(path), "--to", NEW, "--batch", batch])
        assert res.exit_code == 2 and f"--batch must be at least 1, got {batch}" in res.output, res.output
        assert not (path / "migration").exists()
    res = cli.invoke(app, ["migrate", str(path), "--to", NEW, "--fit-only"])
    assert res.exit_code == 0, res.output
    record = (path / "migration" / "migration.json").read_bytes()
    for args, message in ((["--adapter", "magic"], "unknown adapter 'magic'"),
                          (["--sample", "5"], "--sample must be between 20 and 5000"),
                          (["--batch", "0"], "--batch must be at least 1")):
        res = cli.invoke(app, ["migrate", str(path), "--to", NEW, *args])
        assert res.exit_code == 2 and message in res.output, res.output
        assert (path / "migration" / "migration.json").read_bytes() == record
    res = cli.invoke(app, ["migrate", str(path), "--to", NEW])  # good options finish the migration
    assert res.exit_code == 0, res.output
    assert json.loads((path / "manifest.json").read_text())["model"] == NEW


class _Embeddings:
    """A LangChain Embeddings of FakeEncoder vectors (duck-typed: the store calls these two methods)."""

    def __init__(self) -> None:
        self.fake = FakeEncoder()

    def embed_documents(self, texts):
        return self.fake.encode_documents(list(texts)).tolist()

    def embed_query(self, text):
        return self.fake.encode_queries([text])[0].tolist()


# add_texts iterated one string where a list is meant: add_texts("hello") stored five documents "h", "e", "l",
# "l", "o"; ids="abc" named three texts "a", "b" and "c"; metadatas={...} was read as its keys and the error
# said "metadata must be a dict, not str".
@pytest.mark.parametrize(("call", "message"), [
    ({"texts": "hello world"}, "texts must be a list of strings, not one str"),
    ({"texts": ["one two", "three four", "five six"], "ids": "abc"}, "ids must be a list of strings, not one str"),
    ({"texts": ["one two", "three four"], "metadatas": {"year": 1, "group": 2}},
     "metadatas must be a list of dicts, not one dict"),
])
def test_langchain_add_texts_refuses_one_string_or_dict_where_a_list_is_meant(tmp_path, call, message):
    pytest.importorskip("langchain_core")
    from slimvec.integrations.langchain import SlimvecVectorStore

    store = SlimvecVectorStore(tmp_path / "col", _Embeddings())
    store.add_texts(["kept text"], ids=["kept"])
    with pytest.raises(TypeError, match=message):
        store.add_texts(**call)
    assert len(store.collection) == 1
    assert store.add_texts(["alpha beta", "gamma"], metadatas=[{"year": 1}, {}], ids=["a", "b"]) == ["a", "b"]


# VectorStoreQuery(node_ids="n1") (LlamaIndex's dataclass checks nothing) restricted the search to the nodes "n"
# and "1": nothing found, or other nodes; doc_ids likewise. delete_nodes/get_nodes already read one id as one id.
def test_llama_index_query_reads_one_node_or_doc_id_string_as_one_id(tmp_path):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from slimvec.integrations.llama_index import SlimvecVectorStore

    store = SlimvecVectorStore(Collection.create(tmp_path / "col", encoder=FakeEncoder(max_tokens=256)))
    nodes = []
    for nid, text, ref in (("n1", "volcanic ash cloud", "doc-x"), ("n", "volcanic ash plume", "d"),
                           ("1", "volcanic ash rain", "o")):
        node = TextNode(id_=nid, text=text)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref)
        nodes.append(node)
    store.add(nodes)
    got = store.query(VectorStoreQuery(query_str="volcanic ash", similarity_top_k=3, node_ids="n1"))
    assert got.ids == ["n1"]
    got = store.query(VectorStoreQuery(query_str="volcanic ash", similarity_top_k=3, doc_ids="doc-x"))
    assert got.ids == ["n1"]


# `python -m slimvec` (how a venv's tools are often run, and what the project's own briefs say) failed with
# "No module named slimvec.__main__".
def test_python_dash_m_slimvec_runs_the_command_line(tmp_path):
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "slimvec", "info", str(tmp_path / "none")], capture_output=True,
                         text=True, env=env, check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"error: {tmp_path / 'none'}: no slimvec collection here (missing manifest.json)"


# `slimvec index FOLDER` passed over a .jsonl export, a .docx and a linked folder with notes written for the user
# ("name a table file directly to read its records") but logged at INFO, shown only under -v: the summary said
# "indexed 1 documents (0 skipped)" and nothing told that the export's records were never read.
def test_index_shows_the_files_a_folder_walk_passes_over(tmp_path, fake_models):
    folder, other = tmp_path / "docs", tmp_path / "other"
    (folder / "sub").mkdir(parents=True)
    other.mkdir()
    (folder / "a.txt").write_text("hello world", encoding="utf-8")
    (folder / "export.jsonl").write_text('{"_id": "r1", "text": "a record"}\n', encoding="utf-8")
    (folder / "b.docx").write_bytes(b"PK\x03\x04")
    (folder / "sub" / "link").symlink_to(other, target_is_directory=True)
    res = cli.invoke(app, ["index", str(folder), "-c", str(tmp_path / "col"), "--model", "fake-bow"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert f"note: {folder}: skipped 1 file(s) with '.jsonl', e.g. export.jsonl (name a table file directly to read " \
           "its records)" in lines
    assert f"note: {folder}: skipped 1 file(s) with '.docx', e.g. b.docx" in lines
    assert any(line.startswith(f"note: {folder}: skipped 1 linked folder(s)") for line in lines)
    res = cli.invoke(app, ["index", str(folder), "-c", str(tmp_path / "col2"), "--model", "fake-bow", "--json"])
    summary = json.loads(res.stdout)
    assert summary["skipped"] == 0 and len(summary["notes"]) == 3 and summary["documents"] == 1


# --field-type naming the text, title or id field, or a field no record has (a misspelt name), changed nothing
# without a word: the text field is never metadata, and "yeer=int" typed nothing while "year" stayed text.
def test_field_types_that_cannot_apply_are_refused_or_noted(tmp_path):
    from slimvec.ingest import FieldMap, read_sources

    table = tmp_path / "t.csv"
    table.write_text("key,body,year\nd1,first text,2020\nd2,second text,x\n", encoding="utf-8")
    fields = FieldMap(id_field="key", text_field="body")
    for spec, what in (("body=int", "text"), ("key=int", "id"), ("title=str", "title")):
        with pytest.raises(ConfigError, match=f"^field type for '{spec.split('=')[0]}': it is the {what} field, not "
                                              "metadata"):
            read_sources([table], fields=fields, field_types=[spec])
    notes: list[str] = []
    docs = list(read_sources([table], fields=fields, field_types=["yeer=int", "year=str"], on_skip=notes.append))
    assert [d.metadata for d in docs] == [{"year": "2020"}, {"year": "x"}]
    assert notes == ["field type yeer=int: no record read has a metadata field 'yeer', so it changed nothing "
                     "(a misspelt field name?)"]
    res = cli.invoke(app, ["index", str(table), "-c", str(tmp_path / "col"), "--id-field", "key", "--text-field",
                           "body", "--field-type", "body=int"])
    assert res.exit_code == 2 and not (tmp_path / "col").exists()
    assert res.output.strip() == "error: field type for 'body': it is the text field, not metadata (ids, titles and " \
                                 "texts are always text)"


# search_vectors took an all-zero query vector (an embedding call that failed to zeros, a LangChain or LlamaIndex
# query by vector) and returned k "hits" all scoring 0, in row order; stored vectors and tuning vectors refuse it.
def test_search_vectors_refuses_an_all_zero_query_vector(tmp_path):
    import numpy as np

    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"word{i} common text") for i in range(5)])
        good = FakeEncoder().encode_queries(["word3 common"])
        assert col.search_vectors(good, k=1)[0][0].id == "d3"
        with pytest.raises(ConfigError, match="^query vector 1 is all zeros: it has no direction to search by$"):
            col.search_vectors(np.vstack([good, np.zeros((1, 32), np.float32)]), k=3)
        with pytest.raises(ConfigError, match="^query vector 0 is all zeros"):
            col.search_vectors([0.0] * 32, k=3)


# `slimvec calibrate COL DATASET` with the qrels of another corpus said "calibration needs both relevant and
# non-relevant hits among the judged results": true, but not why (no judged document is in the collection).
def test_calibrate_says_when_the_qrels_judge_no_document_of_the_collection(tmp_path):
    pytest.importorskip("sklearn")
    from slimvec.evaluation.calibrate import fit_calibrator

    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"word{i} common text") for i in range(30)])
        queries = {f"q{i}": f"word{i} common" for i in range(10)}
        other = {q: {f"MED-{i}": 1} for i, q in enumerate(queries)}
        with pytest.raises(ConfigError, match="^none of the 10 documents the qrels judge relevant \\(e.g. 'MED-0'\\) "
                                              "is in this collection"):
            fit_calibrator(col, queries, other)
        own = {q: {f"d{i}": 1} for i, q in enumerate(queries)}
        assert fit_calibrator(col, queries, own).threshold is not None


# A profile file's chunk_overlap of half its chunk_tokens or more was cut down to fit when the collection was made
# (20 of 10 tokens became 4, recorded so), where the same pair given as options is refused.
@pytest.mark.parametrize("overlap", [5, 9, 20])
def test_a_profile_overlap_too_large_for_its_chunks_is_refused_not_cut_down(tmp_path, overlap):
    path = _profile_file(tmp_path, chunk_tokens=10, chunk_overlap=overlap)
    with pytest.raises(ConfigError, match=f"chunk overlap {overlap} must be below half of the 10 chunk tokens"):
        load_profile(file=path)


def test_a_profile_overlap_that_fits_and_the_default_overlap_still_build(tmp_path):
    for i, fields in enumerate(({"chunk_tokens": 10, "chunk_overlap": 4}, {"chunk_tokens": 10})):
        prof = load_profile(file=_profile_file(tmp_path, **fields))
        with Collection.create(tmp_path / f"c{i}", profile=prof, encoder=FakeEncoder(max_tokens=64)) as col:
            col.add([Document("d", " ".join(f"w{j}" for j in range(100)))])
            assert col.manifest["chunking"] == {"max_tokens": 10, "overlap": 4, "mode": "tokens"}


# A filter value from numpy or pandas code (np.int64(2005), np.float64, np.bool_) failed with "TypeError: Object of
# type int64 is not JSON serializable", and so did a bytes value, instead of a FilterError naming the field.
def test_filter_values_from_numpy_are_their_numbers_and_other_types_a_filter_error(tmp_path):
    import numpy as np

    from slimvec.errors import FilterError

    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document(f"d{i}", f"word{i} common text", metadata={"year": 2000 + i, "score": i / 2, "odd": bool(i % 2)})
                 for i in range(6)])
        for flt, want in (({"year": np.int64(2003)}, ["d3"]), ({"year": {"$gte": np.int32(2004)}}, ["d4", "d5"]),
                          ({"score": {"$lt": np.float32(1.0)}}, ["d0", "d1"]), ({"odd": np.bool_(False)}, ["d0", "d2", "d4"]),
                          ({"year": {"$in": [np.int64(2001), 2002]}}, ["d1", "d2"]), ({"year": np.array(2005)}, ["d5"])):
            assert sorted(h.id for h in col.search("common text", k=10, filter=flt)) == want, flt
        for flt, shown in (({"year": b"2003"}, '"<bytes>"'), ({"year": np.array([2001, 2002])}, '"<ndarray>"')):
            with pytest.raises(FilterError, match=f"^year: values must be strings, numbers, booleans or null, got {shown}$"):
                col.search("common text", filter=flt)


# `slimvec sweep --profiles exact-f32,binary,exact-f32` evaluated exact-f32 twice and reported it in two rows.
def test_sweep_refuses_a_profile_named_twice_before_any_work(tmp_path):
    res = cli.invoke(app, ["sweep", str(tmp_path / "data"), "--profiles", "exact-f32,binary,exact-f32", "--out",
                           str(tmp_path / "out")])
    assert res.exit_code == 2 and res.output.strip() == "error: --profiles names 'exact-f32' twice"
    assert not (tmp_path / "out").exists()


# A query parameter given twice kept its last value without a word: GET search ?filter={"year":2019}&filter={}
# searched every document, and ?upsert=false&upsert=true replaced stored documents. A JSON body naming a key
# twice is refused (strictjson); the query string now is too.
def test_http_refuses_a_query_parameter_given_twice(tmp_path):
    import httpx
    from _server_util import AUTH, KEY, make_collection, snapshot

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    col = make_collection(tmp_path / "col")
    before = snapshot(col)
    with server_thread(create_app({"col": col}, api_key=KEY)) as base, httpx.Client(base_url=base, timeout=30) as http:
        ok = http.get("/api/collections/col/search", params={"q": "bone", "filter": '{"year": 2019}'})
        assert ok.status_code == 200 and [h["id"] for h in ok.json()["hits"]] == ["d1"]
        for url, params in (("/api/collections/col/search", [("q", "bone"), ("filter", '{"year": 2019}'), ("filter", "{}")]),
                            ("/api/collections/col/search", [("q", "bone"), ("k", "1"), ("k", "3")])):
            r = http.get(url, params=params)
            name = params[-1][0]
            assert r.status_code == 422 and r.json() == {"detail": f"query: parameter {name!r} is given twice (the last "
                                                                   "value would replace the others); give it once"}
        r = http.post("/api/collections/col/documents", params=[("upsert", "false"), ("upsert", "true")],
                      json=[{"id": "d1", "text": "replaced"}], headers=AUTH)
        assert r.status_code == 422 and "'upsert' is given twice" in r.json()["detail"]
    assert snapshot(col) == before
    col.close()


# `slimvec index docs docs/sub` stored docs/sub/b.txt twice, as "sub/b.txt" and "b.txt" (ids are paths relative to
# the folder named): one file, two documents in every search. A path given twice read every record twice.
def test_overlapping_sources_are_refused_before_any_record_is_read(tmp_path):
    from slimvec.errors import IngestError
    from slimvec.ingest import read_sources

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / ".hidden").mkdir()
    (docs / "a.txt").write_text("alpha", encoding="utf-8")
    (docs / "sub" / "b.txt").write_text("beta", encoding="utf-8")
    (docs / ".hidden" / "c.txt").write_text("gamma", encoding="utf-8")
    (docs / "export.jsonl").write_text('{"_id": "r1", "text": "a record"}\n', encoding="utf-8")
    for sources, inner, outer in (([docs, docs / "sub"], docs / "sub", docs), ([docs / "sub", docs], docs / "sub", docs)):
        with pytest.raises(IngestError, match=f"^{inner}: inside {outer}, which is also given: its files would be "
                                              "stored twice, under two ids"):
            read_sources(sources)
    # A document file inside a folder given (`docs docs/sub/b.txt`) is read once with a note since session 22, as a
    # link in the folder given again is (test_s22_fixes): one file reached twice, one document.
    notes: list[str] = []
    once = sorted(d.id for d in read_sources([docs, docs / "sub" / "b.txt"], on_skip=notes.append))
    assert once == ["a.txt", "sub/b.txt"]
    assert any(n.startswith(f"{docs / 'sub' / 'b.txt'}: skipped, already read by the walk of {docs}") for n in notes)
    again = docs / "sub" / ".." / "export.jsonl"
    with pytest.raises(IngestError) as e:
        read_sources([docs / "export.jsonl", again])
    assert str(e.value) == f"{again}: given twice (also as {docs / 'export.jsonl'})"
    # a table inside a folder (the walk passes over it) and a hidden folder (not walked) are read once each
    got = sorted(d.id for d in read_sources([docs, docs / "export.jsonl", docs / ".hidden"]))
    assert got == ["a.txt", "c.txt", "r1", "sub/b.txt"]
    res = cli.invoke(app, ["index", str(docs), str(docs / "sub"), "-c", str(tmp_path / "col")])
    assert res.exit_code == 2 and not (tmp_path / "col").exists()


# A `slimvec index` whose every record was skipped (a CSV header "id, text" whose text column is " text") left an
# empty collection pinned to the call's model and profile: the corrected rerun with --profile hybrid was refused.
def test_index_that_stores_nothing_leaves_no_collection_behind(tmp_path, fake_models):
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text("id, text\n1, hello world\n", encoding="utf-8")
    good.write_text("id,text\n1,hello world\n", encoding="utf-8")
    col = tmp_path / "col"
    res = cli.invoke(app, ["index", str(bad), "-c", str(col), "--id-field", "id", "--model", "fake-bow"])
    # exit 1 (session 23): every record refused, nothing stored, which a script must be able to tell
    assert res.exit_code == 1 and "nothing was stored, so no collection was made" in res.output
    assert f"skipped: {bad}:1: text: no such column (columns: id,  text); column ' text' has spaces around its name" \
        in res.output
    assert not col.exists()
    (tmp_path / "made").mkdir()  # a folder the user made stays, empty
    res = cli.invoke(app, ["index", str(bad), "-c", str(tmp_path / "made"), "--id-field", "id", "--model", "fake-bow",
                           "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["created"] is False
    assert list((tmp_path / "made").iterdir()) == []
    res = cli.invoke(app, ["index", str(good), "-c", str(col), "--id-field", "id", "--model", "fake-bow",
                           "--bm25"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["index", str(bad), "-c", str(col), "--id-field", "id", "--json"])  # an existing one stays
    assert res.exit_code == 1 and json.loads(res.stdout)["created"] is True and (col / "manifest.json").exists()
    with Collection.open(col, FakeEncoder(dim=32, name="fake-bow")) as c:
        assert len(c) == 1 and c.manifest["retrievers"] == ["dense", "bm25"]


# Markdown front matter `title: 1984` (a title YAML reads as a number) was passed over: the document was titled by
# its file name ("novel") and embedded under that title.
def test_a_front_matter_title_yaml_reads_as_a_number_is_the_title(tmp_path):
    from slimvec.ingest import read_sources

    (tmp_path / "novel.md").write_text("---\ntitle: 1984\nyear: 1949\n---\nBig Brother is watching.\n", encoding="utf-8")
    (tmp_path / "flag.md").write_text("---\ntitle: true\n---\nA yes-or-no title is no title.\n", encoding="utf-8")
    docs = {d.id: d for d in read_sources([tmp_path])}
    assert docs["novel.md"].title == "1984" and docs["novel.md"].metadata["year"] == 1949
    assert docs["flag.md"].title == "flag"


# `slimvec import --profile-file p.json` whose profile names another model built the collection with the export's
# model in its place, silently: the vectors are kept, so the profile's model cannot be had that way.
def test_import_refuses_a_profile_naming_another_model(tmp_path, fake_models):
    from slimvec.interop.rows import export_collection, import_records
    from slimvec.profiles import profile_from_dict

    factory = registry.load("encoder", "fake-bow")
    register_encoder("fake-bow-alias", factory)
    try:
        with Collection.create(tmp_path / "col", model="fake-bow") as col:
            col.add([Document("a", "alpha beta"), Document("b", "gamma delta")])
            export_collection(col, f"parquet:{tmp_path / 'e.parquet'}")
        source = f"parquet:{tmp_path / 'e.parquet'}"
        other = profile_from_dict({"name": "other", "model": NEW, "index": "hnsw"})
        with pytest.raises(ConfigError, match=f"^{source}: profile 'other' names model '{NEW}', but the exported vectors "
                                              "are of 'fake-bow', which an import keeps"):
            import_records(source, tmp_path / "imp", profile=other)
        assert not (tmp_path / "imp").exists()
        alias = profile_from_dict({"name": "alias", "model": "fake-bow-alias", "index": "hnsw"})
        with import_records(source, tmp_path / "imp", profile=alias) as col:
            assert len(col) == 2 and col.manifest["model"] == "fake-bow" and col.search("alpha", k=1)[0].id == "a"
    finally:
        registry.unregister("encoder", "fake-bow-alias")


def test_bm25_terms_holding_line_separators_reload_without_a_rebuild(tmp_path):
    """A custom token_pattern can keep U+2028, U+0085 or a form feed inside a term; the saved term list is JSON
    lines written unescaped, and splitting it on every Unicode line break cut such terms in two, so the saved
    index never loaded (rebuilt from the store at every open)."""
    from slimvec.retrievers.bm25 import Bm25Config, Bm25Retriever

    bm25 = {"token_pattern": "[^ ]+", "stemmer": None, "stopwords": None}
    odd = ["a\u2028b", "c\x85d", "e\x0cf", "plain"]
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=256), retrievers=["bm25"],
                           profile=load_profile("bm25").model_copy(update={"bm25": bm25})) as col:
        col.add([Document("d0", " ".join(odd)), Document("d1", "other words")])
        assert [h.id for h in col.search("c\x85d", mode="bm25", k=2)] == ["d0"]
    loaded = Bm25Retriever.load(tmp_path / "c" / "index", Bm25Config.from_dict(bm25))
    assert loaded is not None and all(t in loaded.vocab for t in odd)


def test_k_and_rerank_depth_take_numpy_integers_but_not_other_numpy_values():
    """k=np.int64(3) (a count from numpy or pandas code) was refused as 'not a valid integer'."""
    import numpy as np

    from slimvec.search.options import SearchOptions

    opts = SearchOptions.of(k=np.int64(3), rerank_depth=np.int32(20))
    assert (opts.k, opts.rerank_depth) == (3, 20) and type(opts.k) is int
    for bad in (np.float64(3.0), np.bool_(True), np.array([3])):
        with pytest.raises(ConfigError, match="k"):
            SearchOptions.of(k=bad)


def test_a_record_whose_title_is_an_integer_keeps_it_as_its_title(tmp_path):
    """JSONL "title": 1984 was a skipped record ("expected a string"), while an integer id is taken as its text and
    a Markdown front matter `title: 1984` is a title; a boolean or a list still names the field."""
    from slimvec.errors import IngestError
    from slimvec.ingest.sources import read_sources
    from slimvec.ingest.tables import FieldMap

    path, fields = tmp_path / "books.jsonl", FieldMap(id_field="id")
    path.write_text('{"id": 1, "title": 1984, "text": "Big Brother is watching."}\n', encoding="utf-8")
    [doc] = list(read_sources([str(path)], fields=fields, strict=True))
    assert (doc.id, doc.title) == ("1", "1984")
    for bad, shown in (("true", "boolean"), ("[1]", "array"), ("1.5", "number")):
        path.write_text(f'{{"id": 1, "title": {bad}, "text": "x"}}\n', encoding="utf-8")
        with pytest.raises(IngestError, match=f"books.jsonl:1: title: expected a string or integer, got {shown}"):
            list(read_sources([str(path)], fields=fields, strict=True))


def test_migrating_to_a_model_that_reads_fewer_tokens_cuts_chunks_at_its_maximum(tmp_path):
    """A collection whose profile records a chunk length above the new model's maximum (an import records the
    export's, e.g. 510 for bge-small) could not be migrated to MiniLM: "chunk tokens 510 exceed the model's
    maximum of 254", with no option to change it."""
    from slimvec.migrate.runner import migrate

    with registered_encoders(FakeEncoder(dim=24, name="fake-short", max_tokens=32)):
        path = tmp_path / "c"
        docs = [Document(f"d{i}", " ".join(f"word{(i * 7 + j) % 90}" for j in range(40 + i % 30))) for i in range(60)]
        with Collection.create(path, encoder=FakeEncoder(dim=16, max_tokens=128), chunk_tokens=100) as col:
            col.add(docs)
            assert col.manifest["chunking"]["max_tokens"] == 100
        done = migrate(path, "fake-short", sample=40, batch=16)
        assert done["switched"] is True
        with Collection.open(path) as col:
            assert col.manifest["model"] == "fake-short" and col.manifest["chunking"]["max_tokens"] == 32
            assert len(col) == 60 and col.search("word3 word10", k=3)


@pytest.mark.parametrize("codec, message", [
    ("pq:7x8", "pq: dimension 32 is not a multiple of m=7"),
    ("truncate:10000", "cannot truncate 32-d vectors to 10000"),
    ("pca:64 > int8", "cannot project 32-d vectors to 64"),
    ("pca:16 > pq:3x8", "pq: dimension 16 is not a multiple of m=3"),
    ("rotate > pq:5x8", "pq: dimension 32 is not a multiple of m=5"),
])
def test_a_codec_that_cannot_code_the_models_vectors_is_refused_when_the_collection_is_made(tmp_path, codec, message):
    """Such a codec failed at every fit, which the retriever reads as 'too few rows yet', so search stayed exact
    float32 for good (same RAM per document as no codec) and nothing said so."""
    prof = load_profile("int8").model_copy(update={"codec": codec, "rescore": False})
    with pytest.raises(ConfigError, match=f"codec '{codec}' cannot code this model's 32-d vectors: {message}"):
        Collection.create(tmp_path / "c", encoder=FakeEncoder(dim=32), profile=prof)
    assert not (tmp_path / "c" / "manifest.json").exists()
    fits = load_profile("int8").model_copy(update={"codec": "pca:24 > pq:3x8", "rescore": False})
    docs = [Document(f"d{i}", " ".join(f"w{(i * 3 + j) % 50}" for j in range(20))) for i in range(400)]
    with Collection.create(tmp_path / "ok", encoder=FakeEncoder(dim=32), profile=fits) as col:
        col.add(docs)
        assert col.info()["indexes"]["dense"]["kind"] != "exact" and col.search("w3 w4", k=3)


def test_a_filter_value_holding_a_nul_is_a_one_line_error_not_an_empty_answer(tmp_path):
    """Stored text and metadata refuse a NUL character, so a filter value holding one can match nothing: it
    returned [] without a word, where a lone surrogate (the same kind) was already refused."""
    from slimvec.errors import FilterError

    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as col:
        col.add([Document("a", "hello world", metadata={"tag": "x"})])
        with pytest.raises(FilterError, match="tag: value 'x\\\\x00' contains a NUL character"):
            col.search("hello", filter={"tag": "x\x00"})
        with pytest.raises(FilterError, match="tag: value"):
            col.search("hello", filter={"tag": {"$in": ["x", "y\x00"]}})
        assert [h.id for h in col.search("hello", filter={"tag": "x"})] == ["a"]


def test_eval_with_judgements_of_another_corpus_fails_before_encoding(tmp_path):
    """qrels whose relevant documents are none of the corpus's (another dataset's) gave nDCG@10 0 with no warning."""
    from test_s13_b_break_fixes import _beir

    other = _beir(tmp_path / "other", "q0\tx17\t1\nq1\tx18\t2\nq1\td1\t0\n")
    res = CliRunner().invoke(app, ["eval", str(other), "--model", "wordllama", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "none of the 2 documents judged relevant is in" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "out" / "collections").exists()
    one = _beir(tmp_path / "one", "q0\tx17\t1\nq1\td1\t1\n")  # some judged documents missing: evaluated
    res = CliRunner().invoke(app, ["eval", str(one), "--model", "wordllama", "--out", str(tmp_path / "out1")])
    assert res.exit_code == 0, res.output


def test_a_file_in_the_way_of_a_collection_export_or_output_folder_is_named_in_one_line(tmp_path):
    """The OS error named a path inside the user's (FILE/col/vectors, FILE/collections, x.parquet.tmp)."""
    from test_s13_b_break_fixes import _beir

    blocker = tmp_path / "FILE"
    blocker.write_text("not a folder")
    docs = tmp_path / "d.jsonl"
    docs.write_text('{"_id": "a", "text": "hello world"}\n', encoding="utf-8")
    cases = [
        (["index", docs, "-c", blocker / "col", "--model", "wordllama"],
         f"{blocker} is a file, not a folder: collection {blocker / 'col'} cannot be made inside it"),
        (["index", docs, "-c", blocker, "--model", "wordllama"],
         f"{blocker} is a file, not a folder: collection {blocker} cannot be made"),
        (["eval", _beir(tmp_path / "ds", "q0\td0\t1\n"), "--model", "wordllama", "--out", blocker],
         f"{blocker} is a file, not a folder: evaluation output folder {blocker} cannot be made"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert res.exit_code == 2 and res.output.strip() == f"error: {message}", res.output
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document("a", "hello world")])
    for target, message in ((f"parquet:{tmp_path / 'missing' / 'x.parquet'}",
                             f"{tmp_path / 'missing'}: no such folder for export {tmp_path / 'missing' / 'x.parquet'}"),
                            (f"qdrant:{blocker / 'q'}", f"{blocker} is a file, not a folder: export {blocker / 'q'}")):
        res = CliRunner().invoke(app, ["export", str(tmp_path / "col"), "--to", target])
        assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert blocker.read_text() == "not a folder" and not (tmp_path / "missing").exists()


def test_a_static_models_own_fusion_weights_do_not_follow_a_migration_but_a_users_do(tmp_path):
    """hybrid on a static model records the model's weights ([0.2, 1.0]); migrating to another model carried
    them over as if the user had chosen them, so the new model's ranking would be weighted as the weak one's."""
    from slimvec.migrate.runner import migrate

    class Static(FakeEncoder):
        fusion_weight = 0.2

    with registered_encoders(Static(dim=16, name="fake-static"), FakeEncoder(dim=24, name="fake-dense")):
        docs = [Document(f"d{i}", " ".join(f"word{(i * 7 + j) % 90}" for j in range(30))) for i in range(60)]
        for name, weights, after in (("model", None, None), ("user", (0.3, 1.0), [0.3, 1.0])):
            prof = load_profile("hybrid").model_copy(update={"fusion_weights": weights})
            with Collection.create(tmp_path / name, model="fake-static", profile=prof) as col:
                col.add(docs)
                assert col.info()["fusion"]["weights"] == ([0.2, 1.0] if weights is None else list(weights))
            assert migrate(tmp_path / name, "fake-dense", sample=40, batch=16)["switched"] is True
            with Collection.open(tmp_path / name) as col:
                assert col.manifest["model"] == "fake-dense" and col.info()["fusion"]["weights"] == after, name
                assert not col.manifest.get("fusion_weights_from_model")


def test_a_name_registered_again_loads_the_new_encoder_not_the_one_cached_under_it():
    """load_encoder caches per name; a name unregistered and registered again (a plug-in reloaded, two tests using
    one name) loaded the first encoder, so a collection was made with another model's dimension."""
    from slimvec.encoders.registry import load_encoder

    with registered_encoders(FakeEncoder(dim=16, name="fake-again")):
        assert load_encoder("fake-again").dim == 16
    with registered_encoders(FakeEncoder(dim=32, name="fake-again")):
        assert load_encoder("fake-again").dim == 32
