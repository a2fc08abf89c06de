"""Session 14: a query or document that shows nothing is refused like an empty one; a collection whose database
file is gone is refused on open, not opened as an empty collection."""

from __future__ import annotations

import httpx
import pytest
from _server_util import DOCS, make_collection, snapshot

from slimvec import Collection, Document
from slimvec.documents import has_content
from slimvec.errors import CollectionError, ConfigError, IngestError

INVISIBLE = ["\u200b", "\x00", "\ufeff \u200d", "\u2060\t\u00ad", " \x1b "]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_text_has_no_content(text: str) -> None:
    assert not has_content(text)


@pytest.mark.parametrize("text", ["a", "\u200bé", " 中 ", "\x00 1", "🙂"])
def test_visible_text_has_content(text: str) -> None:
    assert has_content(text)


@pytest.fixture()
def col(tmp_path):
    c = make_collection(tmp_path / "col")
    yield c
    c.close()


@pytest.mark.parametrize("query", INVISIBLE)
def test_invisible_query_refused(col, query: str) -> None:
    with pytest.raises(ConfigError, match="empty"):
        col.search(query)


@pytest.mark.parametrize("text", ["\u200b\u200b", "\ufeff"])
def test_invisible_document_refused_and_nothing_stored(col, text: str) -> None:
    before = snapshot(col)
    with pytest.raises(IngestError, match="'z' .*nothing to embed"):
        col.add([Document("y", "fine text"), Document("z", text)])
    with pytest.raises(IngestError, match=f"'{DOCS[0].id}' .*nothing to embed"):
        col.upsert([Document("z", "fine text", title=text), Document(DOCS[0].id, text, title="\u200b")])
    assert snapshot(col) == before


def test_server_refuses_invisible_query(col) -> None:
    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    with server_thread(create_app({"col": col})) as base, httpx.Client(base_url=base, timeout=30) as http:
        for q in INVISIBLE:
            r = http.post("/api/collections/col/search", json={"q": q})
            assert r.status_code == 422 and "blank" in r.text, (q, r.text)
        assert http.post("/api/collections/col/search", json={"q": "vitamin bone"}).status_code == 200


def test_missing_database_refused_not_recreated(col) -> None:
    path = col.path
    col.close()
    (path / "slimvec.db").unlink()
    for name in ("slimvec.db-wal", "slimvec.db-shm"):
        (path / name).unlink(missing_ok=True)
    with pytest.raises(CollectionError, match="database is missing"):
        Collection.open(path)
    assert not (path / "slimvec.db").exists()



def _read(tmp_path, lines: list[str]) -> tuple[list[str], list[str]]:
    """(ids read, error lines) of a JSONL file through the readers `slimvec index` uses."""
    from slimvec.ingest import read_sources

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors: list[IngestError] = []
    docs = list(read_sources([src], on_error=errors.append))
    return [d.id for d in docs], [str(e) for e in errors]


@pytest.mark.parametrize("line", [
    '{"_id": "a", "text": "t", "year": 1, "year": 2}',
    '{"_id": "a", "text": "t", "metadata": {"k": "x", "k": "y"}}',
    '{"_id": "a", "_id": "b", "text": "t"}',
])
def test_jsonl_repeated_key_refused_with_line(tmp_path, line: str) -> None:
    ids, errors = _read(tmp_path, ['{"_id": "ok", "text": "fine"}', line])
    assert ids == ["ok"] and len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / 'in.jsonl'}:2: key ") and "appears twice" in errors[0]


def test_jsonl_metadata_key_at_two_levels(tmp_path) -> None:
    from slimvec.ingest import read_sources

    ids, errors = _read(tmp_path, ['{"_id": "a", "text": "t", "year": 2020, "metadata": {"year": 1999}}',
                                   '{"_id": "b", "text": "t", "year": 2020, "metadata": {"year": 2020, "k": 1}}'])
    assert ids == ["b"] and len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / 'in.jsonl'}:1: metadata key 'year' is given twice"), errors
    docs = list(read_sources([tmp_path / "in.jsonl"], on_error=lambda e: None))
    assert docs[0].metadata == {"year": 2020, "k": 1}


@pytest.mark.parametrize("key", ["page count", "année", "年份", "x-y_z 2", "a.$b"])
def test_metadata_keys_beyond_ascii_words_are_filterable(tmp_path, key: str) -> None:
    from slimvec.store.filters import parse_filter

    col = make_collection(tmp_path / "k", docs=[])
    nested = key.split(".")
    def meta(v):  # "a.$b" is the nested path a -> "$b"
        return {nested[0]: {nested[1]: v}} if len(nested) == 2 else {key: v}
    col.add([Document("one", "vitamin bone", metadata=meta(1)), Document("two", "heart attack", metadata=meta(2)),
             Document("three", "vitamin heart", metadata={"other": 1})])
    import json
    for flt, want in (({key: 2}, {"two"}), ({key: {"$gte": 1}}, {"one", "two"}), ({key: {"$exists": False}}, {"three"})):
        got = {h.id for h in col.search("vitamin heart bone", k=10, filter=parse_filter(json.dumps(flt)))}
        assert got == want, (flt, got)
    col.close()


def test_int64_bounds_are_both_storable_and_filterable(tmp_path) -> None:
    col = make_collection(tmp_path / "i", docs=[])
    lo, hi = -(2**63), 2**63 - 1
    col.add([Document("lo", "vitamin", metadata={"n": lo}), Document("hi", "vitamin", metadata={"n": hi})])
    assert col.get("lo").metadata == {"n": lo}
    assert {h.id for h in col.search("vitamin", filter={"n": lo})} == {"lo"}
    assert {h.id for h in col.search("vitamin", filter={"n": {"$gt": lo}})} == {"hi"}
    for bad in (lo - 1, hi + 1):
        with pytest.raises(IngestError, match="64-bit"):
            col.add([Document("x", "vitamin", metadata={"n": bad})])
    col.close()


def test_progress_bar_takes_a_total_learned_later(capsys) -> None:
    # `slimvec migrate` learns how many documents it re-embeds only from its first batch: the bar showed "n/?"
    from slimvec.progress import progress_bar

    with progress_bar("re-embedding documents", 0) as advance:
        advance(3, total=10)
        advance(4)
    err = capsys.readouterr().err
    assert "7/10" in err and "?" not in err, err
    with progress_bar("quiet", 0, enabled=False) as advance:
        advance(1, total=2)
    assert capsys.readouterr().err == ""
