"""Export and import: a real MiniLM collection of SciFact abstracts written to Qdrant (local mode), LanceDB and
Parquet, searched there with the same query vectors (the same top 10 as slimvec's exact search), and imported
back into a collection that passes `check` and answers every query identically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slimvec import Collection
from slimvec.cli import app as cli_app
from slimvec.documents import Document, Section
from slimvec.errors import ConfigError, IngestError
from slimvec.interop import export_collection, import_records, read_records


def _doc_ranking(chunk_hits: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    """A document scores its best chunk (slimvec's document ranking), from (doc id, score) chunk hits."""
    best: dict[str, float] = {}
    for doc, score in chunk_hits:
        best[doc] = max(best.get(doc, -np.inf), score)
    return sorted(best.items(), key=lambda kv: -kv[1])[:k]


@pytest.fixture(scope="module")
def exported(built_collection: Path, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("exports")
    targets = {"qdrant": f"qdrant:{root / 'qdrant'}", "lancedb": f"lancedb:{root / 'lance'}#scifact",
               "parquet": f"parquet:{root / 'scifact.parquet'}"}
    with Collection.open(built_collection) as col:
        for target in targets.values():
            summary = export_collection(col, target)
            assert summary["documents"] == len(col) and summary["records"] == col.info()["chunks"]
    return targets


def test_peers_return_slimvecs_exact_top_10(built_collection: Path, exported, scifact_judged) -> None:
    from lancedb import connect
    from qdrant_client import QdrantClient

    texts = [t for t, _ in list(scifact_judged.values())[:5]]
    with Collection.open(built_collection) as col:
        qvecs = col.encoder.encode_queries(texts)
        ours = [[(h.id, h.score) for h in hits] for hits in col.search_many(texts, k=10, vectors=qvecs)]
    client = QdrantClient(path=exported["qdrant"].split(":", 1)[1])
    table = connect(exported["lancedb"].split(":", 1)[1].split("#")[0]).open_table("scifact")
    try:
        for q, want in zip(qvecs, ours):
            points = client.query_points("slimvec", query=q.tolist(), limit=200, with_payload=True).points
            qd = _doc_ranking([(p.payload["doc_id"], p.score) for p in points if "doc_id" in p.payload], 10)
            rows = table.search(q.tolist()).metric("dot").limit(200).to_list()
            ld = _doc_ranking([(r["doc_id"], 1.0 - r["_distance"]) for r in rows], 10)
            for peer in (qd, ld):
                assert [d for d, _ in peer] == [d for d, _ in want]
                np.testing.assert_allclose([s for _, s in peer], [s for _, s in want], atol=1e-5)
    finally:
        client.close()


@pytest.mark.parametrize("kind", ["qdrant", "lancedb", "parquet"])
def test_import_back_gives_an_identical_collection(built_collection: Path, exported, scifact_judged,
                                                   tmp_path: Path, kind: str) -> None:
    texts = [t for t, _ in scifact_judged.values()]
    with import_records(exported[kind], tmp_path / "back") as back, Collection.open(built_collection) as col:
        assert back.check() == []
        assert len(back) == len(col) and back.info()["chunks"] == col.info()["chunks"]
        assert list(back.store.iter_documents()) == list(col.store.iter_documents())
        vecs = col.encoder.encode_queries(texts)
        a = back.search_many(texts, k=10, vectors=vecs)
        b = col.search_many(texts, k=10, vectors=vecs)
        assert [[(h.id, h.score, h.chunk_start, h.chunk_end) for h in hits] for hits in a] == \
               [[(h.id, h.score, h.chunk_start, h.chunk_end) for h in hits] for hits in b]


def test_cli_export_import_and_bad_targets(built_collection: Path, tmp_path: Path) -> None:
    target = f"parquet:{tmp_path / 'c.parquet'}"
    res = CliRunner().invoke(cli_app, ["export", str(built_collection), "--to", target, "--json"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli_app, ["export", str(built_collection), "--to", target])
    assert res.exit_code != 0 and "already exists; exports never overwrite" in res.output
    res = CliRunner().invoke(cli_app, ["import", target, "-c", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["documents"] == 300
    with pytest.raises(ConfigError, match="use qdrant:PATH, lancedb:PATH or parquet:FILE"):
        read_records(f"mongo:{tmp_path}")
    with pytest.raises(ConfigError, match="keeps token vectors, which exports do not carry"):
        import_records(target, tmp_path / "mv", "multivector")
    meta, records = read_records(target)
    assert meta["model"] == "all-MiniLM-L6-v2" and meta["dim"] == 384 and len(records) >= 300


def test_import_refuses_records_that_do_not_fit(built_collection: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    src = tmp_path / "c.parquet"
    with Collection.open(built_collection) as col:
        export_collection(col, f"parquet:{src}")
    table = pq.read_table(src)
    rows = table.to_pylist()
    rows[0]["end"] = 10**9  # a span past its document's text
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.from_pylist(rows, schema=table.schema), bad)
    with pytest.raises(IngestError, match=f"document {rows[0]['doc_id']!r} chunk 0: span or vector does not fit"):
        import_records(f"parquet:{bad}", tmp_path / "never")


def _sectioned(doc_id: str, parts: list[tuple[str, str, tuple[str, ...]]]) -> Document:

    text, sections = "", []
    for sid, part, path in parts:
        start = len(text) + (1 if text else 0)
        text = f"{text} {part}" if text else part
        sections.append(Section(sid, start, len(text), path))
    return Document(doc_id, text, doc_id.upper(), {"n": len(parts)}, tuple(sections))


@pytest.mark.parametrize("kind", ["qdrant", "lancedb", "parquet"])
def test_given_sections_and_heading_paths_survive_export_and_import(tmp_path: Path, kind: str) -> None:
    long_part = ("Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity. "
                 "She was the first woman to win a Nobel Prize and the only person to win it in two sciences.")
    docs = [_sectioned("curie", [("c-intro", "Marie Curie, a scientist.", ("Curie",)),
                                 ("c-life", long_part, ("Curie", "Life and work")),
                                 ("c-end", "She died in 1934.", ())]),
            _sectioned("vienna", [("v-0", "The Congress of Vienna met in 1814.", ("Vienna", "Congress"))]),
            Document("plain", "Utrecht is a city in the Netherlands.", "Utrecht")]
    src = tmp_path / "src"
    with Collection.create(src, model="all-MiniLM-L6-v2", chunk_tokens=24, chunk_overlap=0) as col:
        col.add(docs)
        col.create_field_index("n")  # its name travels with the export, and the import makes it again
        rows = sorted(col.store.sections_for_rows(list(range(col.info()["rows"]))).values())
        assert sum(r.section_id == "c-life" for r in rows) >= 2  # the long section is cut into several chunks
        target = {"qdrant": f"qdrant:{tmp_path / 'q'}", "lancedb": f"lancedb:{tmp_path / 'l'}",
                  "parquet": f"parquet:{tmp_path / 'p.parquet'}"}[kind]
        export_collection(col, target)
        queries = ["Nobel Prize in two sciences", "Congress of Vienna", "city in the Netherlands"]
        want = [[(h.id, h.section, h.chunk_start, h.chunk_end, round(h.score, 6)) for h in hits]
                for hits in col.search_many(queries, k=5, unit="section")]
    expected = sorted((r.doc_id, r.start, r.end, r.section_id, r.heading_path) for r in rows)  # rows: id order
    with import_records(target, tmp_path / "back") as back:
        got = sorted(back.store.sections_for_rows(list(range(back.info()["rows"]))).values())
        assert sorted((r.doc_id, r.start, r.end, r.section_id, r.heading_path) for r in got) == expected
        assert ("curie", "c-life", ("Curie", "Life and work")) in {(r.doc_id, r.section_id, r.heading_path) for r in got}
        hits = back.search_many(queries, k=5, unit="section")
        assert [[(h.id, h.section, h.chunk_start, h.chunk_end, round(h.score, 6)) for h in hs] for hs in hits] == want
        assert want[0][0][:2] == ("curie", "c-life") and back.check() == []
        assert back.field_indexes() == ["n"] and [d.id for d in back.scroll({"n": {"$gte": 2}})[0]] == ["curie"]


def test_import_rebuilds_the_exported_profile_unless_told_otherwise(built_collection: Path, tmp_path: Path) -> None:
    from slimvec.profiles import load_profile

    first = f"parquet:{tmp_path / 'f32.parquet'}"
    with Collection.open(built_collection) as col:
        export_collection(col, first)
    with import_records(first, tmp_path / "int8", "int8") as c8:
        second = f"parquet:{tmp_path / 'int8.parquet'}"
        export_collection(c8, second)
        qv = c8.encoder.encode_queries(["cell biology", "vaccine trial"])
        want = [[(h.id, h.score) for h in hits] for hits in c8.search_many(["a", "b"], vectors=qv, k=10)]
    res = CliRunner().invoke(cli_app, ["import", second, "-c", str(tmp_path / "again"), "--json"])
    assert res.exit_code == 0, res.output
    with Collection.open(tmp_path / "again") as again:
        assert again.manifest["profile"]["name"] == "int8"  # not the exact-f32 an import used to build
        got = [[(h.id, h.score) for h in hits] for hits in again.search_many(["a", "b"], vectors=qv, k=10)]
    assert got == want
    custom = load_profile("binary-rescore").model_copy(update={"name": "mine"}).model_dump(mode="json")
    (tmp_path / "mine.json").write_text(json.dumps(custom))
    res = CliRunner().invoke(cli_app, ["import", second, "-c", str(tmp_path / "mine"), "--profile-file",
                                       str(tmp_path / "mine.json")])
    assert res.exit_code == 0, res.output
    with Collection.open(tmp_path / "mine") as mine:
        assert mine.manifest["profile"]["name"] == "mine" and mine.manifest["profile"]["codec"] == custom["codec"]


@pytest.mark.parametrize("value", [0.5, True, "1"])
def test_import_refuses_a_chunk_number_that_is_not_whole(built_collection: Path, tmp_path: Path, value) -> None:
    # A foreign writer's float column: int(0.5) was silently chunk 0, a second chunk 0 of its document.
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "c.parquet"
    with Collection.open(built_collection) as col:
        export_collection(col, f"parquet:{src}")
    table = pq.read_table(src)
    chunks = table.column("chunk").to_pylist()
    chunks[1] = value
    kind = pa.float64() if isinstance(value, float) else pa.bool_() if isinstance(value, bool) else pa.string()
    cells = [value if i == 1 else (bool(c) if kind == pa.bool_() else str(c) if kind == pa.string() else float(c))
             for i, c in enumerate(chunks)]
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("chunk"), "chunk", pa.array(cells, kind)), bad)
    with pytest.raises(ConfigError, match=r"not a readable slimvec export .*chunk .*not a whole number"):
        import_records(f"parquet:{bad}", tmp_path / "never")
    assert not (tmp_path / "never").exists()
