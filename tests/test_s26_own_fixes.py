"""Session 26's own fixes, each test failing on the code before it."""

from __future__ import annotations

import json

import pytest
from test_retrievers_compressed import _clustered, _vector_collection

from slimvec import Collection, Document
from slimvec.documents import Chunk

DIM = 32


def test_an_append_commit_leaves_fit_json_alone_and_a_refit_still_writes_it(tmp_path):
    """fit.json names the current fit; a commit that only appends codes to that fit must not rewrite it (a
    temporary file, two fsyncs and a rename per commit), yet what it says must stay true and be read back."""
    rows = _clustered(4200, DIM, seed=3, centres=40)
    path = tmp_path / "c"
    with _vector_collection(path, rows[:2000], base="int8") as col:
        fit = path / "index" / "codes" / "fit.json"
        before = fit.stat()
        saved = json.loads(fit.read_text())
        extra = rows[2000:2010]
        docs = [Document(f"e{i}", f"extra {i}") for i in range(len(extra))]
        col.add_encoded(docs, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs], extra)
        after = fit.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert json.loads(fit.read_text()) == saved
        codes_rows = json.loads((path / "index" / "codes" / "index.json").read_text())
        assert codes_rows["rows"] == 2010
        hit = col.search_vectors(extra[3:4], k=1)[0][0]
        assert hit.id == "e3"
    # a reopened handle reads the saved codes (fit.json still names them) and finds the appended rows
    with Collection.open(path) as fresh:
        assert fresh.search_vectors(extra[7:8], k=1)[0][0].id == "e7"
        assert fresh._retrievers["dense"].fitted_rows == saved["fitted_rows"]
        # doubling the rows refits the codec: fit.json must now name the new fit
        more = rows[2010:]
        docs = [Document(f"m{i}", f"more {i}") for i in range(len(more))]
        fresh.add_encoded(docs, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in docs], more)
        assert fresh._retrievers["dense"].fitted_rows == 4200
    assert json.loads((path / "index" / "codes" / "fit.json").read_text())["fitted_rows"] == 4200
    with Collection.open(path) as again:
        assert again.search_vectors(rows[2500:2501], k=1)[0][0].id == "m490"
        assert again._retrievers["dense"].fitted_rows == 4200  # read from the saved codes, not refitted


def test_a_refused_migrate_prints_its_one_line_without_a_progress_bar(tmp_path):
    """The re-embedding bar was drawn before the migration was checked, so a refused call printed an empty bar
    ("re-embedding documents ... 0/?") above its one-line error."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "slimvec", "migrate", str(tmp_path / "none"), "--to", "nomodel"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("error: unknown model 'nomodel'")
    assert "re-embedding" not in r.stdout + r.stderr


def test_an_option_that_makes_a_builtin_setting_moot_resets_it_and_a_written_one_is_refused(tmp_path):
    """Settings nothing reads are refused (s26-api), but `index="exact"` on hnsw-f32 (whose target_recall
    calibrates efSearch) was refused too, naming a setting the user never wrote; it now goes back to its default.
    A setting the profile as given never reads is still refused."""
    from fakes import FakeEncoder

    from slimvec.errors import ConfigError
    from slimvec.profiles import BUILTIN, Profile

    assert BUILTIN["hnsw-f32"].target_recall != Profile.model_fields["target_recall"].default
    with Collection.create(tmp_path / "a", profile="hnsw-f32", index="exact", encoder=FakeEncoder(dim=8)) as col:
        stored = col.manifest["profile"]
        assert stored["index"] == "exact"
        assert stored["target_recall"] == Profile.model_fields["target_recall"].default
        assert stored["ef_search"] == Profile.model_fields["ef_search"].default
    written = BUILTIN["exact-f32"].model_copy(update={"ef_search": 99})
    with pytest.raises(ConfigError, match=r"^profile 'exact-f32': ef_search 99 is never used by this profile"):
        Collection.create(tmp_path / "b", profile=written, encoder=FakeEncoder(dim=8))
    assert not (tmp_path / "b").exists()


def test_documents_take_sections_in_their_record_form_and_section_is_exported(tmp_path):
    """`Document(sections=[{...}])` was refused ("expected a Section, got dict") though `to_record` and JSONL write
    sections so, and `Section` was not exported from slimvec: a Python user could not give sections at all
    without importing slimvec.documents."""
    from fakes import FakeEncoder

    import slimvec

    assert "Section" in slimvec.__all__
    text = "Intro text. Setup text here."
    given = [{"_id": "s1", "start": 0, "end": 11, "path": ["Intro"]}, {"_id": "s2", "start": 12, "end": 28}]
    doc = Document("a", text, sections=given)
    assert doc.sections == (slimvec.Section("s1", 0, 11, ("Intro",)), slimvec.Section("s2", 12, 28))
    assert Document("a", text, sections=[dict(r, _id=r["_id"]) for r in doc.to_record()["sections"]]) == doc
    assert isinstance(Document("a", text, sections=list(doc.sections)).sections, tuple)  # a list is stored as one
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(dim=8)) as col:
        col.add([doc])
        assert col.get("a").sections == doc.sections
    for bad, msg in (([{"_id": "s1", "start": 0}], "got keys \\['_id', 'start'\\]"),
                     ([{"_id": "s1", "id": "s1", "start": 0, "end": 3}], "got keys"),
                     ([{"_id": "s1", "start": "0", "end": 3}], "start and end must be integers"),
                     ([{"_id": "s1", "start": 0, "end": 3, "path": "Intro"}], "path must be a list")):
        with pytest.raises(ValueError, match=r"^document 'a': sections: item 0: .*" + msg):
            Document("a", text, sections=bad)


def test_cli_output_shows_terminal_control_characters_instead_of_sending_them(tmp_path):
    """A stored text or title holding ESC sequences (a scraped page, a hostile document) reached the terminal raw
    through `get` and `search`: it could recolour the screen, set the window title or move the cursor over
    earlier output. They are now shown as \\x1b...; --json escapes them as JSON does."""
    import subprocess
    import sys

    from fakes import FakeEncoder

    text = "alpha beta \x1b[2J\x1b]0;owned\x07 gamma \x9b31m delta\tend"
    with Collection.create(tmp_path / "c", encoder=FakeEncoder(dim=8)) as col:
        col.add([Document("d1", text, "title \x1b[31mred")])
    r = subprocess.run([sys.executable, "-m", "slimvec", "get", str(tmp_path / "c"), "d1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not any(c in r.stdout for c in "\x1b\x07\x9b"), repr(r.stdout)
    assert "\\x1b[2J\\x1b]0;owned\\x07 gamma \\x9b31m delta" in r.stdout  # (rich expands the tab)
    assert "title \\x1b[31mred" in r.stdout
    r = subprocess.run([sys.executable, "-m", "slimvec", "get", str(tmp_path / "c"), "d1", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert "\x1b" not in r.stdout and json.loads(r.stdout)["text"] == text


def test_option_and_profile_errors_carry_the_validators_words_without_pydantics_prefix():
    """A validator's ValueError reached users as "mode: Value error, unknown search mode ..." (pydantic's wording
    of where the message came from), in the CLI's one line, the API's 400 and profile files alike."""
    from slimvec.errors import ConfigError
    from slimvec.profiles import profile_from_dict
    from slimvec.search.options import SearchOptions

    with pytest.raises(ConfigError) as e:
        SearchOptions.of(mode="bogus")
    assert str(e.value).startswith("mode: unknown search mode 'bogus': choose one of "), str(e.value)
    with pytest.raises(ConfigError) as e:
        profile_from_dict({"name": "x", "retrievers": ["dense"], "fusion_weights": [1.0, 2.0]}, "p.json")
    assert str(e.value).startswith("p.json: ") and "Value error" not in str(e.value), str(e.value)
    with pytest.raises(ConfigError) as e:  # pydantic's own messages stay, with what was given
        SearchOptions.of(k="ten")
    assert str(e.value).startswith("k: Input should be a valid integer"), str(e.value)
