"""Session 16 newcomer: `slimvec tune` on bad input. A damaged (truncated) probe query file is one line (a logged
warning while searches go on, a `check` problem), not a zipfile traceback; a query file line that `Collection.tune` would refuse is named by file and
line; zero query vectors and ten copies of one query are refused before anything is stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_retrievers_compressed import _clustered, _vector_collection
from typer.testing import CliRunner

from slimvec import Collection
from slimvec.cli import app
from slimvec.errors import CollectionError, ConfigError, IngestError
from slimvec.ingest.queries import read_queries
from slimvec.store import probes

ROWS = _clustered(300, 32, seed=3)


def _queries(n, seed):
    q = np.random.default_rng(seed).standard_normal((n, 32)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.fixture()
def hnsw(tmp_path):
    with _vector_collection(tmp_path / "h", ROWS, base="hnsw-f32") as col:
        yield col


def _search(path):
    col = Collection.open(path)
    try:
        col.search_many(["q"], vectors=_queries(1, 9), k=3)
    finally:
        col.close()


def _calibrated_on_rows(col) -> bool:
    return not (col.path / probes.FILE).exists() and col.info()["indexes"]["dense"]["calibration"]["probes"] == "rows"


def _cut_short(f):  # a copy cut short, a disk that filled up
    f.write_bytes(f.read_bytes()[:200])


def _cut_late(f):
    f.write_bytes(f.read_bytes()[:-30])


def _npy(f):  # np.save's format under the .npz name: numpy returns a bare array, not an archive
    with open(f, "wb") as out:
        np.save(out, _queries(20, 5))


def _garbage(f):
    f.write_bytes(b"garbage\n")


@pytest.mark.parametrize("damage", [_cut_short, _cut_late, _npy, _garbage])
def test_a_damaged_probe_file_is_a_warning_and_a_check_problem_and_search_goes_on(hnsw, damage, caplog):
    hnsw.tune(vectors=_queries(40, 1))
    path = hnsw.path
    hnsw.close()
    damage(path / probes.FILE)
    with pytest.raises(CollectionError, match=r"probe_queries\.npz: probe query file is damaged .*--reset") as e:
        probes.load(path, "fake", 32)
    assert "pickle" not in str(e.value)  # numpy's advice to load the file unsafely is not passed on
    with caplog.at_level("WARNING", logger="slimvec.store.store"):
        _search(path)  # a tuning file is a search knob: searching does not stop for it
        with Collection.open(path) as col:
            assert col.info()["indexes"]["dense"]["calibration"]["probes"] == "rows"  # calibrated as untuned
    assert any("probe query file is damaged" in r.getMessage() for r in caplog.records)
    run = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert run.exit_code == 1, run.output  # `check` reports it as a problem, as it does a damaged database
    report = json.loads(run.stdout)
    assert report["ok"] is False and len(report["problems"]) == 1 and "probe query file is damaged" in report[
        "problems"][0]
    run = CliRunner().invoke(app, ["tune", str(path), "--reset"])
    assert run.exit_code == 0 and not (path / probes.FILE).exists()
    _search(path)


@pytest.mark.parametrize("name,body,where", [
    ("q.txt", "".join(f"query number {i}\n" for i in range(6)) + "\u200b\n" + "last query\n", "q.txt:7"),
    ("q.jsonl", "".join(json.dumps({"text": f"query {i}"}) + "\n" for i in range(6))
     + '{"text": "\\u200b\\u00a0"}\n', "q.jsonl:7: text"),
    ("s.jsonl", "".join(json.dumps({"text": f"query {i}"}) + "\n" for i in range(3))
     + '{"text": "ab\\ud800"}\n', "s.jsonl:4: text"),
])
def test_a_query_tune_would_refuse_is_named_by_file_and_line(tmp_path, name, body, where):
    f = tmp_path / name
    f.write_text(body, encoding="utf-8")
    with pytest.raises(IngestError) as e:
        read_queries(f)
    assert str(e.value).startswith(str(tmp_path / where))
    # the command stops there, in one line, before it opens the collection (none exists at this path)
    run = CliRunner().invoke(app, ["tune", str(tmp_path / "no-collection"), "--queries", str(f)])
    assert run.exit_code == 2 and where in run.output and "Traceback" not in run.output


def test_zero_query_vectors_are_refused_and_nothing_is_stored(hnsw):
    q = _queries(20, 2)
    q[5] = 0.0
    with pytest.raises(ConfigError, match="query vector 5 has a zero vector"):
        hnsw.tune(vectors=q)
    assert _calibrated_on_rows(hnsw)


def test_ten_copies_of_one_query_are_not_ten_queries(hnsw):
    one = _queries(1, 3)
    with pytest.raises(ConfigError, match="at least 10 distinct queries, got 1"):
        hnsw.tune(vectors=np.repeat(one, 12, axis=0))
    with pytest.raises(ConfigError, match="at least 10 distinct queries, got 2"):
        hnsw.tune(["vitamin d"] * 6 + ["bone density"] * 6)
    assert _calibrated_on_rows(hnsw)
    # repeats beside ten distinct queries are kept (a query log repeats its frequent queries)
    q = np.concatenate([_queries(10, 4), np.repeat(one, 5, axis=0)])
    assert hnsw.tune(vectors=q)["dense"]["calibration"]["queries"] == 15


def test_cli_tune_of_an_empty_hnsw_collection_does_not_speak_of_inverted_lists(tmp_path):
    path = tmp_path / "empty"
    Collection.create(path, model="wordllama", profile="hnsw-f32").close()
    f = tmp_path / "q.txt"
    f.write_text("".join(f"how do {w} work\n" for w in ["tides", "glaciers", "volcanoes", "rivers", "lakes",
                                                         "caves", "canyons", "deserts", "reefs", "monsoons"]))
    run = CliRunner().invoke(app, ["tune", str(path), "--queries", str(f)])
    assert run.exit_code == 0, run.output
    assert "inverted lists" not in run.output and "stored" in run.output  # an HNSW graph has none
    assert (path / probes.FILE).exists()


def _beir(tmp_path, texts, judged):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    (d / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n"
                                             for i, t in enumerate(texts)), encoding="utf-8")
    (d / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\td1\t1\n" for q in judged))
    return d


def test_a_beir_folder_names_the_query_tune_would_refuse_and_an_empty_split(tmp_path):
    texts = [f"question {i}" for i in range(11)] + ["\u200b"]
    d = _beir(tmp_path, texts, ["q0", "q11"])
    for split in (None, "train"):
        with pytest.raises(IngestError) as e:
            read_queries(d, split)
        assert str(e.value).startswith(f"{d / 'queries.jsonl'}: query 'q11': text")
    d2 = _beir(tmp_path / "2", texts[:11], [])
    with pytest.raises(IngestError, match=r"qrels/train\.tsv: judges no queries"):
        read_queries(d2, "train")
    assert read_queries(d2) == texts[:11]


def test_cli_tune_reset_refuses_a_split_it_would_ignore(hnsw):
    hnsw.tune(vectors=_queries(20, 6))
    run = CliRunner().invoke(app, ["tune", str(hnsw.path), "--reset", "--split", "train"])
    assert run.exit_code == 2 and "--split" in run.output and "Traceback" not in run.output
    assert (hnsw.path / probes.FILE).exists()  # nothing was reset


def test_cli_tune_reset_of_a_sharded_collection_resets_every_shard(tmp_path):
    from fakes import FakeEncoder

    from slimvec.distributed.sharded import create_sharded

    create_sharded(tmp_path / "sh", 2, encoder=FakeEncoder()).close()
    for shard in ("000", "001"):  # as a tune of the sharded collection leaves them
        probes.save(tmp_path / "sh" / "shards" / shard, _queries(10, 7), "fake")
    run = CliRunner().invoke(app, ["tune", str(tmp_path / "sh"), "--reset"])
    assert run.exit_code == 0 and "stored queries forgotten" in run.output, run.output
    assert not any((tmp_path / "sh" / "shards" / s / probes.FILE).exists() for s in ("000", "001"))
