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
