"""Session 14 breaker: readers that kept one of two values without a word (front matter, profile files, qrels,
filters, HTTP bodies) and a CSV value under a column with no name."""

from __future__ import annotations

from pathlib import Path

import pytest
from _server_util import AUTH, snapshot
from typer.testing import CliRunner

from slimvec.cli import app
from slimvec.errors import ConfigError, FilterError, IngestError
from slimvec.evaluation.preflight import check_eval_inputs
from slimvec.ingest import read_file, read_sources
from slimvec.ingest.beir import load_qrels
from slimvec.ingest.tables import FieldMap, iter_table
from slimvec.profiles import load_profile
from slimvec.store.filters import parse_filter


def _md(tmp_path: Path, front: str, name: str = "note.md") -> Path:
    path = tmp_path / name
    path.write_text(f"---\n{front}---\nBody text.\n", encoding="utf-8")
    return path


# --- front matter (PyYAML keeps the last of two equal keys) ------------------------------------------------

def test_front_matter_key_given_twice_is_refused_with_its_line(tmp_path) -> None:
    path = _md(tmp_path, "topic: bones\nyear: 2020\ntopic: heart\n")
    with pytest.raises(IngestError) as e:
        read_file(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:4: front matter: key 'topic'")  # line 4: the second `topic:`
    assert "line 2" in msg


@pytest.mark.parametrize("front", ['1: a\n"1": b\n', 'true: a\n"True": b\n', "1: a\n1.0: b\n", "1: a\ntrue: b\n"])
def test_front_matter_keys_that_become_one_metadata_key_are_refused(tmp_path, front) -> None:
    # YAML types `1` and `true`; metadata keys are text, and Python's dict makes one key of 1, 1.0 and True.
    path = _md(tmp_path, front)
    with pytest.raises(IngestError) as e:
        read_file(path)
    assert str(e.value).startswith(f"{path}:3: front matter: key ")


def test_front_matter_nested_key_given_twice_is_refused(tmp_path) -> None:
    path = _md(tmp_path, "author:\n  name: Ada\n  name: Grace\n")
    with pytest.raises(IngestError, match=r":4: front matter: key 'name'"):
        read_file(path)


def test_front_matter_merge_key_may_still_be_overridden(tmp_path) -> None:
    doc = read_file(_md(tmp_path, "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n"))
    assert doc.metadata["c"] == {"x": 3, "y": 2}


def test_front_matter_cannot_replace_the_files_own_path_and_ext(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    path = _md(tmp_path, "path: elsewhere/other.md\n", "sub/a.md")
    with pytest.raises(IngestError) as e:
        read_file(path, tmp_path)
    assert str(e.value).startswith(f"{path}: front matter: 'path'")
    assert "sub/a.md" in str(e.value)
    with pytest.raises(IngestError, match="front matter: 'ext'"):
        read_file(_md(tmp_path, "ext: pdf\n", "b.md"))
    # the same value says nothing new: kept
    assert read_file(_md(tmp_path, "path: c.md\next: md\n", "c.md")).metadata == {"path": "c.md", "ext": "md"}


# --- records of only invisible characters (the readers' own empty-text check) ----------------------------------

def test_files_whose_text_is_only_invisible_characters_are_reported_not_indexed_as_titles(tmp_path) -> None:
    # A file's title is never empty (front matter, <title>, or the file's name), so the collection's check on
    # "text and title" passed: each became a document of its title alone.
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("---\ntitle: Kept title\n---\n\u200b\ufeff\n", encoding="utf-8")
    (folder / "b.txt").write_text("\u2060 \u200b\n", encoding="utf-8")
    (folder / "c.html").write_text("<html><head><title>T</title></head><body><p>\u200b</p></body></html>",
                                   encoding="utf-8")
    (folder / "d.txt").write_text("visible words", encoding="utf-8")
    errors: list[IngestError] = []
    docs = list(read_sources(folder, on_error=errors.append))
    assert [d.id for d in docs] == ["d.txt"]
    assert [str(e).partition(": text: ")[0] for e in errors] == [str(folder / n) for n in ("a.md", "b.txt", "c.html")]


def test_a_jsonl_record_of_only_invisible_text_is_skipped_with_its_line(tmp_path) -> None:
    # It passed the reader's check and then failed the whole batch at the collection, naming no file or line.
    path = tmp_path / "t.jsonl"
    path.write_text('{"_id": "x", "text": "\\u200b\\ufeff"}\n{"_id": "y", "text": "fine"}\n', encoding="utf-8")
    errors: list[IngestError] = []
    assert [d.id for d in read_sources(path, on_error=errors.append)] == ["y"]
    assert [str(e) for e in errors] == [f"{path}:1: text: empty"]


def test_a_beir_record_whose_title_is_invisible_and_text_empty_is_skipped(tmp_path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "x", "title": "\\u200b", "text": ""}\n'
                                           '{"_id": "y", "title": "ok", "text": ""}\n', encoding="utf-8")
    errors: list[IngestError] = []
    assert [d.id for d in read_sources(tmp_path, on_error=errors.append)] == ["y"]  # title-only BEIR records stay
    assert [str(e).partition(": text: ")[0] for e in errors] == [f"{tmp_path / 'corpus.jsonl'}:1"]


def test_eval_preflight_refuses_a_query_of_only_invisible_characters(tmp_path) -> None:
    # It passed the preflight (text.strip()) and stopped the run at search time, after the corpus was embedded.
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "bones"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "\\u200b\\ufeff"}\n', encoding="utf-8")
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n", encoding="utf-8")
    with pytest.raises(IngestError) as e:
        check_eval_inputs(tmp_path, [load_profile()], corpus=False)
    assert str(e.value).startswith(f"{tmp_path / 'queries.jsonl'}: query 'q1': text: empty")


def test_a_title_of_only_invisible_characters_falls_back_like_an_empty_one(tmp_path) -> None:
    md = tmp_path / "note.md"
    md.write_text("---\ntitle: \"\\u200b\"\n---\n# Real heading\n\nBody.\n", encoding="utf-8")
    assert read_file(md).title == "Real heading"
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>\ufeff\u200b</title></head><body><p>Body.</p></body></html>",
                    encoding="utf-8")
    assert read_file(page).title == "page"


# --- profile files ------------------------------------------------------------------------------------------

def test_profile_file_with_a_repeated_key_is_refused(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"name": "mine", "codec": "binary", "codec": "float32"}', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_profile(file=path)
    assert str(e.value).startswith(f"{path}: key 'codec' appears twice")



@pytest.mark.parametrize("weights", ["[NaN, 1]", "[Infinity, 1]"])
def test_profile_file_fusion_weights_must_be_finite(tmp_path, weights) -> None:
    # JSON readers take NaN and Infinity; the search options refuse them, the profile (read at every search) did not.
    path = tmp_path / "p.json"
    path.write_text(f'{{"name": "mine", "retrievers": ["dense", "bm25"], "mode": "hybrid", "fusion": "weighted", '
                    f'"fusion_weights": {weights}}}', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_profile(file=path)
    assert str(e.value).startswith(f"{path}: ") and "fusion_weights" in str(e.value) and "finite" in str(e.value)



@pytest.mark.parametrize("setting", ['"reps": NaN', '"reps": 2.5', '"dproj": true', '"fill_empty": 1'])
def test_profile_file_muvera_settings_must_have_their_types(tmp_path, setting) -> None:
    # reps NaN gave an FDE dimension of NaN, reps 2.5 a TypeError from range() once a collection was built.
    path = tmp_path / "p.json"
    path.write_text(f'{{"name": "mine", "tokens": "float16", "muvera": {{{setting}}}}}', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_profile(file=path)
    key = setting.split('"')[1]
    assert str(e.value).startswith(f"{path}: muvera: ") and f"MUVERA {key} must be" in str(e.value)


# --- BEIR qrels ---------------------------------------------------------------------------------------------

def _qrels(tmp_path: Path, body: str) -> Path:
    (tmp_path / "qrels").mkdir()
    path = tmp_path / "qrels" / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n" + body, encoding="utf-8")
    return path


def test_qrels_judging_one_pair_twice_with_other_scores_is_refused(tmp_path) -> None:
    path = _qrels(tmp_path, "q1\td1\t2\nq1\td2\t1\nq1\td1\t0\n")
    with pytest.raises(IngestError) as e:
        load_qrels(tmp_path, "test")
    msg = str(e.value)
    assert msg.startswith(f"{path}:4: ")
    assert "'q1'" in msg and "'d1'" in msg and "line 2" in msg


def test_qrels_repeating_a_pair_with_the_same_score_is_kept(tmp_path) -> None:
    _qrels(tmp_path, "q1\td1\t2\nq1\td1\t2\n")
    assert load_qrels(tmp_path, "test") == {"q1": {"d1": 2}}


# --- CSV ----------------------------------------------------------------------------------------------------

def test_csv_value_under_a_column_with_no_name_is_refused(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("_id,text,\na,alpha text,\nb,beta text,stray\n", encoding="utf-8")
    items = list(iter_table(path, FieldMap()))
    assert items[0][1].metadata == {}  # an empty cell under it: nothing lost, nothing to say
    pos, err = items[1]
    assert pos == 3 and isinstance(err, IngestError)
    assert str(err).startswith(f"{path}:3: column 3 ")
    assert "stray" in str(err)


# --- filters ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ['{"year": 2019, "year": 2022}', '{"year": {"$gte": 2000, "$gte": 2020}}'])
def test_filter_naming_a_key_twice_is_refused(text) -> None:
    with pytest.raises(FilterError, match="twice"):
        parse_filter(text)



# --- CLI ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("option", "named"), [("--filter", "filter is not valid JSON"), ("--weights", "--weights")])
def test_cli_search_refuses_an_empty_filter_or_weights_instead_of_ignoring_it(tmp_path, option, named) -> None:
    # `--filter "$F"` with F unset searched everything without a word; the check comes before the collection opens.
    res = CliRunner().invoke(app, ["search", str(tmp_path / "no-collection"), "bones", option, ""])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and named in res.stderr
    assert "Traceback" not in res.stderr



@pytest.mark.parametrize("args", [
    ["index", "{tmp}/docs", "-c", "{tmp}/col", "--model", ""],  # indexed with the default model
    ["index", "{tmp}/docs", "-c", "{tmp}/col", "--profile", ""],  # the default profile
    ["index", "{tmp}/docs", "-c", "{tmp}/col", "--chunk-mode", " "],
    ["eval", "{tmp}/beir", "--model", ""],  # the profile's model
    ["sweep", "{tmp}/beir", "--chunk-mode", ""],
    ["plan", "{tmp}/beir", "--max-ram-bytes-per-doc", "100", "--chunk-mode", ""],
])
def test_cli_refuses_an_empty_option_that_would_silently_mean_its_default(tmp_path, args) -> None:
    # Missing paths: the unfixed code fails on them (or silently uses the default), never on the empty option.
    res = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2
    option = args[-2]
    assert res.stderr.startswith(f"error: {option} is empty")


def test_cli_plan_refuses_empty_profiles_instead_of_trying_them_all(tmp_path) -> None:
    res = CliRunner().invoke(app, ["plan", str(tmp_path / "beir"), "--max-ram-bytes-per-doc", "100", "--profiles", ""])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --profile/--profiles names no profile")


# --- HTTP bodies --------------------------------------------------------------------------------------------

def test_http_document_with_a_repeated_key_is_refused_and_nothing_stored(keyed_client) -> None:
    c, col = keyed_client
    before = snapshot(col)
    body = '[{"id": "n1", "text": "first text", "text": "second text"}]'
    r = c.post("/api/collections/col/documents", content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422
    assert "'text'" in r.json()["detail"]
    assert snapshot(col) == before


def test_http_search_body_with_a_repeated_key_is_refused(keyed_client) -> None:
    c, _ = keyed_client
    r = c.post("/api/collections/col/search", content='{"q": "bone", "k": 1, "k": 3}',
               headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "'k'" in r.json()["detail"]
    ok = c.post("/api/collections/col/search", json={"q": "bone", "k": 2})
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 2
