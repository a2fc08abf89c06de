"""Session 26's own fixes, each test failing on the code before it."""

from __future__ import annotations

import json

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
