"""Section-level hits (search unit "section"): section ids kept in the store, returned through deletes, upserts,
filters, fusion and reranking; collections made before the section columns still open; the CLI and HTTP
output; `slimvec eval --unit section` against section qrels.

Plumbing tests use the hashed bag-of-words FakeEncoder (a query made of a section's own words finds that
section); the CLI and eval tests use the bundled MiniLM.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder

from slimvec import Collection, Document
from slimvec.documents import Section
from slimvec.errors import ConfigError


def _doc(doc_id: str, parts: list[tuple[str, str]], lang: str, title: str = "",
         paths: dict[str, tuple[str, ...]] | None = None) -> Document:
    """A document whose text is `parts` joined by spaces, each part a given section (id, text)."""
    text, sections = "", []
    for sid, part in parts:
        start = len(text) + (1 if text else 0)
        text = f"{text} {part}" if text else part
        sections.append(Section(sid, start, len(text), (paths or {}).get(sid, ())))
    return Document(doc_id, text, title, {"lang": lang}, tuple(sections))


A1 = _doc("a1", [("a1-s0", "alpha bravo charlie"), ("a1-s1", "delta echo foxtrot"), ("a1-s2", "golf hotel india")],
          "en", paths={"a1-s1": ("Intro", "Greek letters")})
A2 = _doc("a2", [("a2-s0", "juliet kilo lima"), ("a2-s1", "mike november oscar delta echo")], "de")
PLAIN = Document("plain", "papa quebec romeo", "", {"lang": "en"})


def _section(doc: Document, sid: str) -> Section:
    return next(s for s in doc.sections or () if s.id == sid)


@pytest.fixture()
def col(tmp_path: Path) -> Collection:
    c = Collection.create(tmp_path / "c", encoder=FakeEncoder(), retrievers=["dense", "bm25"])
    c.add([A1, A2, PLAIN])
    yield c
    c.close()


def _ids(hits) -> list[tuple[str, str | None]]:
    return [(h.id, h.section) for h in hits]


def test_section_hits_carry_document_section_and_span(col: Collection) -> None:
    hits = col.search("delta echo foxtrot", k=3, unit="section", mode="dense")
    top = hits[0]
    s = _section(A1, "a1-s1")
    assert (top.id, top.section, top.chunk_start, top.chunk_end) == ("a1", "a1-s1", s.start, s.end)
    assert top.snippet == A1.text[s.start : s.end] == "delta echo foxtrot"
    assert top.to_dict()["section"] == "a1-s1" and top.to_dict()["span"] == [s.start, s.end]
    # Section-level: no grouping by document, so a1's and a2's sections that share words both rank.
    assert ("a2", "a2-s1") in _ids(hits)
    # Document level is unchanged: one hit per document, no section key.
    docs = col.search("delta echo foxtrot", k=3, mode="dense")
    assert len({h.id for h in docs}) == len(docs) and all("section" not in h.to_dict() for h in docs)
    # A document without given sections: its chunk is a unit of its own, named by id and span.
    (plain,) = [h for h in col.search("papa quebec romeo", k=8, unit="section", mode="dense") if h.id == "plain"]
    assert plain.section is None and (plain.chunk_start, plain.chunk_end) == (0, len(PLAIN.text))


def test_every_section_is_one_hit_and_all_of_them_can_be_listed(col: Collection) -> None:
    hits = col.search("alpha", k=20, unit="section", mode="dense")
    want = {(d.id, s.id) for d in (A1, A2) for s in d.sections or ()} | {("plain", None)}
    assert set(_ids(hits)) == want and len(hits) == len(want)


def test_heading_paths_are_stored_with_the_section_ids(col: Collection) -> None:
    rows = col.store.sections_for_rows(list(range(col.store.committed_rows)))
    got = {(r.doc_id, r.section_id): r.heading_path for r in rows.values()}
    assert got[("a1", "a1-s1")] == ("Intro", "Greek letters")
    assert got[("a1", "a1-s0")] == () and got[("plain", None)] == ()


def test_filters_deletes_and_upserts_keep_section_ids_right(col: Collection) -> None:
    q = "delta echo"
    assert {h.id for h in col.search(q, k=10, unit="section", mode="dense", filter={"lang": "de"})} == {"a2"}
    assert col.delete(["a1"]) == 1
    hits = col.search(q, k=10, unit="section", mode="dense")
    assert "a1" not in {h.id for h in hits} and ("a2", "a2-s1") == _ids(hits)[0]
    # Upsert a2 with other sections: the old ids are gone, the new ones carry their own spans.
    new_a2 = _doc("a2", [("a2-n0", "sierra tango"), ("a2-n1", "uniform delta echo victor")], "de")
    col.upsert([new_a2])
    hits = col.search(q, k=10, unit="section", mode="dense")
    assert {s for _, s in _ids(hits) if s and s.startswith("a2")} == {"a2-n0", "a2-n1"}
    top = hits[0]
    s = _section(new_a2, "a2-n1")
    assert (top.id, top.section, top.chunk_start, top.chunk_end) == ("a2", "a2-n1", s.start, s.end)
    for mode in ("bm25", "hybrid"):  # the sparse side sees the same deletes and upserts
        assert _ids(col.search(q, k=10, unit="section", mode=mode))[0] == ("a2", "a2-n1")


def test_a_long_section_cut_into_several_chunks_is_one_hit(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(150)]  # FakeEncoder chunks hold at most 64 words
    long = _doc("long", [("intro", "short opening words"), ("body", " ".join(words))], "en")
    with Collection.create(tmp_path / "c", encoder=FakeEncoder()) as c:
        c.add([long])
        assert c.info()["chunks"] > 2
        hits = c.search(" ".join(words[100:120]), k=10, unit="section")
        assert _ids(hits) == [("long", "body"), ("long", "intro")]


def test_fusion_and_reranking_work_on_sections(col: Collection) -> None:
    q = "golf hotel india"
    for opts in ({"mode": "hybrid"}, {"mode": "hybrid", "fusion": "weighted", "fusion_weights": (0.5, 0.5)},
                 {"mode": "bm25", "rerank": "dense"}, {"mode": "dense", "rerank": "dense"}):
        hits = col.search(q, k=3, unit="section", **opts)
        assert _ids(hits)[0] == ("a1", "a1-s2"), opts
        assert len(set(_ids(hits))) == len(hits)
    # The dense reranker rescoring BM25's sections with exact inner products gives exact dense scores.
    exact = {(h.id, h.section): h.score for h in col.search(q, k=20, unit="section", mode="dense")}
    reranked = col.search("golf hotel india delta", k=3, unit="section", mode="bm25", rerank="dense")
    assert len(reranked) == 3  # a1-s2 (golf...), a1-s1 and a2-s1 (delta): BM25 candidates only
    exact = {(h.id, h.section): h.score for h in col.search("golf hotel india delta", k=20, unit="section",
                                                            mode="dense")}
    assert [h.score for h in reranked] == [exact[(h.id, h.section)] for h in reranked]
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)


def test_a_text_reranker_rescores_sections_by_their_own_text(col: Collection) -> None:
    """bi-encoder reranking (MiniLM over chunk texts): each candidate is one section, scored on its own text."""
    from slimvec.encoders.registry import load_encoder

    q = "golf hotel india delta"
    hits = col.search(q, k=3, unit="section", mode="bm25", rerank="bi-encoder:all-MiniLM-L6-v2")
    assert len(hits) == len(set(_ids(hits))) == 3
    enc = load_encoder("all-MiniLM-L6-v2")
    texts = {(h.id, h.section): f"{h.title} {h.snippet}".strip() for h in hits}
    want = enc.encode_documents(list(texts.values())) @ enc.encode_queries([q])[0]
    assert [h.score for h in hits] == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-5)
    assert _ids(hits)[0] == list(texts)[int(np.argmax(want))]


def test_section_hits_without_payload_still_name_their_section(col: Collection) -> None:
    (hit, *_) = col.search("delta echo foxtrot", k=3, unit="section", mode="dense", with_payload=False)
    s = _section(A1, "a1-s1")
    assert (hit.id, hit.section, hit.chunk_start, hit.chunk_end, hit.snippet) == ("a1", "a1-s1", s.start, s.end, "")


def test_bad_unit_and_calibrated_cut_off_are_refused_in_one_line(col: Collection) -> None:
    with pytest.raises(ConfigError, match=r"^unit: Input should be 'document' or 'section'"):
        col.search("alpha", unit="paragraph")
    with pytest.raises(ConfigError, match="min_relevance .* cannot be combined with unit='section'"):
        col.search("alpha", unit="section", min_relevance=0.5)


# ---- collections made before the section columns -------------------------------------------------------------

_OLD_CHUNKS = """
CREATE TABLE chunks_v1 (
    row INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL
);
INSERT INTO chunks_v1 SELECT row, doc_id, idx, start, end FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v1 RENAME TO chunks;
CREATE INDEX chunks_doc ON chunks(doc_id);
"""


def _old_copy(src: Path, dst: Path) -> Path:
    """A copy of collection `src` whose chunks table has the schema slimvec had before the section columns."""
    shutil.copytree(src, dst)
    db = sqlite3.connect(dst / "slimvec.db")
    db.executescript(_OLD_CHUNKS)
    db.close()
    return dst


def _columns(path: Path) -> set[str]:
    db = sqlite3.connect(path / "slimvec.db")
    try:
        return {r[1] for r in db.execute("PRAGMA table_info(chunks)")}
    finally:
        db.close()


def test_a_collection_made_before_the_section_columns_opens_and_works(col: Collection, tmp_path: Path) -> None:
    before = col.search("delta echo foxtrot", k=3, mode="dense")
    old = _old_copy(col.path, tmp_path / "old")
    assert "section_id" not in _columns(old)
    with Collection.open(old, encoder=FakeEncoder()) as c:
        assert {"section_id", "heading_path"} <= _columns(old)  # added on open
        assert c.check() == []
        assert c.search("delta echo foxtrot", k=3, mode="dense") == before
        # Chunks stored before the column have no known section: section-level hits are their chunks.
        top = c.search("delta echo foxtrot", k=3, unit="section", mode="dense")[0]
        s = _section(A1, "a1-s1")
        assert (top.id, top.section, top.chunk_start, top.chunk_end) == ("a1", None, s.start, s.end)
        # New writes store their section ids; deletes and filters work across old and new chunks.
        c.add([_doc("a3", [("a3-s0", "whiskey xray"), ("a3-s1", "yankee zulu delta")], "fr")])
        assert _ids(c.search("yankee zulu", k=1, unit="section", mode="dense")) == [("a3", "a3-s1")]
        assert {h.id for h in c.search("delta", k=10, unit="section", filter={"lang": "fr"})} == {"a3"}
        c.delete(["a1"])
        assert "a1" not in {h.id for h in c.search("delta echo foxtrot", k=10, unit="section")}
    with Collection.open(old, encoder=FakeEncoder()) as c:  # a second open finds the columns and adds nothing
        assert c.info()["documents"] == 3


def test_an_old_collection_that_cannot_be_written_is_read_without_sections(col: Collection, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    from slimvec.store.store import Store

    old = _old_copy(col.path, tmp_path / "old")

    @contextmanager
    def readonly(self):  # what SQLite raises on a file the process may not write
        raise sqlite3.OperationalError("attempt to write a readonly database")
        yield

    monkeypatch.setattr(Store, "_transaction", readonly)
    with Collection.open(old, encoder=FakeEncoder()) as c:
        assert "section_id" not in _columns(old) and not c.store.has_sections
        top = c.search("delta echo foxtrot", k=3, unit="section", mode="dense")[0]
        assert (top.id, top.section) == ("a1", None)
        assert c.search("delta echo foxtrot", k=1, unit="section", with_payload=False)[0].id == "a1"


def test_writers_that_predate_the_columns_still_insert_chunks(col: Collection) -> None:
    """What an older slimvec does to a collection with the new columns: its named-column INSERT still works,
    and its chunks read back as chunks without a section."""
    db = col.store.db
    db.execute("INSERT INTO documents (id, title, text, metadata) VALUES ('old', '', 'old text', '{}')")
    db.execute("INSERT INTO chunks (row, doc_id, idx, start, end) VALUES (999, 'old', 0, 0, 8)")
    (row,) = col.store.sections_for_rows([999]).values()
    assert (row.doc_id, row.section_id, row.heading_path) == ("old", None, ())


# ---- CLI and HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def articles(tmp_path_factory) -> Path:
    """A JSONL file of two articles whose records carry their sentences as sections."""
    path = tmp_path_factory.mktemp("articles") / "articles.jsonl"
    rows = []
    for doc in (_doc("berlin", [("b0", "Berlin is the capital of Germany."),
                                ("b1", "The river Spree flows through the city centre."),
                                ("b2", "About 3.7 million people live there.")], "en", title="Berlin"),
                _doc("paris", [("p0", "Paris is the capital of France."),
                               ("p1", "The Eiffel Tower was finished in 1889.")], "en", title="Paris")):
        rows.append({"_id": doc.id, "title": doc.title, "text": doc.text,
                     "sections": [{"_id": s.id, "start": s.start, "end": s.end} for s in doc.sections or ()]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_search_unit_section_json(articles: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from slimvec.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["index", str(articles), "-c", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["search", str(tmp_path / "c"), "When was the Eiffel Tower built?", "--unit", "section",
                              "-k", "3", "--json"])
    assert res.exit_code == 0, res.stderr
    hits = json.loads(res.stdout)["hits"]
    text = articles.read_text()
    paris = json.loads(text.splitlines()[1])
    p1 = paris["sections"][1]
    assert (hits[0]["id"], hits[0]["section"], hits[0]["span"]) == ("paris", "p1", [p1["start"], p1["end"]])
    assert len(hits) == 3 and all("section" in h for h in hits)
    res = runner.invoke(app, ["search", str(tmp_path / "c"), "Eiffel Tower", "--unit", "paragraph"])
    assert res.exit_code == 2 and "unit: Input should be 'document' or 'section'" in res.stderr
    res = runner.invoke(app, ["search", str(tmp_path / "c"), "Eiffel Tower", "--unit", "section"])
    assert res.exit_code == 0 and "paris § p1" in res.stdout


def test_http_search_unit_section(col: Collection) -> None:
    from fastapi.testclient import TestClient

    from slimvec.server import create_app

    with TestClient(create_app({"c": col}, api_key=None), raise_server_exceptions=False) as client:
        r = client.post("/api/collections/c/search", json={"q": "delta echo foxtrot", "k": 2, "unit": "section",
                                                           "mode": "dense"})
        assert r.status_code == 200, r.text
        body = r.json()
        s = _section(A1, "a1-s1")
        assert body["unit"] == "section"
        assert body["hits"][0]["section"] == "a1-s1" and body["hits"][0]["span"] == [s.start, s.end]
        r = client.get("/api/collections/c/search", params={"q": "delta echo foxtrot", "unit": "section",
                                                            "mode": "dense", "k": 2})
        assert r.status_code == 200 and r.json()["hits"][0]["section"] == "a1-s1"
        r = client.get("/api/collections/c/search", params={"q": "delta", "mode": "dense"})
        assert r.json()["unit"] == "document" and all("section" not in h for h in r.json()["hits"])
        r = client.post("/api/collections/c/search", json={"q": "delta", "unit": "chapter"})
        assert r.status_code == 422 and "unit" in r.text


# ---- evaluation against section qrels -------------------------------------------------------------------------


def test_eval_unit_section_against_section_qrels(articles: Path, tmp_path: Path) -> None:
    """Each query is the text of one sentence and is judged by its sentence id: every unit-level run must put
    the judged sentence first (nDCG@10 = 1), while the same qrels judged at document level match nothing."""
    from typer.testing import CliRunner

    from slimvec.cli import app

    data = tmp_path / "ds"
    (data / "qrels").mkdir(parents=True)
    records = [json.loads(line) for line in articles.read_text().splitlines()]
    queries, qrels = [], ["query-id\tcorpus-id\tscore"]
    for r in records:
        for s in r["sections"]:
            queries.append({"_id": f"q-{s['_id']}", "text": r["text"][s["start"] : s["end"]]})
            qrels.append(f"q-{s['_id']}\t{s['_id']}\t1")
    (data / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (data / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    shutil.copy(articles, data / "corpus.jsonl")  # the document-level corpus: the articles themselves

    runner = CliRunner()
    args = ["eval", str(data), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--json"]
    res = runner.invoke(app, [*args, "--unit", "section", "--corpus", str(articles)])
    assert res.exit_code == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["unit"] == "section" and got["metrics"]["ndcg@10"] == pytest.approx(1.0)
    run_files = list((tmp_path / "out" / "runs").glob("*-section-*.trec"))
    assert len(run_files) == 1
    ranked = {line.split()[2] for line in run_files[0].read_text().splitlines()}
    assert ranked == {s["_id"] for r in records for s in r["sections"]}
    res = runner.invoke(app, args)  # document level: ranked ids are article ids, which no qrel names: refused
    assert res.exit_code == 2 and "none of the 5 documents judged relevant is in" in res.stderr
    assert "--unit section?" in res.stderr
    res = runner.invoke(app, [*args, "--unit", "page"])
    assert res.exit_code == 2 and "unit 'page': choose one of document, section" in res.stderr
    res = runner.invoke(app, [*args, "--corpus", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "missing.jsonl: corpus not found" in res.stderr


# ---- embedding cache and chunk modes --------------------------------------------------------------------------


def test_cached_embeddings_are_never_reused_across_chunk_modes(tmp_path: Path, scifact_docs) -> None:
    """Late vectors are pooled from a forward pass, never looked up by chunk text: a late collection built
    through a cache warmed by a token-mode build of the same documents stores the late vectors."""
    from slimvec.encoders.cache import CachedEncoder
    from slimvec.encoders.registry import load_encoder
    from slimvec.profiles import profile_from_dict

    docs = scifact_docs[:3]
    model = load_encoder()

    def build(name: str, mode: str, encoder) -> np.ndarray:
        # late_weight only where it is read: a token-mode collection refuses it (Profile.unused_options)
        prof = profile_from_dict({"name": name, "chunk_tokens": 64, "chunk_overlap": 0, "chunk_mode": mode,
                                  **({"late_weight": 1.0} if mode == "late" else {})})
        with Collection.create(tmp_path / name, profile=prof, encoder=encoder) as c:
            c.add(docs)
            return np.array(c.store.vectors())

    cached = CachedEncoder(model, tmp_path / "cache")
    tokens = build("tokens", "tokens", cached)
    assert cached.misses == len(tokens)  # every chunk text went into the cache
    late = build("late", "late", cached)
    fresh = build("late-uncached", "late", model)
    assert tokens.shape == late.shape
    np.testing.assert_allclose(late, fresh, atol=1e-5)
    assert np.max(np.sum(tokens * late, axis=1)) < 0.9999  # no row is the cached token-mode vector


def test_search_page_shows_the_section_of_section_hits(col: Collection) -> None:
    """The page in headless Chromium (as tests/test_server_web.py): choosing section hits names each section."""
    from _server_util import search_page

    with search_page({"c": col}) as (page, errors):
        page.fill("#q", "delta echo foxtrot")
        page.fill("#k", "2")
        page.select_option("#mode", "dense")
        page.select_option("#unit", "section")
        page.click("#go")
        page.wait_for_selector("#results li.hit", timeout=30_000)
        metas = page.locator("#results li.hit .meta").all_inner_texts()
        assert metas[0].startswith("a1 § a1-s1 · score"), metas
        page.select_option("#unit", "document")
        page.click("#go")
        page.wait_for_function("!document.querySelector('#results .meta').textContent.includes('§')",
                               timeout=30_000)
        assert all("§" not in m for m in page.locator("#results li.hit .meta").all_inner_texts())
        assert not errors, errors
