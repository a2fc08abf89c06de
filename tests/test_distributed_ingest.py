"""Distributed ingest on Ray Data (`slimvec.distributed.ingest`): the same documents, chunks, vectors and
per-record errors as single-process ingest; a run whose driver or encoder actor is killed part way keeps what it
committed, and rerun gives the uninterrupted collection."""

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import ray

from slimvec import Collection
from slimvec.distributed import open_sharded
from slimvec.distributed.ingest import index
from slimvec.errors import CollectionError, ConfigError, IngestError
from slimvec.ingest import read_sources

MODEL = "wordllama"  # a real static model: these files test Ray plumbing, and torch actors cost ~20 s per run
N_DOCS = 32


@pytest.fixture(scope="module")
def sources(tmp_path_factory, scifact_docs):
    """Two JSONL files of SciFact abstracts; the second holds an empty text, a repeat of an id from the first
    file, and a line that is not JSON."""
    d = tmp_path_factory.mktemp("sources")
    docs = scifact_docs[:N_DOCS]
    a, b = d / "a.jsonl", d / "b.jsonl"
    rows = [{"_id": x.id, "title": x.title, "text": x.text} for x in docs]
    a.write_text("".join(json.dumps(r) + "\n" for r in rows[:20]), encoding="utf-8")
    bad = [json.dumps({"_id": "empty", "title": "", "text": " "}), json.dumps(rows[0]), "{not json"]
    b.write_text("".join(json.dumps(r) + "\n" for r in rows[20:]) + "\n".join(bad) + "\n", encoding="utf-8")
    return [a, b]


@pytest.fixture(scope="module")
def single(tmp_path_factory, sources):
    """The same sources ingested by one process (what `slimvec index` without --ray does) and its reports."""
    path = tmp_path_factory.mktemp("single") / "col"
    errors: list[str] = []
    with Collection.create(path, model=MODEL) as col:
        col.upsert(read_sources(sources, on_error=lambda e: errors.append(str(e))))
    return path, errors


@pytest.fixture(scope="module")
def distributed(ray_cluster, tmp_path_factory, sources):
    path = tmp_path_factory.mktemp("dist") / "col"
    errors: list[str] = []
    n = index(sources, path, shards=2, workers=ray_cluster, batch_size=8, commit_docs=8, model=MODEL,
              on_error=lambda e: errors.append(str(e)))
    return path, errors, n


def snapshot(path: Path) -> dict[str, tuple]:
    """Every stored document: (title, text, metadata, chunk spans, chunk vectors), over all shards."""
    holder = open_sharded(path) if (path / "shards.json").exists() else Collection.open(path)
    cols = [s.core.col for s in holder.shards] if hasattr(holder, "shards") else [holder]
    out = {}
    for col in cols:
        # One committed state: a run may commit between reading the rows and the documents (a document whose
        # rows the earlier read did not hold failed the test with an IndexError, once in three fresh-clone runs).
        with col.reading():
            vectors = np.array(col.store.vectors())
            for d in col.store.iter_documents():
                chunks = col.store.chunks_of(d["id"])
                out[d["id"]] = (d["title"], d["text"], d["metadata"], [(s, e) for _, s, e in chunks],
                                vectors[[r for r, _, _ in chunks]])
    holder.close()
    return out


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for doc_id, (title, text, meta, spans, vecs) in want.items():
        assert got[doc_id][:4] == (title, text, meta, spans), doc_id
        # a transformer's last bits depend on the batch a text is padded in (docs/scale.md)
        np.testing.assert_allclose(got[doc_id][4], vecs, atol=2e-5)


def test_same_documents_chunks_vectors_and_reports_as_single_process(single, distributed, sources):
    (one, one_errors), (many, many_errors, n) = single, distributed
    a, b = sources
    assert n == N_DOCS
    assert many_errors == one_errors == [
        f"{b}:{N_DOCS - 20 + 1}: text: empty",
        f"{b}:{N_DOCS - 20 + 2}: _id: duplicate id {json.loads(a.read_text().splitlines()[0])['_id']!r} "
        f"(first seen at {a}:1)",
        f"{b}:{N_DOCS - 20 + 3}: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
    ]
    want, got = snapshot(one), snapshot(many)
    assert len(want) == N_DOCS and sum(len(v[3]) for v in want.values()) > N_DOCS  # some abstracts are chunked
    assert_same(got, want)
    with open_sharded(many) as col:  # documents are where the router looks for them
        assert all(len(s.core.col) > 0 for s in col.shards) and col.check() == []
        assert all(col.get(i) is not None for i in want)


def test_strict_stops_at_the_first_bad_record_with_its_one_line_error(ray_cluster, sources, tmp_path):
    with pytest.raises(IngestError, match=rf"^{sources[1]}:{N_DOCS - 20 + 1}: text: empty$"):
        index(sources, tmp_path / "col", workers=1, model=MODEL, strict=True)


def test_shard_count_must_match_and_token_collections_are_refused(distributed, tmp_path):
    with pytest.raises(ConfigError, match=r"has 2 shards, not 3"):
        index([], distributed[0], shards=3)
    with pytest.raises(ConfigError, match=r"keeps token vectors"):
        index([], tmp_path / "mv", profile="multivector")
    assert not (tmp_path / "mv").exists()  # refused before anything is created


def test_rerun_after_the_driver_is_killed_gives_the_uninterrupted_collection(ray_cluster, distributed, sources,
                                                                             tmp_path, caplog):
    path = tmp_path / "col"
    worker = Path(__file__).parent / "ingest_kill_worker.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    address = ray.get_runtime_context().gcs_address
    run = subprocess.run([sys.executable, str(worker), address, str(path), "2", str(ray_cluster), MODEL,
                          *map(str, sources)], env=env,
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]  # SIGKILL, from inside its second commit
    assert len(snapshot(path)) == 16  # two committed batches of 8 survive the kill, nothing else was stored
    errors: list[str] = []
    with caplog.at_level(logging.INFO, logger="slimvec.ingest"):
        n = index(sources, path, workers=ray_cluster, batch_size=8, commit_docs=8,
                  on_error=lambda e: errors.append(str(e)))
    assert n == N_DOCS and errors == distributed[1]
    # what the killed run committed is found stored as given and not encoded again
    assert f"{N_DOCS} documents written: 16 encoded by the encoder actors, 16 found stored as given" in caplog.text
    assert_same(snapshot(path), snapshot(distributed[0]))


def test_encoder_actor_killed_mid_run_loses_nothing_committed_and_a_rerun_finishes(ray_cluster, distributed, sources,
                                                                                   tmp_path):
    import threading
    import time

    import psutil

    path = tmp_path / "col"
    result: list = []

    def run() -> None:
        try:
            result.append(index(sources, path, shards=2, workers=ray_cluster, batch_size=2, commit_docs=2, model=MODEL,
                                on_error=lambda e: None))
        except Exception as e:  # noqa: BLE001 - the run may fail on the lost actor; the rerun must finish it
            result.append(e)

    driver = threading.Thread(target=run)
    driver.start()
    while driver.is_alive() and not ((path / "shards.json").exists() and snapshot(path)):
        time.sleep(0.1)  # until a batch is committed: the actors are encoding
    # this session's Ray runs under this process, so its actor processes are our descendants
    victim = next(p for p in psutil.Process().children(recursive=True) if "ChunkEncoder" in " ".join(p.cmdline()))
    victim.kill()
    driver.join()
    want = snapshot(distributed[0])
    kept = snapshot(path)
    assert_same(kept, {i: want[i] for i in kept})  # whatever was committed is intact
    n = index(sources, path, workers=ray_cluster, batch_size=8, commit_docs=8)
    assert n == N_DOCS
    assert_same(snapshot(path), want)


# `slimvec index --ray --shards 2` through its CLI, SIGKILLed right after the first shard collection is made (before
# the router manifest, written last, exists): the directory an interrupted create leaves.
_KILLED_IN_CREATE = """
import os, signal, sys
from slimvec.collection import Collection
from slimvec.cli import app
made = Collection.create.__func__
def create_then_killed(cls, *args, **kwargs):
    col = made(cls, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
Collection.create = classmethod(create_then_killed)
address, path, model, *sources = sys.argv[1:]
app(["index", *sources, "-c", path, "--ray", "--address", address, "--shards", "2", "--workers", "1", "--model", model])
"""


def test_rerun_of_the_same_command_after_a_kill_in_create_finishes_the_job(ray_cluster, distributed, sources,
                                                                           tmp_path):
    path = tmp_path / "col"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    address = ray.get_runtime_context().gcs_address
    run = subprocess.run([sys.executable, "-c", _KILLED_IN_CREATE, address, str(path), MODEL, *map(str, sources)], env=env,
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    assert (path / "shards" / "000" / "manifest.json").is_file() and not (path / "shards.json").exists()
    # without --shards the directory is named as an interrupted sharded create, not taken for a plain collection
    with pytest.raises(ConfigError, match=r"creation was interrupted .*rerun with --shards N"):
        index(sources, path, workers=ray_cluster)
    n = index(sources, path, shards=2, workers=ray_cluster, batch_size=8, commit_docs=8, model=MODEL,
              on_error=lambda e: None)
    assert n == N_DOCS
    assert_same(snapshot(path), snapshot(distributed[0]))
    # a directory that holds anything else is still refused, and left as it is
    other = tmp_path / "other"
    (other / "shards" / "000").mkdir(parents=True)
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(CollectionError, match="directory is not empty"):
        index(sources, other, shards=2, workers=ray_cluster, model=MODEL)
    assert (other / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_ray_lines_written_to_stderr_go_to_the_log_and_the_rest_passes(tmp_path, capfd):
    from slimvec.distributed.ray_logs import ray_lines_to_log, split_ray_lines

    line = b"[2026-11-30 07:36:30,157 E 21333 21333] core_worker.cc:2465: Actor with class name: 'X' ...\n"
    assert split_ray_lines(b"ok\n" + line + b"bar 3/10\r") == (b"ok\nbar 3/10\r", line)
    assert split_ray_lines(b"[not ray] x\n") == (b"[not ray] x\n", b"")
    log = tmp_path / "ray.log"
    with ray_lines_to_log(log):
        os.write(2, line)  # as Ray's C++ logger writes: straight to descriptor 2
        os.write(2, b"a warning of ours\n")
        print("progress", file=sys.stderr)
    assert log.read_bytes() == line
    err = capfd.readouterr().err
    assert "a warning of ours" in err and "progress" in err and "core_worker" not in err
    with ray_lines_to_log(tmp_path / "none.log"):
        os.write(2, b"nothing of Ray's\n")
    assert not (tmp_path / "none.log").exists() and "nothing of Ray's" in capfd.readouterr().err


def test_cli_index_on_its_own_local_ray_shows_progress_but_no_ray_log_line(sources, tmp_path):
    """`slimvec index --ray` with no --address starts (and stops) a local Ray instance of its own: the terminal
    gets slimvec's progress, skipped records and summary, no line of Ray's own logging."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "slimvec.cli", "index", *map(str, sources), "-c", str(tmp_path / "col"), "--ray",
           "--shards", "2", "--workers", "1", "--model", MODEL]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        stdout, stderr = run.communicate()
    assert run.returncode == 0, stderr[-2000:]
    assert f"indexed {N_DOCS} documents (3 skipped)" in stdout
    assert "indexing documents" in stderr and stderr.count("skipped:") == 3
    assert not re.search(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\]", stderr, re.M), stderr
    log = Path(tempfile.gettempdir()) / f"slimvec-ray-{run.pid}.log"  # the lines taken off the terminal: kept
    try:
        assert "core_worker" in log.read_text(encoding="utf-8")
    finally:
        log.unlink(missing_ok=True)
