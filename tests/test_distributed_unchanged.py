"""Distributed ingest skips documents stored unchanged (`slimvec.distributed.ingest`, upsert): a rerun over the same
sources encodes nothing and leaves no dead rows; a changed and an added document are the only ones encoded; a
document another writer changes between the actor's check and the driver's commit ends as this call's version.
Real local Ray and the bundled MiniLM, as tests/test_distributed_ingest.py. What was encoded is read from the
driver's summary line on the "slimvec.ingest" logger (documents that came back from the actors with vectors)
and from `add_encoded`'s line for documents it had to encode itself."""

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from slimvec import Collection, Document
from slimvec.distributed.ingest import index
from slimvec.distributed.router import shard_of

MODEL = "wordllama"  # a real static model: these files test Ray plumbing, and torch actors cost ~20 s per run
N_DOCS = 30
QUERIES = ["vitamin D deficiency", "cancer cells in mice", "protein folding", "risk of heart disease"]
SUMMARY = re.compile(r"(\d+) documents written: (\d+) encoded by the encoder actors, (\d+) found stored as given")
LATE = "changed by another writer since they were found unchanged; encoded again here"


def _rows(docs: list[Document]) -> str:
    return "".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs)


@pytest.fixture(scope="module")
def corpus(scifact_docs) -> list[Document]:
    return scifact_docs[:N_DOCS]


@pytest.fixture(scope="module", params=[None, 2], ids=["plain", "2-shards"])
def built(request, ray_cluster, tmp_path_factory, corpus) -> tuple[Path, Path, int | None]:
    """The corpus as one JSONL file, ingested once into a plain or a 2-shard collection (tests copy it)."""
    d = tmp_path_factory.mktemp("unchanged")
    source = d / "corpus.jsonl"
    source.write_text(_rows(corpus), encoding="utf-8")
    path = d / "col"
    assert index([source], path, shards=request.param, workers=ray_cluster, batch_size=8, commit_docs=8,
                 model=MODEL) == N_DOCS
    return source, path, request.param


def _copy(built, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built[1], tmp_path / "col"))


def _state(path: Path) -> tuple[dict, list]:
    """(info counts, every query's (id, score) hits) of the collection at `path`."""
    with Collection.open(path) as col:
        info = col.info()
        hits = [[(h.id, h.score) for h in hits] for hits in col.search_many(QUERIES, k=10)]
    return {k: info[k] for k in ("documents", "chunks", "rows", "dead_rows")}, hits


def _rerun(source: Path, path: Path, workers: int, caplog) -> tuple[int, tuple[int, int, int]]:
    """index() again over `source`; its return value and the summary line's (written, encoded, unchanged)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="slimvec.ingest"):
        n = index([source], path, workers=workers, batch_size=8, commit_docs=8)
    lines = [m for r in caplog.records if (m := SUMMARY.search(r.getMessage()))]
    assert len(lines) == 1, caplog.text
    return n, tuple(int(x) for x in lines[0].groups())


def test_rerun_over_the_same_sources_encodes_nothing_and_leaves_no_dead_rows(ray_cluster, built, tmp_path, caplog):
    path = _copy(built, tmp_path)
    before = _state(path)
    assert before[0]["dead_rows"] == 0 and before[0]["documents"] == N_DOCS
    n, summary = _rerun(built[0], path, ray_cluster, caplog)
    assert n == N_DOCS  # unchanged documents count as written, as today
    assert summary == (N_DOCS, 0, N_DOCS)  # no document came back encoded
    assert LATE not in caplog.text  # nor was any encoded by the driver
    assert _state(path) == before  # same rows, no dead rows, same ids and scores


def test_one_changed_and_one_added_are_the_only_documents_encoded(ray_cluster, built, tmp_path, corpus, caplog):
    path = _copy(built, tmp_path)
    changed = Document(corpus[5].id, corpus[5].text + " A revised sentence at the end.", corpus[5].title)
    added = Document("new-doc", "Vitamin D deficiency and the risk of fractures in older adults.", "Added")
    source = tmp_path / "edited.jsonl"
    source.write_text(_rows(corpus[:5] + [changed] + corpus[6:] + [added]), encoding="utf-8")
    with Collection.open(path) as col:
        info = col.info()
    shard = path / "shards" / f"{shard_of(changed.id, 2):03d}" if built[2] else path
    with Collection.open(shard) as col:
        old_rows = len(col.store.rows_of_documents([changed.id]))
    n, summary = _rerun(source, path, ray_cluster, caplog)
    assert n == N_DOCS + 1
    assert summary == (N_DOCS + 1, 2, N_DOCS - 1)  # the changed and the added document, nothing else
    assert LATE not in caplog.text
    with Collection.open(path) as col:
        after = col.info()
        assert after["dead_rows"] - info["dead_rows"] == old_rows  # only the changed document's old rows died
        assert after["documents"] == N_DOCS + 1
        assert col.get(changed.id).text == changed.text and col.get(added.id).title == "Added"
        assert col.search(added.text, k=1)[0].id == added.id


def test_a_document_changed_by_another_writer_after_the_actors_check_ends_as_this_calls_version(
        ray_cluster, built, tmp_path, corpus, caplog, monkeypatch):
    """The other writer is a second handle on the document's shard, writing in the driver process just before the
    driver's first commit that carries documents found unchanged: after every actor check of that batch and before
    the driver takes the writer lock (the window the re-check under the lock is for). `add_encoded` is wrapped only
    to place that write; the check, the encoding and the commit are the real ones."""
    path = _copy(built, tmp_path)
    victim = corpus[3]
    shard = path / "shards" / f"{shard_of(victim.id, 2):03d}" if built[2] else path
    real = Collection.add_encoded
    done: list[int] = []

    def interfere_then_add(self, docs, chunks, vectors, *args, unchanged=(), **kwargs):
        if not done and victim.id in set(unchanged):
            done.append(1)
            with Collection.open(shard) as other:
                other.routed_by = None  # a write of the shard's own document, as its router would send it
                other.upsert([Document(victim.id, "Someone else's version of this abstract.", "other", {})])
        return real(self, docs, chunks, vectors, *args, unchanged=unchanged, **kwargs)

    monkeypatch.setattr(Collection, "add_encoded", interfere_then_add)
    before = _state(path)
    n, summary = _rerun(built[0], path, ray_cluster, caplog)
    assert done and n == N_DOCS
    assert summary == (N_DOCS, 0, N_DOCS)  # the actors found every document unchanged ...
    assert LATE in caplog.text and repr(victim.id) in caplog.text  # ... the driver encoded the one changed meanwhile
    with Collection.open(path) as col:
        got = col.get(victim.id)
        assert (got.title, got.text) == (victim.title, victim.text)  # this call's version won
        assert col.info()["documents"] == N_DOCS
    # Its new rows score as the old ones did (same text, same model): the searches answer as before, up to the
    # last bits (the driver encodes it in a batch of its own).
    after = _state(path)
    for want, got_hits in zip(before[1], after[1]):
        assert [i for i, _ in got_hits] == [i for i, _ in want]
        assert [s for _, s in got_hits] == pytest.approx([s for _, s in want], abs=1e-5)
