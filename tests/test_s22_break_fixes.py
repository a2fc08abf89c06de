"""Faults found breaking a6a2c7e as a newcomer would (session 22): CSV quoting, BEIR evaluation inputs, LlamaIndex
hybrid query fields, the search page's report link, metadata of library types."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, registered_encoders

from slimvec import Collection, Document
from slimvec.errors import ConfigError, IngestError
from slimvec.ingest import read_sources
from slimvec.profiles import load_profile


def _read(path: Path) -> tuple[list[Document], list[str]]:
    errors: list[IngestError] = []
    docs = list(read_sources([path], on_error=errors.append))
    return docs, [str(e) for e in errors]


# ---- CSV quoting --------------------------------------------------------------------------------------------------
# Before: csv's lenient reader took a quote that is never closed as one cell running to the end of the file: every
# later record became that cell's text, stored without a word (pandas says "EOF inside string").
@pytest.mark.parametrize("body, line", [
    ('a,"it said ""hi"" then\nb,second row\nc,third row\n', 2),  # an opening quote never closed
    ('a,first\nb,"second\r\nc,third\r\nd,fourth', 3),               # CRLF, no final newline
    ('a,first\nb,"tail', 3),                                           # the last record, one line
])
def test_a_csv_quote_never_closed_is_an_error_naming_its_line_not_swallowed_records(tmp_path, body, line):
    path = tmp_path / "t.csv"
    path.write_text("_id,text\n" + body, encoding="utf-8", newline="")
    docs, errors = _read(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:{line}: malformed CSV: a quoted field opened in this "
                                                     "record is never closed")
    assert all('"' not in d.text and "\n" not in d.text for d in docs)  # no record holds later records as its text
    assert [d.id for d in docs] == ["a"] * (line > 2)


# Before: text after a closing quote ('"it "hi" ok') was glued into the cell ('it hi" ok'), the quotes mangled.
def test_text_after_a_closing_quote_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('_id,text\na,fine\nb,"it "hi" ok\nc,later\n', encoding="utf-8")
    docs, errors = _read(path)
    assert [d.id for d in docs] == ["a"]
    assert errors == [f"{path}:3: malformed CSV: ',' expected after '\"' (text after a closing quote; a quote inside "
                      'a quoted field is written twice: "")']


def test_well_formed_quoting_still_reads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbf_id,text,n\r\na,"two\r\nlines, ""quoted""",1\r\nb,5" screen,2\r\n')
    docs, errors = _read(path)
    assert errors == []
    assert [(d.id, d.text, d.metadata) for d in docs] == [("a", 'two\r\nlines, "quoted"', {"n": 1}),
                                                           ("b", '5" screen', {"n": 2})]


def test_a_strict_add_from_a_csv_with_an_unclosed_quote_leaves_the_collection_as_it_was(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('_id,text\nx,new row\ny,"open\nz,more\n', encoding="utf-8")
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document("d1", "stored before")])
        with pytest.raises(IngestError, match=r"t\.csv:3: malformed CSV"):
            col.add(read_sources([path], strict=True))
        assert [d["id"] for d in col.store.iter_documents()] == ["d1"]


# ---- BEIR evaluation inputs -----------------------------------------------------------------------------------------
def _beir(root: Path, corpus: list[dict], qrels: str) -> Path:
    data = root / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "river water"}) + "\n"
                                        + json.dumps({"_id": "q2", "text": "mountain snow"}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return data


_CORPUS = [{"_id": "d1", "title": "Rivers", "text": "river water flows"},
           {"_id": "d2", "title": "Mountains", "text": "mountain snow melts"},
           {"_id": "d3", "title": "Deserts", "text": "sand and heat"}]


# Before: eval, sweep and plan read corpus.jsonl as a plain table, which refuses empty text, so a BEIR corpus
# holding a title-only record (TREC-COVID holds thousands) stopped the run at its preflight ("text: empty"),
# while `slimvec index` of the same folder stores the record by its title, as BEIR embeds title + text.
def test_eval_indexes_a_title_only_beir_record_as_slimvec_index_does(tmp_path):
    from slimvec.evaluation.runner import run_eval

    corpus = [*_CORPUS, {"_id": "d4", "title": "Glaciers of the mountain snow", "text": ""}]
    data = _beir(tmp_path, corpus, "q1\td1\t1\nq2\td4\t1\n")
    assert [d.id for d in read_sources([data])] == ["d1", "d2", "d3", "d4"]  # what `slimvec index DIR` stores
    with registered_encoders(FakeEncoder(name="fake-eval")):
        profile = load_profile("exact-f32").model_copy(update={"model": "fake-eval"})
        result = run_eval(data, profile, out=tmp_path / "out")
        with Collection.open(result["collection"]) as col:
            assert len(col) == 4 and col.get("d4").title == "Glaciers of the mountain snow"
    assert result["metrics"]["recall@100"] == 1.0
    with registered_encoders(FakeEncoder(name="fake-eval")):  # --corpus naming the dataset's own corpus.jsonl
        named = run_eval(data, profile, out=tmp_path / "out2", corpus=data / "corpus.jsonl")
    assert named["metrics"] == result["metrics"]


def test_eval_still_refuses_a_beir_record_with_neither_title_nor_text(tmp_path):
    from slimvec.evaluation.runner import run_eval

    data = _beir(tmp_path, [*_CORPUS, {"_id": "d4", "title": "", "text": " "}], "q1\td1\t1\n")
    with registered_encoders(FakeEncoder(name="fake-eval")):
        profile = load_profile("exact-f32").model_copy(update={"model": "fake-eval"})
        with pytest.raises(IngestError, match=r"corpus\.jsonl:4: text: empty \(and no title\)"):
            run_eval(data, profile, out=tmp_path / "out")
    assert not (tmp_path / "out" / "collections").exists() or not any((tmp_path / "out" / "collections").iterdir())


# Before: qrels whose grades are all 0 (or negative: judged, none relevant) passed the preflight, the corpus was
# embedded and searched, and eval printed nDCG@10 0.0 as the profile's result.
@pytest.mark.parametrize("qrels", ["q1\td1\t0\nq2\td2\t0\n", "q1\td1\t-1\nq2\td3\t0\n"])
def test_eval_refuses_qrels_that_judge_no_document_relevant_before_any_encoding(tmp_path, qrels):
    from slimvec.evaluation.runner import run_eval

    data = _beir(tmp_path, _CORPUS, qrels)
    enc = FakeEncoder(name="fake-eval")
    with registered_encoders(enc):
        profile = load_profile("exact-f32").model_copy(update={"model": "fake-eval"})
        with pytest.raises(IngestError, match=r"test\.tsv: no judgement marks a document relevant"):
            run_eval(data, profile, out=tmp_path / "out")
    assert not (tmp_path / "out" / "collections").exists() or not any((tmp_path / "out" / "collections").iterdir())


# ---- LlamaIndex hybrid query fields ---------------------------------------------------------------------------------
def _hybrid_store(tmp_path: Path):  # noqa: ANN202 - a LlamaIndex store
    from slimvec.integrations.llama_index import SlimvecVectorStore

    col = Collection.create(tmp_path / "li", encoder=FakeEncoder(), profile="hybrid")
    col.add([Document(f"d{i}", t) for i, t in enumerate(["apple banana cherry", "apple pie recipe", "banana bread",
                                                         "cherry tart with apple", "grape juice"])])
    return SlimvecVectorStore(col), col


# Before: VectorStoreQuery.alpha (LlamaIndex: 1 vector search, 0 text search) and hybrid_top_k were ignored in mode
# HYBRID, so `as_retriever(vector_store_query_mode="hybrid", alpha=1.0)` fused at equal weights and returned
# similarity_top_k nodes; sparse_top_k and alpha in other modes did nothing either.
def test_llama_index_hybrid_alpha_weighs_dense_against_bm25(tmp_path):
    pytest.importorskip("llama_index.core")
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    store, col = _hybrid_store(tmp_path)
    text = "apple banana"

    def scores(**kw) -> dict[str, float]:
        r = store.query(VectorStoreQuery(query_str=text, similarity_top_k=5, mode=VectorStoreQueryMode.HYBRID, **kw))
        return dict(zip(r.ids, r.similarities))

    for alpha in (1.0, 0.0, 0.3):
        expected = col.search(text, k=5, mode="hybrid", fusion_weights=(alpha, 1.0 - alpha))
        assert scores(alpha=alpha) == pytest.approx({h.id: h.score for h in expected})
    assert scores(alpha=1.0) != pytest.approx(scores(alpha=0.0))
    assert scores() == pytest.approx({h.id: h.score for h in col.search(text, k=5, mode="hybrid")})
    r = store.query(VectorStoreQuery(query_str=text, similarity_top_k=5, hybrid_top_k=2,
                                     mode=VectorStoreQueryMode.HYBRID))
    assert r.ids == [h.id for h in col.search(text, k=2, mode="hybrid")]
    col.close()


@pytest.mark.parametrize("fields, message", [
    ({"alpha": 0.5}, "alpha applies to query mode 'hybrid', and this query runs mode 'default'"),
    ({"hybrid_top_k": 2}, "hybrid_top_k applies to query mode 'hybrid'"),
    ({"alpha": 0.5, "mode": "mmr"}, "runs mode 'mmr'"),
    ({"sparse_top_k": 3, "mode": "hybrid"}, "sparse_top_k is not supported"),
    ({"alpha": 1.5, "mode": "hybrid"}, r"alpha must be a number in \[0, 1\]"),
])
def test_llama_index_hybrid_fields_that_would_change_nothing_are_refused(tmp_path, fields, message):
    pytest.importorskip("llama_index.core")
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    store, col = _hybrid_store(tmp_path)
    fields = {**fields, "mode": VectorStoreQueryMode(fields.get("mode", "default"))}
    with pytest.raises(ConfigError, match=message):
        store.query(VectorStoreQuery(query_str="apple", similarity_top_k=3, **fields))
    col.close()


# ---- the search page's report link ----------------------------------------------------------------------------------
# Before: the report's URL was "/report/NAME/view" with the collection's (directory's) name unquoted, so a '#' or '?'
# in it cut the path short: the page's report tab showed "no collection named 'my col'" instead of the report.
@pytest.mark.parametrize("name", ["my col#1", "q?x", "a&b<c>"])
def test_the_report_of_a_collection_whose_name_holds_url_syntax_is_served(tmp_path, name):
    import html
    import re
    from urllib.parse import quote

    import httpx
    from _server_util import make_collection

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    col = make_collection(tmp_path / name)
    (tmp_path / name / "report.html").write_text("<html>the report</html>", encoding="utf-8")
    try:
        with server_thread(create_app({name: col})) as url:
            status = httpx.get(f"{url}/api/collections/{quote(name, safe='')}/report").json()
            assert status["available"]
            assert httpx.get(url + status["url"]).text == "<html>the report</html>"
            page = httpx.get(f"{url}/report/{quote(name, safe='')}")
            src = html.unescape(re.search(r'<iframe src="([^"]*)"', page.text)[1])
            assert httpx.get(url + src).text == "<html>the report</html>"
    finally:
        col.close()


# ---- metadata of odd types ------------------------------------------------------------------------------------------
# Before: a numpy boolean in metadata (LangChain metadatas built from a DataFrame) was refused as "unsupported value
# of type bool" (numpy 2 names numpy.bool_ "bool"), which reads as if Python's bool were refused.
# Since session 23 numpy scalars are stored as the Python values they hold (test_s23_fixes); arrays stay refused.
@pytest.mark.parametrize("value, named", [(np.array([True]), "numpy.ndarray"), (np.array([3]), "numpy.ndarray"),
                                          (datetime.date(2024, 1, 2), "datetime.date")])
def test_metadata_of_a_library_type_is_refused_naming_its_library(tmp_path, value, named):
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        with pytest.raises(IngestError) as e:
            col.add([Document("d1", "text", metadata={"k": value})])
        assert f"k: unsupported value of type {named} (metadata holds JSON values" in str(e.value)
        assert len(col) == 0


# ---- framework stores: encoder= among the create options ------------------------------------------------------------
# Before: `SlimvecVectorStore(path, encoder=...)` (encoder is a keyword of Collection.create, as the documented
# create options are) failed with Python's "Collection.create() got multiple values for keyword argument 'encoder'",
# and on reopening was refused as an option that cannot be checked.
@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_a_framework_store_opens_or_creates_with_the_encoder_given_as_an_option(tmp_path, framework):
    pytest.importorskip("langchain_core" if framework == "langchain" else "llama_index.core")
    from importlib import import_module

    from slimvec.errors import CollectionError

    store_class = import_module(f"slimvec.integrations.{framework}").SlimvecVectorStore

    def collection(store):  # noqa: ANN001, ANN202 - either framework's store
        return store.collection if framework == "langchain" else store.client

    made = collection(store_class(tmp_path / "c", encoder=FakeEncoder()))
    made.add([Document("d1", "river water")])
    made.close()
    with collection(store_class(tmp_path / "c", encoder=FakeEncoder())) as again:  # reopened with the same encoder
        assert again.manifest["model"] == "fake-bow" and [h.id for h in again.search("river", k=1)] == ["d1"]
    with pytest.raises(CollectionError, match="built with model 'fake-bow', not 'other'"):
        store_class(tmp_path / "c", encoder=FakeEncoder(name="other"))


# ---- JSONL that is indented JSON ------------------------------------------------------------------------------------
# Before: an indented JSON export saved as .jsonl was read line by line, and every line was reported malformed
# ("Expecting value", "Extra data", ...): one error per line of the file, none saying it is not JSON Lines.
@pytest.mark.parametrize("value, what", [([{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}], "array"),
                                         ({"_id": "a", "text": "x"}, "object")])
def test_an_indented_json_file_named_jsonl_is_one_error_saying_so(tmp_path, value, what):
    path = tmp_path / "export.jsonl"
    path.write_text("\n" + json.dumps(value, indent=2) + "\n", encoding="utf-8")
    docs, errors = _read(path)
    assert docs == [] and len(errors) == 1
    assert errors[0].startswith(f"{path}:2: not JSON Lines: the file is one indented JSON {what}")


def test_a_jsonl_file_opening_with_a_broken_record_still_reads_the_others(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"_id": "a", "text": \n{"_id": "b", "text": "fine"}\n', encoding="utf-8")
    docs, errors = _read(path)
    assert [d.id for d in docs] == ["b"] and len(errors) == 1 and errors[0].startswith(f"{path}:1: malformed JSON")


# ---- calibrate on broken labels ---------------------------------------------------------------------------------------
# Before: `slimvec calibrate` passed the split's query texts to the search unchecked, so an empty query text stopped it
# with "query is empty", naming neither queries.jsonl nor the query; qrels judging nothing relevant said only
# "calibration needs both relevant and non-relevant hits". Both now stop it as eval's preflight does.
@pytest.mark.parametrize("damage, message", [
    ("query", "queries.jsonl: query 'q2': text: empty (or only invisible characters)"),
    ("qrels", "test.tsv: no judgement marks a document relevant"),
])
def test_calibrate_names_the_file_and_query_of_bad_labels(tmp_path, damage, message):
    from typer.testing import CliRunner

    from slimvec.cli import app

    data = _beir(tmp_path, _CORPUS, "q1\td1\t1\nq2\td2\t1\n" if damage == "query" else "q1\td1\t0\nq2\td2\t0\n")
    if damage == "query":
        (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "river water"}) + "\n"
                                            + json.dumps({"_id": "q2", "text": "\u200b"}) + "\n")
    with Collection.create(tmp_path / "col", encoder=FakeEncoder(name="fake-eval")) as col:
        col.add(list(read_sources([data])))
    with registered_encoders(FakeEncoder(name="fake-eval")):
        res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "col"), str(data), "--split", "test"])
    assert res.exit_code == 2 and message in res.output
    with Collection.open(tmp_path / "col", encoder=FakeEncoder(name="fake-eval")) as col:
        assert col.calibrators == {}  # nothing stored


# ---- a file that is not what its extension says -----------------------------------------------------------------------
# Before: such a file was reported by a symptom of reading it as its extension says: a PDF saved as .txt as "invalid
# UTF-8 at byte 10", a .docx renamed .md as "NUL character at position 5", a .docx renamed .pdf as "cannot read PDF:
# Stream has ended unexpectedly", a gzipped page as "invalid UTF-8 at byte 1", an .xlsx renamed .csv as "invalid
# UTF-8", a Parquet file named .csv by a header of binary "columns", one named .jsonl by one error per line.
@pytest.mark.parametrize("name, content, says", [
    ("paper.txt", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", "a PDF document, not text as its extension '.txt' "
                                                                      "says; name it .pdf to read its text"),
    ("notes.md", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "a ZIP archive (a .docx, .xlsx, .odt, .epub or "
                                                                    ".zip), not text as its extension '.md' says; export it as .txt, .html, .pdf, .csv or .jsonl"),
    ("report.pdf", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "a ZIP archive (a .docx, .xlsx, .odt, .epub or "
                                                                      ".zip), not a PDF as its extension '.pdf' says; export it as .txt, .html, .pdf, .csv or .jsonl"),
    ("page.html", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe", "gzip-compressed data, not text as its "
                                                                       "extension '.html' says; decompress it first"),
    ("scan.pdf", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image, not a PDF as its extension '.pdf' says"),
])
def test_a_file_whose_content_is_another_format_is_refused_naming_the_format(tmp_path, name, content, says):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / name).write_bytes(content)
    (tmp_path / "docs" / "fine.txt").write_text("plain text", encoding="utf-8")
    docs, errors = _read(tmp_path / "docs")
    assert [d.id for d in docs] == ["fine.txt"]
    assert errors == [f"{tmp_path / 'docs' / name}: the file is {says}"]


@pytest.mark.parametrize("text", ["PAR1 of the plan: read it", "GIF8 is not a GIF", "BZh, a word", "%PDF-free notes"])
def test_text_that_opens_like_a_signature_is_still_text(tmp_path, text):
    path = tmp_path / ("t.md" if text.startswith("%") else "t.txt")
    path.write_text(text, encoding="utf-8")
    docs, errors = _read(path)
    if text.startswith("%PDF-"):  # a whole signature: taken for a PDF, and said so
        assert docs == [] and "the file is a PDF document" in errors[0]
    else:
        assert errors == [] and docs[0].text == text


@pytest.mark.parametrize("name, content, says", [
    ("sheet.csv", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\x80\x81", "a ZIP archive (a .docx, .xlsx, .odt, "
     ".epub or .zip), not CSV text as its extension '.csv' says; export it as .txt, .html, .pdf, .csv or .jsonl"),
    ("export.jsonl", None, "a Parquet file, not JSON Lines text as its extension '.jsonl' says; name it .parquet to "
     "read its records"),
    ("export.csv", None, "a Parquet file, not CSV text as its extension '.csv' says; name it .parquet to read its "
     "records"),
])
def test_a_table_whose_content_is_another_format_is_one_error_naming_the_format(tmp_path, name, content, says):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"_id": ["a", "b"], "text": ["x", "y"]}), path, compression="none")
    else:
        path.write_bytes(content)
    docs, errors = _read(path)
    assert docs == [] and errors == [f"{path}: the file is {says}"]


# ---- CSV with CR line ends --------------------------------------------------------------------------------------------
# Before: a CSV whose lines end in a lone CR (Excel for Mac's "CSV (Macintosh)"; pandas and pyarrow read it) was
# refused whole as "malformed CSV header: new-line character seen in unquoted field - do you need to open the file in
# universal-newline mode?", a message about Python, not the file.
def test_a_csv_with_lone_cr_line_ends_reads_as_pandas_reads_it(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b'_id,text,year\ra,first row,2020\rb,"two\rlines",2021\r,no id,2022\rd,last,2023')
    docs, errors = _read(path)
    assert [(d.id, d.text, d.metadata) for d in docs] == [("a", "first row", {"year": 2020}),
                                                           ("b", "two\rlines", {"year": 2021}),
                                                           ("d", "last", {"year": 2023})]
    assert errors == [f"{path}:5: _id: empty"]  # lines counted at each CR, as an editor shows them


# Before: an upload of an .xlsx or a Parquet file was refused as "upload line 1: invalid UTF-8 at byte 10" or one
# error per line; after the first-bytes check it said "as its extension '.jsonl' says; name it .parquet", the
# extension of the server's temporary file and advice an upload cannot follow.
def test_an_upload_of_another_format_is_refused_naming_it_and_stores_nothing(tmp_path):
    import httpx
    import pyarrow as pa
    import pyarrow.parquet as pq
    from _server_util import AUTH, KEY, make_collection, snapshot

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    pq.write_table(pa.table({"_id": ["a"], "text": ["x"]}), tmp_path / "t.parquet", compression="none")
    col = make_collection(tmp_path / "col")
    before = snapshot(col)
    try:
        with server_thread(create_app({"col": col}, api_key=KEY)) as url:
            for content, kind in ((b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x80\x81", "a ZIP archive"),
                                  ((tmp_path / "t.parquet").read_bytes(), "a Parquet file")):
                r = httpx.post(f"{url}/api/collections/col/documents/upload", headers=AUTH,
                               files={"file": ("docs.jsonl", content)})
                assert r.status_code == 400
                assert r.json()["detail"].startswith(f"upload: the file is {kind}")
                assert r.json()["detail"].endswith("not JSON Lines (an upload is read as JSON Lines: one object per "
                                                   "line)")
        assert snapshot(col) == before
    finally:
        col.close()


# Before: a CSV saved by Excel where the decimal mark is a comma (columns separated by ';') was refused as "_id: no
# such column (columns: _id;text;year)", with no word of the separator.
@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_separated_by_another_character_says_so(tmp_path, sep):
    path = tmp_path / "t.csv"
    path.write_text(f"_id{sep}text{sep}year\na{sep}first{sep}2020\n", encoding="utf-8")
    docs, errors = _read(path)
    assert docs == [] and len(errors) == 1
    assert errors[0].startswith(f"{path}:1: _id: no such column")
    assert errors[0].endswith(f"; the header is separated by {sep!r}, not commas: save the file with commas between "
                              "columns (slimvec reads comma-separated values)")


# ---- serve on a port in use -------------------------------------------------------------------------------------------
# Before: `slimvec serve` on a port another server holds went through uvicorn's start-up and ended with its log lines
# ("ERROR: [Errno 98] error while attempting to bind ...", "Application shutdown complete.") and exit status 3, not
# the one line and status 2 of a user error.
def test_serve_on_a_port_in_use_is_one_line_with_status_2(tmp_path):
    import socket

    from typer.testing import CliRunner

    from slimvec.cli import app

    with Collection.create(tmp_path / "col", encoder=FakeEncoder(name="fake-serve")) as col:
        col.add([Document("d1", "river water")])
    with socket.socket() as busy, registered_encoders(FakeEncoder(name="fake-serve")):
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = CliRunner().invoke(app, ["serve", str(tmp_path / "col"), "--port", str(port)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use (another server?): choose "
                     "another --port"]


# ---- tune on a profile with nothing to tune ---------------------------------------------------------------------------
# Before: tune on an exact collection checked the queries first: three queries were refused with "tune needs at least
# 10 queries", and the user who gathered ten then heard that the profile has nothing to tune.
@pytest.mark.parametrize("queries", [["one query", "another"], ["same"] * 12, ["fine"] * 10 + [" "]])
def test_tune_on_a_profile_with_nothing_to_tune_says_so_first(tmp_path, queries):
    with Collection.create(tmp_path / "col", encoder=FakeEncoder()) as col:
        col.add([Document("d1", "river water"), Document("d2", "mountain snow")])
        with pytest.raises(ConfigError, match="'exact-f32' profile has nothing to tune"):
            col.tune(queries)
