"""Tuning an index on the user's own queries (`Collection.tune`, `slimvec tune`): the IVF nprobe and the HNSW
efSearch are calibrated on them instead of on midpoints of stored rows, and stay so through reopen, growth,
compaction and other handles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_retrievers_compressed import _clustered, _recall_at_10, _vector_collection
from typer.testing import CliRunner

from slimvec import Collection, Document
from slimvec.cli import app
from slimvec.documents import Chunk
from slimvec.errors import CollectionError, ConfigError
from slimvec.store import probes

ROWS = _clustered(4000, 64, seed=1)


def _between(n, seed):
    """Queries unlike the midpoints of two rows the default calibration uses: each sits between two random rows
    and away from both (noise), as a real query sits between documents."""
    r = np.random.default_rng(seed)
    x = ROWS[r.integers(0, len(ROWS), n)] + ROWS[r.integers(0, len(ROWS), n)] + 0.5 * r.standard_normal((n, 64))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _cal(col):
    return col.info()["indexes"]["dense"]["calibration"]


@pytest.fixture()
def ivf(tmp_path):
    with _vector_collection(tmp_path / "c", ROWS, target_recall=0.9, oversample=40) as col:
        yield col


def test_nprobe_tuned_on_the_users_queries_reaches_the_target_on_more_of_them(ivf):
    tune_q, held_out = _between(200, 1), _between(200, 2)
    by_rows = _cal(ivf)
    assert by_rows["probes"] == "rows" and by_rows["recall"] >= 0.9
    missed = _recall_at_10(ivf, ROWS, held_out)
    assert missed < 0.85  # the midpoints of rows stop too early for these queries

    tuned = ivf.tune(vectors=tune_q)["dense"]
    cal = tuned["calibration"]
    assert cal["probes"] == probes.digest(tune_q) and cal["queries"] == 200 and cal["rows"] == len(ROWS)
    assert tuned["nprobe"] == cal["nprobe"] > by_rows["nprobe"]
    assert _recall_at_10(ivf, ROWS, tune_q) >= 0.9  # measured here by brute force, not taken from the call
    assert _recall_at_10(ivf, ROWS, held_out) >= 0.88  # unseen queries of the same kind: near the target too
    ivf._retrievers["dense"].ivf = (32, cal["nprobe"] // 2)  # half the lists miss the target on the queries
    assert _recall_at_10(ivf, ROWS, tune_q) < 0.9


def test_tuning_is_kept_on_reopen_seen_by_other_handles_and_reset(ivf, tmp_path):
    path = tmp_path / "c"
    other = Collection.open(path)
    try:
        assert other.info()["indexes"]["dense"]["calibration"]["probes"] == "rows"
        q = _between(100, 3)
        cal = ivf.tune(vectors=q)["dense"]["calibration"]
        assert cal["probes"] == probes.digest(q)
        seen = other.info()["indexes"]["dense"]  # the next look of a handle opened before the tuning
        assert seen["calibration"] == cal and seen["nprobe"] == cal["nprobe"]
    finally:
        other.close()
    with Collection.open(path) as again:
        assert _cal(again) == cal
        assert again.reset_tuning() is True
        assert _cal(again)["probes"] == "rows" and not (path / probes.FILE).exists()
        assert again.reset_tuning() is False


def _counting(monkeypatch, name):
    """Count the calls of `index.nprobe.<name>` (the real calibration still runs)."""
    from slimvec.index import nprobe

    real, calls = getattr(nprobe, name), []

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(nprobe, name, counted)
    return calls


@pytest.mark.parametrize("base", ["binary-ivf-rescore", "hnsw-f32"])
def test_other_handles_take_the_saved_calibration_instead_of_calibrating_again(base, tmp_path, monkeypatch):
    path, q = tmp_path / "c", _between(100, 11)
    knob = "nprobe" if base == "binary-ivf-rescore" else "ef_search"
    with _vector_collection(path, ROWS, base=base, target_recall=0.95) as col:
        other = Collection.open(path)
        try:
            assert other.info()["indexes"]["dense"]["calibration"]["probes"] == "rows"
            calls = _counting(monkeypatch, "calibrate_nprobe" if knob == "nprobe" else "calibrate_ef")
            tuned = col.tune(vectors=q)["dense"]
            assert len(calls) == 1  # the tuning handle's own calibration
            seen = other.info()["indexes"]["dense"]  # the other handle's next look: the saved calibration
            assert len(calls) == 1 and seen["calibration"] == tuned["calibration"] and seen[knob] == tuned[knob]
            assert seen["calibration"]["probes"] == probes.digest(q)
            assert other.reset_tuning() is True and len(calls) == 2
            assert col.info()["indexes"]["dense"]["calibration"]["probes"] == "rows" and len(calls) == 2
        finally:
            other.close()


def test_a_damaged_saved_calibration_is_not_taken(tmp_path, monkeypatch):
    path, q = tmp_path / "h", _between(100, 12)
    with _vector_collection(path, ROWS, base="hnsw-f32", target_recall=0.95) as col:
        other = Collection.open(path)
        try:
            other.info()
            cal = col.tune(vectors=q)["dense"]["calibration"]
            (path / "index" / "hnsw.json").write_text('{"ef_search": 16, "calibration": "garbage"')
            calls = _counting(monkeypatch, "calibrate_ef")
            assert other.info()["indexes"]["dense"]["calibration"] == cal and len(calls) == 1  # calibrated itself
        finally:
            other.close()


def test_searches_through_the_tuning_handle_go_on_while_it_calibrates(ivf, monkeypatch):
    import threading

    from slimvec.index import nprobe

    real, seen = nprobe.calibrate_nprobe, {}

    def calibrate_while_searching(*args, **kwargs):
        t = threading.Thread(target=lambda: seen.update(hits=ivf.search_many(["q"], vectors=ROWS[:1], k=5,
                                                                             mode="dense", rerank="none")))
        t.start()
        t.join(120)  # a deadlock guard only: a search blocked by the tuning would still be waiting here
        seen["finished"] = not t.is_alive()
        seen["nprobe during"] = ivf._retrievers["dense"].index.nprobe
        return real(*args, **kwargs)

    before = ivf._retrievers["dense"].index.nprobe
    monkeypatch.setattr(nprobe, "calibrate_nprobe", calibrate_while_searching)
    tuned = ivf.tune(vectors=_between(200, 13))["dense"]
    assert seen["finished"] and [h.id for h in seen["hits"][0]][0] == "d0"
    assert seen["nprobe during"] == before != tuned["nprobe"]  # the old calibration served meanwhile


def test_later_calibrations_use_the_stored_queries(tmp_path):
    q = _between(100, 4)
    with _vector_collection(tmp_path / "c", ROWS[:1500], target_recall=0.9) as col:
        col.tune(vectors=q)
        more = [Document(f"e{i}", f"row {i}") for i in range(1500, 4000)]
        col.add_encoded(more, [Chunk(d.id, 0, 0, len(d.text), d.text) for d in more], ROWS[1500:])
        cal = _cal(col)  # the rows more than doubled: calibrated again, on the same queries
        assert cal["rows"] == 4000 and cal["probes"] == probes.digest(q)
        col.delete([f"d{i}" for i in range(0, 1500, 2)])
        col.compact()
        assert _cal(col)["probes"] == probes.digest(q) and (tmp_path / "c" / probes.FILE).exists()


def test_hnsw_ef_search_tuned_on_the_queries(tmp_path):
    q = _between(100, 5)
    with _vector_collection(tmp_path / "h", ROWS, base="hnsw-f32", target_recall=0.97) as col:
        assert _cal(col)["probes"] == "rows"
        described = col.tune(vectors=q)["dense"]
        cal = described["calibration"]
        assert described["kind"] == "hnsw" and cal["probes"] == probes.digest(q) and cal["queries"] == 100
        assert described["ef_search"] == cal["ef_search"]
        assert _recall_at_10(col, ROWS, q) >= 0.97 or cal["ef_search"] == 1024


def test_queries_of_another_model_or_a_damaged_file_are_not_used(ivf, tmp_path):
    path = tmp_path / "c"
    q = _between(50, 6)
    probes.save(path, q, "another-model")  # as left by a collection migrated since
    ivf.store.bump_generation()
    assert _cal(ivf)["probes"] == "rows"
    ivf.tune(vectors=q)
    assert _cal(ivf)["probes"] == probes.digest(q)
    (path / probes.FILE).write_bytes(b"not an npz file")
    ivf.store.bump_generation()
    assert _cal(ivf)["probes"] == "rows"  # searches go on, calibrated as if untuned
    assert "probe query file is damaged" in " ".join(ivf.check())
    with pytest.raises(CollectionError, match=r"probe_queries\.npz: probe query file is damaged.*--reset"):
        probes.load(path, "fake", 64)
    assert ivf.reset_tuning() is True  # the way out the message names
    assert _cal(ivf)["probes"] == "rows" and ivf.check() == []


def test_bad_tuning_input_is_refused_and_nothing_is_stored(ivf, tmp_path):
    q = _between(20, 7)
    cases = [
        ({"vectors": q[:9]}, "at least 10 queries, got 9"),
        ({}, "texts or their vectors, one of the two"),
        ({"queries": ["a"] * 10, "vectors": q[:10]}, "one of the two"),
        ({"vectors": q[:, :32]}, r"shape \(20, 32\)"),
        ({"vectors": np.where(np.arange(64) == 3, np.nan, q)}, "finite"),
        ({"vectors": q[0]}, r"shape \(64,\)"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            ivf.tune(**kwargs)
    with pytest.raises(ConfigError, match="query is empty"):
        ivf.tune(["fine"] * 10 + [" "])
    assert not (tmp_path / "c" / probes.FILE).exists() and _cal(ivf)["probes"] == "rows"


def test_a_profile_with_nothing_to_calibrate_is_refused(tmp_path):
    with _vector_collection(tmp_path / "x", ROWS[:300], base="exact-f32") as col:
        with pytest.raises(ConfigError, match="'exact-f32' profile has nothing to tune"):
            col.tune(vectors=_between(10, 8))
    with _vector_collection(tmp_path / "f", ROWS[:2000], nprobe=4) as col:  # nprobe fixed by the profile
        with pytest.raises(ConfigError, match="nothing to tune"):
            col.tune(vectors=_between(10, 8))
        assert not (tmp_path / "f" / probes.FILE).exists()


def test_more_than_a_thousand_queries_keep_a_seeded_thousand(ivf):
    q = _between(1200, 9)
    first = ivf.tune(vectors=q)["dense"]["calibration"]
    assert first["queries"] == 1000
    assert ivf.tune(vectors=q)["dense"]["calibration"] == first  # the same sample again


def test_recent_queries_ring_keeps_the_last_n_in_order():
    from slimvec.search.recent import RecentQueries

    v = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    ring = RecentQueries(4)
    ring.add(v[:1])
    ring.add(v[1:3])
    assert np.array_equal(ring.vectors(), v[:3]) and len(ring) == 3
    ring.add(v[3:6])  # wraps around: the oldest two make room
    assert np.array_equal(ring.vectors(), v[2:6]) and len(ring) == 4
    ring.add(v)  # more than it holds at once: the last four
    assert np.array_equal(ring.vectors(), v[3:7])
    ring.resize(2)  # smaller: the newest two stay
    assert np.array_equal(ring.vectors(), v[5:7])
    ring.add(np.ones((1, 5), np.float32))  # another dimension (a model switch): the old space is dropped
    assert ring.vectors().shape == (1, 5)
    ring.resize(0)
    ring.add(v)
    assert len(ring) == 0 and ring.vectors().shape == (0, 0)
    for bad in (-1, 100_001, 2.5, True, "10"):
        with pytest.raises(ValueError, match="whole number from 0 to 100,000"):
            RecentQueries(bad)


def test_a_handle_keeps_its_recent_query_vectors_to_tune_on(ivf):
    assert ivf.recent_queries().shape == (0, 0) and "recent_queries" not in ivf.info()  # nothing kept by default
    ivf.search_many(["q"] * 5, vectors=_between(5, 14), k=3, mode="dense", rerank="none")
    assert ivf.recent_queries().shape == (0, 0)
    ivf.keep_queries(150)
    q = _between(200, 15)
    ivf.search_many(["q"] * 100, vectors=q[:100], k=3, mode="dense", rerank="none")
    for i in range(100, 200):  # lone queries, as a server sees them
        ivf.search_many(["q"], vectors=q[i : i + 1], k=3, mode="dense", rerank="none", with_payload=False)
    kept = ivf.recent_queries()
    assert np.array_equal(kept, q[50:]) and ivf.info()["recent_queries"] == {"kept": 150, "capacity": 150}
    cal = ivf.tune(vectors=kept)["dense"]["calibration"]
    assert cal["probes"] == probes.digest(q[50:]) and cal["queries"] == 150
    with pytest.raises(ConfigError, match="whole number from 0 to 100,000, got -1"):
        ivf.keep_queries(-1)
    assert len(ivf.recent_queries()) == 150  # a refused call changes nothing


# ---- the CLI, with a real model ------------------------------------------------------------------------------
DOCS = [f"Document {i} is about {w}." for i, w in enumerate(
    ["volcanoes", "tides", "glaciers", "deserts", "rainforests", "coral reefs", "monsoons", "earthquakes",
     "rivers", "lakes", "caves", "canyons"] * 5)]
QUERIES = ["why do volcanoes erupt", "what makes tides", "how glaciers move", "life in deserts",
           "rainforest animals", "coral bleaching", "monsoon season", "measuring earthquakes", "river deltas",
           "lake ecology", "cave formation", "canyon erosion"]


def test_cli_tune_from_a_text_file_a_jsonl_file_and_reset(tmp_path):
    path = tmp_path / "col"
    with Collection.create(path, model="wordllama", profile="hnsw-f32") as col:
        col.add([Document(f"d{i}", t) for i, t in enumerate(DOCS)])
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(QUERIES) + "\n\n", encoding="utf-8")
    run = CliRunner().invoke(app, ["tune", str(path), "--queries", str(txt)])
    assert run.exit_code == 0, run.output
    assert "dense: efSearch " in run.output and "on 12 of your queries (target 0.99)" in run.output
    with Collection.open(path) as col:
        vecs = col.encoder.encode_queries(QUERIES)
        assert _cal(col)["probes"] == probes.digest(np.asarray(vecs, np.float32))

    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("".join(json.dumps({"_id": str(i), "text": q}) + "\n" for i, q in enumerate(QUERIES[:11]))
                     + '{"_id": "x", "text": 5}\n', encoding="utf-8")
    run = CliRunner().invoke(app, ["tune", str(path), "--queries", str(jsonl)])
    assert run.exit_code == 2 and "q.jsonl:12: text: missing or not a non-empty string" in run.output
    assert "Traceback" not in run.output

    run = CliRunner().invoke(app, ["tune", str(path), "--reset", "--json"])
    assert run.exit_code == 0 and json.loads(run.output) == {"reset": True}
    run = CliRunner().invoke(app, ["tune", str(path)])
    assert run.exit_code != 0 and "give --queries FILE to tune, or --reset" in run.output


def test_http_tune_and_reset_on_a_running_server(tmp_path):
    import httpx
    from _server_util import AUTH, KEY

    from slimvec.server import create_app
    from slimvec.server.runner import server_thread

    path = tmp_path / "col"
    col = Collection.create(path, model="wordllama", profile="hnsw-f32")
    col.add([Document(f"d{i}", t) for i, t in enumerate(DOCS)])
    app = create_app({"col": col}, api_key=KEY)
    try:
        with server_thread(app) as base, httpx.Client(base_url=base, timeout=60, headers=AUTH) as http:
            assert httpx.post(f"{base}/api/collections/col/tune", json={"queries": QUERIES}).status_code == 401
            r = http.post("/api/collections/col/tune", json={"queries": QUERIES})
            assert r.status_code == 200, r.text
            cal = r.json()["indexes"]["dense"]["calibration"]
            assert cal["queries"] == 12 and cal["probes"] != "rows"
            assert http.get("/api/collections/col").json()["indexes"]["dense"]["calibration"] == cal
            r = http.post("/api/collections/col/tune", json={"queries": QUERIES[:3]})
            assert r.status_code == 400 and "at least 10 queries, got 3" in r.json()["detail"]
            r = http.post("/api/collections/col/tune", json={"queries": QUERIES, "reset": True})
            assert r.status_code == 422 and "or \"reset\": true" in r.json()["detail"]
            r = http.post("/api/collections/col/tune", json={"recent": True})
            assert r.status_code == 400 and "has kept 0 recent queries" in r.json()["detail"]
            assert "--keep-queries N" in r.json()["detail"]
            col.keep_queries(100)  # as `slimvec serve --keep-queries 100` does
            for q in QUERIES:
                assert http.get("/api/collections/col/search", params={"q": q, "k": 2}).status_code == 200
            r = http.post("/api/collections/col/tune", json={"recent": True})
            assert r.status_code == 200, r.text
            recent = np.asarray(col.encoder.encode_queries(QUERIES), np.float32)
            assert r.json()["queries"] == 12
            assert r.json()["indexes"]["dense"]["calibration"]["probes"] == probes.digest(recent)
            r = http.post("/api/collections/col/tune", json={"recent": True, "reset": True})
            assert r.status_code == 422 and "one of the three" in r.json()["detail"]
            r = http.post("/api/collections/col/tune", json={"reset": True})
            assert r.status_code == 200 and r.json() == {"reset": True}
            assert http.get("/api/collections/col").json()["indexes"]["dense"]["calibration"]["probes"] == "rows"
    finally:
        col.close()


def test_a_sharded_collection_tunes_every_shard_on_the_same_queries(tmp_path):
    from slimvec.distributed import create_sharded

    with create_sharded(tmp_path / "sh", shards=2, profile="hnsw-f32", model="wordllama") as sh:
        sh.add([Document(f"d{i}", t) for i, t in enumerate(DOCS)])
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(QUERIES), encoding="utf-8")
    run = CliRunner().invoke(app, ["tune", str(tmp_path / "sh"), "--queries", str(txt)])
    assert run.exit_code == 0, run.output
    assert "shard 0 dense: efSearch" in run.output and "shard 1 dense: efSearch" in run.output
    with Collection.open(tmp_path / "sh") as sh:
        vecs = np.asarray(sh.encoder.encode_queries(QUERIES), np.float32)
        cals = [s["indexes"]["dense"]["calibration"] for s in sh.info()["shards"]]
        assert [c["probes"] for c in cals] == [probes.digest(vecs)] * 2 and [c["queries"] for c in cals] == [12, 12]
        with pytest.raises(ConfigError, match="query is empty"):
            sh.tune(QUERIES + [""])
        assert sh.reset_tuning() is True
        assert [s["indexes"]["dense"]["calibration"]["probes"] for s in sh.info()["shards"]] == ["rows", "rows"]


def test_a_sharded_collection_on_ray_actors_tunes_every_shard(ray_cluster, tmp_path):
    from slimvec.distributed import create_sharded, open_sharded

    with create_sharded(tmp_path / "sh", shards=2, profile="hnsw-f32", model="wordllama") as sh:
        sh.add([Document(f"d{i}", t) for i, t in enumerate(DOCS)])
    with open_sharded(tmp_path / "sh", ray=True) as remote:
        vecs = np.asarray(remote.encoder.encode_queries(QUERIES), np.float32)
        tuned = remote.tune(QUERIES)["shards"]
        assert [t["dense"]["calibration"]["probes"] for t in tuned] == [probes.digest(vecs)] * 2
        assert remote.reset_tuning() is True
        assert [s["indexes"]["dense"]["calibration"]["probes"] for s in remote.info()["shards"]] == ["rows"] * 2
