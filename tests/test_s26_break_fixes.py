"""Session 26 break pass: faults found by feeding this session's changes bad and edge input, one test each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def slimvec(*args: object) -> subprocess.CompletedProcess:
    # a pipe, as `slimvec models | grep ...` gives: no terminal, and no COLUMNS from a shell
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(SRC), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "slimvec", *map(str, args)], capture_output=True, text=True, env=env)


def _rows(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("command", ["profiles", "models"])
def test_listings_in_a_pipe_keep_every_cell_on_its_row(command):
    # Folded at the 80 columns rich assumes for a pipe, 'multivector' came out as 'multiv' / 'ector' and a source or
    # description across several lines: grep for the value a user reads in --json found no line.
    listed = json.loads(slimvec(command, "--json").stdout)
    res = slimvec(command)
    assert res.returncode == 0, res.stderr
    rows = {row[0].rstrip(" *"): row for row in _rows(res.stdout) if row[0]}
    if command == "profiles":
        want = {name: [p["codec"], str(p["rescore"]), ",".join(p["retrievers"]), p["description"]]
                for name, p in listed.items()}
    else:
        want = {c["name"]: [c["kind"], str(c["dims"]), str(c["max_tokens"]), c["licence"], c["source"]] for c in listed}
    assert set(want) <= set(rows)
    for name, cells in want.items():
        assert rows[name][1:len(cells) + 1] == cells, name
    assert len(_rows(res.stdout)) == len(rows)  # no continuation lines


def test_a_migrating_search_many_checks_a_named_model_without_vectors_too(tmp_path):
    # A plain or sharded collection refuses another model's name whether or not vectors come with it; a migrating
    # one took any name (a typo, another collection's model) without vectors and searched as if none was given.
    from _migration_util import migrating_beside_copy
    from fakes import FakeEncoder

    from slimvec import Document
    from slimvec.errors import ConfigError

    docs = [Document(f"d{i}", f"word{i} common text") for i in range(40)]
    old, new = FakeEncoder(16, "fake-old"), FakeEncoder(16, "fake-new")
    with migrating_beside_copy(tmp_path, old, new, docs) as (col, before):
        with pytest.raises(ConfigError, match="search_many: the query vectors are 'bogus'"):
            before.search_many(["word3 common"], model="bogus")
        with pytest.raises(ConfigError, match="model 'bogus' is neither the collection's"):
            col.search_many(["word3 common"], model="bogus")
        with pytest.raises(TypeError, match="model must be a model name"):
            col.search_many(["word3 common"], model=16)
        # either model's own name, without vectors, is the text search it was
        want = [[h.id for h in hits] for hits in col.search_many(["word3 common"])]
        for name in ("fake-old", "fake-new"):
            assert [[h.id for h in hits] for hits in col.search_many(["word3 common"], model=name)] == want


@pytest.mark.parametrize("unseen", ['<dialog hidden><h2>Sign in</h2><p>form</p></dialog>', '<h2 hidden>Sign in</h2>',
                                    '<video src="v.mp4"><h2>Sign in</h2></video>', '<div hidden=""><h3>Sign in</h3></div>'])
def test_a_heading_the_page_never_shows_makes_no_section(tmp_path, unseen):
    # The extractor drops it, but its text was then looked for in the page's text and found in a paragraph of the
    # same words further down, which became a section headed by a heading nobody sees.
    from slimvec.ingest import read_sources

    page = tmp_path / "page.html"
    page.write_text(f"<html><body><h1>Top</h1><p>intro</p>{unseen}<p>more</p><p>Sign in</p><p>tail words</p>"
                    "<h2>Shown</h2><p>end</p></body></html>", encoding="utf-8")
    (doc,) = read_sources([str(page)])
    assert doc.text == "Top\n\nintro\n\nmore\n\nSign in\n\ntail words\n\nShown\n\nend"
    assert [(s.id, doc.text[s.start:s.end], s.path) for s in doc.sections] == [
        ("top", "Top\n\nintro\n\nmore\n\nSign in\n\ntail words", ("Top",)), ("shown", "Shown\n\nend", ("Top", "Shown"))]


def test_min_relevance_text_that_is_no_number_is_not_told_to_drop_quotes(tmp_path):
    # `--min-relevance abc` (or ?min_relevance=abc) was answered "(send the number itself, not quoted)": advice for
    # a JSON body's quoted number, which neither a flag nor a query parameter can follow, nor fits text like 'abc'.
    from slimvec.errors import ConfigError
    from slimvec.search.options import SearchOptions, min_relevance_from_text

    res = slimvec("search", tmp_path / "none", "hello", "--min-relevance", "abc")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "error: min_relevance: must be a number between 0 and 1 or 'auto', got 'abc'"]
    for text in ("abc", "0x1", "0.5%", ""):
        with pytest.raises(ConfigError, match="min_relevance") as e:
            SearchOptions.of(min_relevance=min_relevance_from_text(text))
        assert "quoted" not in str(e.value), text
    for quoted in ("0.5", " .5", "1e-1"):  # a JSON body's quoting bug keeps its hint
        with pytest.raises(ConfigError, match=r"not quoted\)$"):
            SearchOptions.of(min_relevance=quoted)


def test_search_page_marks_words_of_characters_beyond_the_basic_plane(tmp_path):
    # A query word starting with a character outside the BMP (𠮷 of Japanese names, 𝐀 of mathematics) matched,
    # then the scan went on one UTF-16 unit later, inside the pair, where a "u" regex steps back to the same match:
    # the page looped for ever and froze. Around them, words, CJK and emoji stay as they were.
    text = "𠮷a family: the name 𠮷 and 𝐀𝐁 math 😀 (a+b)* 東京"
    assert _page_snippet(tmp_path, text, "𠮷 𝐀𝐁 (a+b)* 😀 東京") == (["𠮷", "𝐀𝐁", "東京"], text)


def test_get_and_search_print_emoji_codes_in_a_text_as_written(tmp_path):
    # rich's emoji codes turned a stored ":warning:" into ⚠ and "3:x:1" into 3❌1 in `slimvec get` (README: it
    # prints the stored document) and in search results; escape() leaves them, as it is for markup only.
    text = "Note :warning: the ratio 3:x:1 stays [red]as[/red] written :smile:"
    (tmp_path / "d.jsonl").write_text(json.dumps({"_id": "e:x:1", "title": ":x: title", "text": text}) + "\n",
                                      encoding="utf-8")
    res = slimvec("index", tmp_path / "d.jsonl", "-c", tmp_path / "c")
    assert res.returncode == 0, res.stderr
    res = slimvec("get", tmp_path / "c", "e:x:1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:2] == ["e:x:1  :x: title  {}", text]
    res = slimvec("search", tmp_path / "c", "ratio", "--json")
    assert json.loads(res.stdout)["hits"][0]["title"] == ":x: title"
    res = slimvec("search", tmp_path / "c", "ratio")
    assert res.returncode == 0 and ":warning:" in res.stdout and "⚠" not in res.stdout and "❌" not in res.stdout


def test_an_export_of_a_collection_recording_unread_late_settings_imports(tmp_path):
    # A collection made before unread settings were refused may record late_weight beside chunk mode 'tokens'. Its
    # export carries them twice: in the profile (read back with them at their defaults) and in the "late" record,
    # which the import applied on top, so Collection.create refused the import naming a setting nobody gave it.
    from fakes import FakeEncoder, registered_encoders

    from slimvec import Collection, Document
    from slimvec.interop.rows import export_collection, import_records

    enc = FakeEncoder(dim=16, name="fake-export")
    with registered_encoders(enc):
        with Collection.create(tmp_path / "old", encoder=enc, profile="hnsw-f32") as col:
            col.add([Document("a", "hello world"), Document("b", "other words")])
        manifest = json.loads((tmp_path / "old" / "manifest.json").read_text(encoding="utf-8"))
        manifest["profile"].update(late_weight=0.3, late_window=128, oversample=7)  # as an older slimvec kept them
        (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        with Collection.open(tmp_path / "old") as col:
            want = [h.id for h in col.search("hello")]
            export_collection(col, f"parquet:{tmp_path / 'ex.parquet'}")
        with import_records(f"parquet:{tmp_path / 'ex.parquet'}", tmp_path / "new") as col:
            assert [h.id for h in col.search("hello")] == want
            prof = col.manifest["profile"]
            assert (prof["chunk_mode"], prof["late_weight"], prof["late_window"]) == ("tokens", None, None)
            col.add([Document("c", "hello again")])  # takes writes
            assert col.check() == []


@pytest.mark.parametrize("profile", ["hybrid", "hybrid-weighted", "bm25", "splade", "hybrid-sparse", "multivector",
                                     "multivector-compressed", "hybrid-multivector"])
@pytest.mark.parametrize("retrievers", [["dense"], ["bm25"], ["dense", "bm25"]])
def test_retrievers_given_beside_a_profile_put_back_what_needs_the_others(tmp_path, profile, retrievers):
    # hybrid with retrievers=["dense"] was refused naming its mode ("mode 'hybrid' cannot run on this profile's
    # retrievers (dense)"), multivector with them naming its token codec: settings the caller never wrote, made moot
    # by the retrievers asked for, as --index exact makes hnsw-f32's target_recall moot (put back to its default).
    from fakes import FakeEncoder

    from slimvec import Collection, Document
    from slimvec.search.plan import modes

    with Collection.create(tmp_path / "c", encoder=FakeEncoder(), profile=profile, retrievers=retrievers) as col:
        recorded = col.manifest["profile"]
        assert recorded["retrievers"] == retrievers
        assert recorded["mode"] in [*modes(retrievers), "dense"]
        assert recorded["tokens"] is None
        col.add([Document("a", "alpha beta gamma"), Document("b", "delta epsilon")])
        assert [h.id for h in col.search("alpha beta")][:1] == ["a"]


def test_search_page_marks_a_latin_word_that_touches_cjk_text(tmp_path):
    # The query splits "東京Tower" into 東京 and tower (as bm25-cjk does), but whole-word marking took the 京 before
    # "Tower" for part of the word, so the very word that matched was never marked; "Towers" still is not.
    text = "東京Tower は Towers と tower東京"
    assert _page_snippet(tmp_path, text, "tower") == (["Tower", "tower"], text)


def _page_snippet(tmp_path, text: str, query: str) -> tuple[list[str], str]:
    """(marked stretches, whole snippet text) the search page shows for `query` over one document of `text`."""
    from _server_util import search_page
    from fakes import FakeEncoder

    from slimvec import Collection, Document

    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as col:
        col.add([Document("d0", text, "T")])
        with search_page({"c": col}) as (page, errors):
            page.fill("#q", query)
            page.click("#go")
            page.wait_for_selector("#results li.hit mark", state="attached", timeout=30_000)
            snippet = page.locator("#results li.hit .snippet")
            out = snippet.locator("mark").all_inner_texts(), snippet.inner_text()
            assert not errors, errors
            return out
