"""Faults found by using the CLI, server start-up, ingest and evaluation as a demanding user would (s13-b).

Each test feeds one kind of bad or real-world input and checks for a one-line error (no traceback, nothing
done first) or the right result.
"""

from __future__ import annotations

import codecs
import json
import math
from pathlib import Path

import pytest
from fakes import FakeEncoder
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.errors import CollectionError, ConfigError
from slimvec.ingest import read_sources
from slimvec.ingest.files import read_file

runner = CliRunner()


def run(*args: object) -> tuple[int, str, object]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout + res.stderr, res.exception


def one_line_error(code: int, output: str, exc: object) -> str:
    """The error line of a CLI run that failed cleanly (exit 2, no traceback)."""
    assert code == 2, output
    assert isinstance(exc, SystemExit), exc
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


# ---- a damaged manifest is a one-line error, not a traceback ------------------------------------------------

@pytest.fixture()
def fake_col(tmp_path: Path) -> Path:
    path = tmp_path / "col"
    with Collection.create(path, encoder=FakeEncoder()) as col:
        col.add([Document("a", "alpha beta"), Document("b", "gamma delta")])
    return path


def _edit_manifest(path: Path, edit) -> None:
    mpath = path / "manifest.json"
    data = json.loads(mpath.read_text())
    mpath.write_text(json.dumps(edit(data)))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda m: None, "manifest must be a JSON object"),
    (lambda m: [m], "manifest must be a JSON object"),
    (lambda m: {**m, "dim": "abc"}, "'dim'"),
    (lambda m: {**m, "dim": None}, "'dim'"),
    (lambda m: {**m, "dim": True}, "'dim'"),
    (lambda m: {**m, "model": 5}, "'model'"),
    (lambda m: {**m, "model": None}, "'model'"),
    (lambda m: {**m, "retrievers": "dense"}, "'retrievers'"),
])
def test_damaged_manifest_is_one_line(fake_col: Path, edit, expected: str) -> None:
    _edit_manifest(fake_col, edit)
    with pytest.raises(CollectionError, match=expected):
        Collection.open(fake_col)
    line = one_line_error(*run("info", fake_col))
    assert "manifest.json" in line and expected.strip("'") in line


def test_format_version_as_text_is_named_as_text(fake_col: Path) -> None:
    # "1" (a string) is not version 1: the message must not read "version 1 is not supported ... (reads version 1)"
    _edit_manifest(fake_col, lambda m: {**m, "format_version": "1"})
    with pytest.raises(CollectionError, match=r"format version '1' is not supported"):
        Collection.open(fake_col)


# ---- conflicting or over-full profile options are refused, not silently half-used -----------------------------

def test_index_refuses_profile_and_profile_file(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("some text")
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"name": "mine", "codec": "float32"}))
    line = one_line_error(*run("index", tmp_path / "doc.txt", "-c", tmp_path / "col", "--profile", "binary",
                               "--profile-file", pfile))
    assert "--profile" in line and "--profile-file" in line
    assert not (tmp_path / "col").exists()


def _beir(root: Path, qrels: str, queries: dict[str, str] | None = None) -> Path:
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i in range(4):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"document {i} about topic {i}"}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for qid, text in (queries or {"q0": "topic 0", "q1": "topic 1"}).items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def test_eval_refuses_two_profiles_and_profile_with_file(tmp_path: Path) -> None:
    ds = _beir(tmp_path / "ds", "q0\td0\t1\n")
    line = one_line_error(*run("eval", ds, "--profile", "exact-f32,binary", "--out", tmp_path / "out"))
    assert "sweep" in line
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"name": "mine", "codec": "float32"}))
    line = one_line_error(*run("eval", ds, "--profile", "exact-f32", "--profile-file", pfile, "--out", tmp_path / "out"))
    assert "--profile-file" in line
    assert not (tmp_path / "out" / "collections").exists()  # refused before anything was built


# ---- evaluation inputs with nothing to evaluate fail first, in one line -------------------------------------

@pytest.mark.parametrize("qrels", ["", "query-id\tcorpus-id\tscore\n", "\n\n"])
def test_eval_with_no_judgements_fails_before_encoding(tmp_path: Path, qrels: str) -> None:
    ds = _beir(tmp_path / "ds", qrels)
    line = one_line_error(*run("eval", ds, "--model", "wordllama", "--out", tmp_path / "out"))
    assert "qrels/test.tsv" in line and "no judgements" in line
    assert not (tmp_path / "out" / "collections").exists()


def test_plan_with_every_query_in_one_half_fails_before_encoding(tmp_path: Path) -> None:
    from slimvec.evaluation.planner import held_out_halves, plan
    from slimvec.profiles import BUILTIN

    # query ids that all hash into one half of the held-out split (checked here, not assumed)
    ids = [q for q in (f"q{i}" for i in range(50)) if q in held_out_halves([q])[0]][:3]
    assert len(ids) == 3
    ds = _beir(tmp_path / "ds", "".join(f"{q}\td0\t1\n" for q in ids), {q: "topic 0" for q in ids})
    cand = BUILTIN["exact-f32"].model_copy(update={"model": "wordllama"})
    with pytest.raises(ConfigError, match="one half"):
        plan(ds, 5000, [cand], out=tmp_path / "out")
    assert not (tmp_path / "out" / "collections").exists()


@pytest.mark.parametrize("budget", [0.0, -1.0, math.nan])
def test_plan_refuses_a_budget_nothing_can_meet(tmp_path: Path, budget: float) -> None:
    ds = _beir(tmp_path / "ds", "q0\td0\t1\nq1\td1\t1\n")
    line = one_line_error(*run("plan", ds, "--max-ram-bytes-per-doc", budget, "--profiles", "exact-f32",
                               "--out", tmp_path / "out", "--write", tmp_path / "p.json"))
    assert "--max-ram-bytes-per-doc" in line
    assert not (tmp_path / "out" / "collections").exists()


# ---- text files saved as UTF-16/UTF-32 with a byte-order mark are read, not refused as bad UTF-8 ------------

@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_txt_and_md_with_utf16_or_utf32_bom_are_read(tmp_path: Path, encoding: str) -> None:
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
           "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}[encoding]
    (tmp_path / "note.txt").write_bytes(bom + "Crème brûlée\r\nsecond line".encode(encoding))
    (tmp_path / "page.md").write_bytes(bom + "# Überschrift\n\nBody text.".encode(encoding))
    txt = read_file(tmp_path / "note.txt", tmp_path)
    assert txt.text == "Crème brûlée\r\nsecond line"
    md = read_file(tmp_path / "page.md", tmp_path)
    assert md.title == "Überschrift" and md.text == "# Überschrift\n\nBody text."
    errors: list[Exception] = []
    docs = list(read_sources([str(tmp_path)], on_error=errors.append))
    assert not errors and sorted(d.id for d in docs) == ["note.txt", "page.md"]


def test_truncated_utf16_is_a_one_line_error(tmp_path: Path) -> None:
    from slimvec.errors import IngestError

    path = tmp_path / "cut.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00")  # an odd byte count
    with pytest.raises(IngestError, match=r"cut\.txt: invalid UTF-16-LE"):
        read_file(path, tmp_path)


# ---- serve: a port out of range and a directory given twice ---------------------------------------------------

@pytest.mark.parametrize("port", ["70000", "-1", "0"])
def test_serve_port_out_of_range_is_one_line(fake_col: Path, port: str) -> None:
    line = one_line_error(*run("serve", fake_col, "--port", port))
    assert "port" in line and port in line


def test_serve_same_directory_twice_names_it(fake_col: Path) -> None:
    line = one_line_error(*run("serve", fake_col, fake_col))
    assert "given twice" in line


def test_serve_collection_whose_model_cannot_load_is_one_line(fake_col: Path, tmp_path: Path) -> None:
    # A collection whose model directory moved. Not fake_col's own "fake-bow": other tests register that name in
    # this process, and the server then started and served forever.
    moved = str(tmp_path / "moved-model-dir")
    _edit_manifest(fake_col, lambda m: {**m, "model": moved})
    line = one_line_error(*run("serve", fake_col, "--port", "8765"))
    assert "moved-model-dir" in line


# ---- a failed `index` into a new collection leaves no empty collection that pins its settings ----------------

def test_failed_index_leaves_no_new_collection_behind(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": "beta"}\n')
    col = tmp_path / "col"
    line = one_line_error(*run("index", table, "-c", col, "--model", "wordllama", "--strict", "--id-field", "nope"))
    assert "t.jsonl:1: nope: missing" in line
    assert not col.exists()
    # the corrected retry, with other settings, is not refused as "built with model ..."
    res = runner.invoke(app, [str(a) for a in ("index", table, "-c", col, "--profile", "int8", "--model", "wordllama",
                                                "--json")])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["documents"] == 2


def test_failed_index_into_an_empty_directory_leaves_it_empty(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"_id": "a", "text": "alpha"}\n')
    col = tmp_path / "col"
    col.mkdir()
    one_line_error(*run("index", table, "-c", col, "--model", "wordllama", "--strict", "--id-field", "nope"))
    assert col.is_dir() and not any(col.iterdir())


def test_failed_index_into_a_stored_collection_keeps_it(fake_col: Path, tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"_id": "a", "text": "alpha"}\n')
    one_line_error(*run("index", table, "-c", fake_col, "--strict", "--id-field", "nope"))
    with Collection.open(fake_col) as col:
        assert sorted(d["id"] for d in col.store.iter_documents()) == ["a", "b"]


# ---- a split that is a path, and a profile list that names nothing ----------------------------------------

@pytest.mark.parametrize("split", ["../qrels/test", "", "qrels/test"])
def test_eval_split_that_is_a_path_is_refused(tmp_path: Path, split: str) -> None:
    from slimvec.errors import IngestError
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.ingest.beir import load_qrels

    ds = _beir(tmp_path / "ds", "q0\td0\t1\n")
    line = one_line_error(*run("eval", ds, "--split", split, "--model", "wordllama", "--out", tmp_path / "out"))
    assert "not a split name" in line
    assert not (tmp_path / "out").exists()  # no run file under a name made of the path
    with pytest.raises(IngestError, match="split"):
        load_dataset(ds).qrels(split)
    with pytest.raises(IngestError, match="split"):
        load_qrels(ds, split)


@pytest.mark.parametrize("names", [",", " , ", ""])
def test_profiles_option_naming_nothing_is_refused(tmp_path: Path, names: str) -> None:
    ds = _beir(tmp_path / "ds", "q0\td0\t1\n")
    line = one_line_error(*run("sweep", ds, "--profiles", names, "--out", tmp_path / "out"))
    assert "names no profile" in line
    line = one_line_error(*run("eval", ds, "--profile", names, "--out", tmp_path / "out"))
    assert "names no profile" in line
    assert not (tmp_path / "out").exists()


# ---- a bare string where a list is meant is one item, never its characters ------------------------------------

def test_metadata_fields_as_one_string_keeps_that_field(tmp_path: Path) -> None:
    from slimvec.ingest import FieldMap

    table = tmp_path / "t.jsonl"
    table.write_text('{"_id": "a", "text": "alpha", "year": 2020, "y": 1, "e": 2}\n')
    (doc,) = read_sources([str(table)], fields=FieldMap(metadata_fields="year"))
    assert doc.metadata == {"year": 2020}


def test_metrics_as_one_string_is_that_metric() -> None:
    from slimvec.evaluation.metrics import check_metrics, evaluate

    qrels, run_ = {"q": {"a": 1, "b": 1}}, {"q": {"x": 3.0, "a": 2.0, "b": 1.0}}
    assert evaluate(qrels, run_, metrics="recall@2") == {"recall@2": 0.5}  # a in the top 2, b not
    assert check_metrics("ndcg@10") == ["ndcg@10"]


def test_sweep_and_plan_take_one_profile_object(tmp_path: Path) -> None:
    from slimvec.evaluation.planner import plan
    from slimvec.evaluation.runner import run_sweep
    from slimvec.profiles import BUILTIN

    ds = _beir(tmp_path / "ds", "q0\td0\t1\nq1\td1\t1\n")
    prof = BUILTIN["exact-f32"].model_copy(update={"model": "wordllama"})
    (result,) = run_sweep(ds, prof, out=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert result["profile"] == "exact-f32" and result["queries"] == 2
    with pytest.raises(ConfigError, match="no profile fits"):  # evaluated as the one candidate it is
        plan(ds, 1.0, prof, out=tmp_path / "out", cache_dir=tmp_path / "cache")


# ---- HTML whose <meta> declares UTF-16 but whose bytes are ASCII/UTF-8 ------------------------------------------

@pytest.mark.parametrize("declared", ["utf-16", "UTF-16LE", "utf-16be"])
@pytest.mark.parametrize("pad", ["", "!"])  # odd and even byte counts: decoding as UTF-16 fails or gives garbage
def test_html_meta_utf16_on_byte_text_is_read_as_utf8(tmp_path: Path, declared: str, pad: str) -> None:
    page = (f'<html><head><meta charset="{declared}"><title>Café</title></head>'
            f"<body><p>Hello world paragraph{pad}</p></body></html>")
    path = tmp_path / "page.html"
    path.write_bytes(page.encode("utf-8"))
    doc = read_file(path, tmp_path)
    assert doc.title == "Café"
    assert doc.text == f"Hello world paragraph{pad}"


def test_html_with_a_utf16_bom_is_still_utf16(tmp_path: Path) -> None:
    page = '<html><head><meta charset="utf-16"><title>R</title></head><body><p>Réal text</p></body></html>'
    path = tmp_path / "page.html"
    path.write_bytes(codecs.BOM_UTF16_LE + page.encode("utf-16-le"))
    doc = read_file(path, tmp_path)
    assert (doc.title, doc.text) == ("R", "Réal text")


# ---- user text that looks like rich markup is printed as text, never parsed -----------------------------------

def test_search_query_with_markup_like_text_prints_it(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha beta gamma")
    col = tmp_path / "col"
    assert run("index", tmp_path / "docs", "-c", col, "--model", "wordllama")[0] == 0
    for query in ("[/]", "a [/x] b", "[bold]x[/bold]"):
        res = runner.invoke(app, ["search", str(col), query, "-k", "1"])
        assert res.exit_code == 0, res.output
        assert query in res.stdout  # the title shows the query as typed
    res = runner.invoke(app, ["info", str(tmp_path / "col")])
    assert res.exit_code == 0


# ---- front matter and JSONL lines that would exhaust memory or the stack are one bad file/record -------------

def _billion_laughs(levels: int) -> str:
    lines = ["---", 'a: &a ["x","x","x","x","x","x","x","x","x"]']
    prev = "a"
    for name in "bcdefghij"[:levels]:
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines + ["---", "Body text."]) + "\n"


@pytest.mark.parametrize(("front", "expected"), [
    (_billion_laughs(8), "more than 100,000 values"),  # ~390 million values once expanded
    ("---\na: &a [*a]\n---\nBody text.\n", "nested too deeply"),
    ("---\na: " + "[" * 5000 + "]" * 5000 + "\n---\nBody text.\n", "nested too deeply"),
])
def test_hostile_front_matter_is_one_skipped_file(tmp_path: Path, front: str, expected: str) -> None:
    (tmp_path / "bad.md").write_text(front)
    (tmp_path / "good.md").write_text("---\ntitle: Fine\ntags: [a, b]\n---\nBody text.\n")
    errors: list[Exception] = []
    docs = list(read_sources([str(tmp_path)], on_error=errors.append))
    assert [d.id for d in docs] == ["good.md"] and docs[0].metadata["tags"] == ["a", "b"]
    assert len(errors) == 1 and str(errors[0]).startswith(f"{tmp_path / 'bad.md'}: front matter: ")
    assert expected in str(errors[0])


def test_jsonl_line_nested_past_the_stack_is_one_bad_record(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"_id": "x", "text": "t", "m": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
                     '{"_id": "y", "text": "fine"}\n')
    errors: list[Exception] = []
    docs = list(read_sources([str(table)], on_error=errors.append))
    assert [d.id for d in docs] == ["y"]
    assert [str(e) for e in errors] == [f"{table}:1: nested too deeply"]


# ---- lone surrogates (JSON escapes, non-UTF-8 command-line bytes) and deep nesting in filters and ids ----------

@pytest.mark.parametrize("flt", [{"_id": "\ud800"}, {"_id": {"$in": ["a", "\udfff"]}}, {"topic": {"$gt": "x\ud800"}},
                                 {"$or": [{"topic": "\udc80"}]}])
def test_filter_with_a_lone_surrogate_is_a_filter_error(fake_col: Path, flt: dict) -> None:
    from slimvec.errors import FilterError

    with Collection.open(fake_col, encoder=FakeEncoder()) as col:
        with pytest.raises(FilterError, match="lone surrogate"):
            col.search("alpha", k=2, filter=flt)


@pytest.mark.parametrize("text", ['{"_id": "\\ud800"}', '{"a":' * 3000 + "1" + "}" * 3000])
def test_filter_text_with_surrogate_escape_or_deep_nesting_is_one_line(text: str) -> None:
    from slimvec.errors import FilterError
    from slimvec.store.filters import compile_filter, parse_filter

    with pytest.raises(FilterError):
        compile_filter(parse_filter(text))


def test_get_and_delete_of_an_unstorable_id_find_nothing(fake_col: Path) -> None:
    with Collection.open(fake_col) as col:
        assert col.get("\ud800") is None
        assert col.delete(["\ud800", "a"]) == 1  # the storable id is still deleted
        assert col.delete("b\udce9") == 0
        assert len(col) == 1


def test_cli_delete_with_non_utf8_bytes_names_the_terminal(fake_col: Path) -> None:
    line = one_line_error(*run("delete", fake_col, "caf\udce9.txt"))
    assert "not valid Unicode" in line


# ---- a table whose header names one column twice: one value would silently replace the other ------------------

@pytest.mark.parametrize(("header", "row", "column"), [
    ("_id,text,text", "1,first,second", "text"),
    ("_id,text,year,year", "1,t,2020,1999", "year"),
    ("_id,text,,", "1,t,x,y", ""),
])
def test_csv_with_a_repeated_column_name_is_refused(tmp_path: Path, header: str, row: str, column: str) -> None:
    table = tmp_path / "t.csv"
    table.write_text(f"{header}\n{row}\n")
    errors: list[Exception] = []
    assert list(read_sources([str(table)], on_error=errors.append)) == []
    assert len(errors) == 1 and str(errors[0]).startswith(f"{table}:1: column {column!r} appears twice")


def test_parquet_with_a_repeated_column_name_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["first"]), pa.array(["second"])],
                                        names=["_id", "text", "text"]), table)
    errors: list[Exception] = []
    assert list(read_sources([str(table)], on_error=errors.append)) == []
    assert [str(e) for e in errors] == [f"{table}: column 'text' appears twice"]


# ---- index --strict: a bad record late in a large input stores nothing (not the batches before it) -------------

def test_index_strict_with_a_late_bad_record_stores_nothing(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha beta gamma")
    col = tmp_path / "col"
    assert run("index", tmp_path / "docs", "-c", col, "--model", "wordllama")[0] == 0
    table = tmp_path / "big.jsonl"
    lines = [json.dumps({"_id": f"b{i}", "text": f"document {i}"}) for i in range(1200)]
    lines[1100] = "{bad json"  # past two internal batches of 512
    table.write_text("\n".join(lines) + "\n")
    line = one_line_error(*run("index", table, "-c", col, "--strict"))
    assert f"{table}:1101: malformed JSON" in line
    with Collection.open(col) as c:
        assert len(c) == 1


# ---- a chunk overlap given explicitly is refused when too large, not silently cut down ----------------------

@pytest.mark.parametrize("overlap", [8, 16, 100])
def test_explicit_chunk_overlap_too_large_is_refused(tmp_path: Path, overlap: int) -> None:
    with pytest.raises(ConfigError, match=f"chunk overlap {overlap} must be below half of the 16 chunk tokens"):
        Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=64), chunk_tokens=16, chunk_overlap=overlap)
    assert not (tmp_path / "c").exists()


def test_explicit_chunk_overlap_that_fits_is_kept(tmp_path: Path) -> None:
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(max_tokens=64), chunk_tokens=16, chunk_overlap=7) as c:
        assert c.info()["chunking"]["overlap"] == 7


# ---- check: a collection whose files are missing or damaged is a reported problem (exit 1), as documented -----

@pytest.mark.parametrize(("damage", "expected"), [
    (lambda p: (p / "vectors" / "float32.bin").unlink(), "vector file vectors/float32.bin is missing"),
    (lambda p: (p / "slimvec.db").write_bytes(b"garbage, not a database" * 100), "file is not a database"),
    (lambda p: (p / "manifest.json").write_text("{"), "manifest is not valid JSON"),
])
def test_check_reports_missing_or_damaged_files_as_problems(fake_col: Path, damage, expected: str) -> None:
    damage(fake_col)
    res = runner.invoke(app, ["check", str(fake_col), "--json"])
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    assert report["ok"] is False and len(report["problems"]) == 1 and expected in report["problems"][0]


def test_check_of_no_collection_or_a_newer_format_is_still_a_usage_error(fake_col: Path, tmp_path: Path) -> None:
    assert "no slimvec collection here" in one_line_error(*run("check", tmp_path / "nothing"))
    _edit_manifest(fake_col, lambda m: {**m, "format_version": 99})
    assert "format version 99" in one_line_error(*run("check", fake_col))


# ---- --field-type converting a document's metadata keeps its given sections --------------------------------

def test_field_types_keep_the_sections_of_markdown_and_table_records(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text('---\nyear: "2020"\n---\n# Intro\n\nFirst part.\n\n# Methods\n\nSecond part.\n')
    text = "Intro text. Methods text."
    table = tmp_path / "t.jsonl"
    table.write_text(json.dumps({"_id": "r", "text": text, "year": "2021",
                                 "sections": [{"_id": "s1", "start": 0, "end": 11},
                                              {"_id": "s2", "start": 12, "end": len(text)}]}) + "\n")
    docs = {d.id: d for d in read_sources([str(tmp_path / "docs"), str(table)], field_types=["year=int"])}
    assert docs["a.md"].metadata["year"] == 2020 and docs["r"].metadata["year"] == 2021
    assert [s.id for s in docs["a.md"].sections] == ["intro", "methods"]
    assert [(s.id, s.start, s.end) for s in docs["r"].sections] == [("s1", 0, 11), ("s2", 12, len(text))]


# ---- plan --write that cannot be written fails before the evaluations, not after them ------------------------

@pytest.mark.parametrize("where", ["a-folder", "no-such-folder/p.json"])
def test_plan_unwritable_profile_path_fails_first(tmp_path: Path, where: str) -> None:
    ds = _beir(tmp_path / "ds", "q0\td0\t1\nq1\td1\t1\n")
    (tmp_path / "a-folder").mkdir()
    line = one_line_error(*run("plan", ds, "--max-ram-bytes-per-doc", "5000", "--profiles", "exact-f32",
                               "--out", tmp_path / "out", "--write", tmp_path / where))
    assert "--write" in line
    assert not (tmp_path / "out").exists()  # nothing was evaluated


# ---- a linked folder (maybe a loop) is not followed, and a note says so ------------------------------------

def test_linked_folder_is_noted_not_silently_skipped(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.txt").write_text("alpha")
    (root / "more").symlink_to(tmp_path / "elsewhere")  # a folder outside the root, never followed
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.txt").write_text("beta")
    (root / "real" / "loop").symlink_to(root)
    notes: list[str] = []
    docs = list(read_sources([str(root)], on_skip=notes.append))
    assert [d.id for d in docs] == ["real/a.txt"]
    assert notes == [f"{root}: skipped 2 linked folder(s), not followed, e.g. more (name the folder itself to read it)"]


def test_import_refuses_profile_and_profile_file(tmp_path: Path) -> None:
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"name": "mine", "codec": "float32"}))
    line = one_line_error(*run("import", f"parquet:{tmp_path / 'x.parquet'}", "-c", tmp_path / "col",
                               "--profile", "int8", "--profile-file", pfile))
    assert "--profile-file" in line
    assert not (tmp_path / "col").exists()
