"""Short crash-safety and load runs (the long ones: benchmarks/crash.py, benchmarks/load.py)."""

from __future__ import annotations

import random

import httpx
from _reliability import crash_once, load_run
from _server_util import AUTH, KEY, make_collection

from slimvec.server import create_app
from slimvec.server.runner import server_thread


def test_sigkill_during_adds_loses_nothing_promised(tmp_path):
    path = tmp_path / "col"
    make_collection(path).close()
    rng = random.Random(20261125)
    total_printed = 0
    for run in range(10):
        r = crash_once(path, run, rng)
        assert r["signal"] == -9, r
        assert r["problems"] == [], r
        assert r["missing"] == 0, r
        assert r["chunkless"] == 0, r
        total_printed += r["printed"]
    assert total_printed > 0  # the kills did land while adds were going on


def test_searches_while_a_writer_adds(tmp_path, capsys):
    col = make_collection(tmp_path / "col")
    app = create_app({"col": col}, api_key=KEY)
    words = ["bone", "vitamin", "immune", "heart", "coffee", "exercise", "sleep", "memory"]
    with server_thread(app) as base:
        local = __import__("threading").local()

        def http() -> httpx.Client:
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=base, timeout=30)
            return local.c

        def search(i: int) -> None:
            r = http().get("/api/collections/col/search",
                           params={"q": f"{words[i % 8]} {words[(i // 8) % 8]}", "k": 5,
                                   "filter": '{"year": {"$gte": 2000}}' if i % 3 == 0 else ""})
            r.raise_for_status()

        def write(i: int) -> None:
            docs = [{"id": f"w{i}-{j}", "text": f"{words[j % 8]} note {i} {j}", "metadata": {"year": 2000 + j}}
                    for j in range(10)]
            http().post("/api/collections/col/documents", json=docs, headers=AUTH).raise_for_status()

        result = load_run(search, write, clients=8, seconds=5)
    with capsys.disabled():
        print(f"\nload (8 clients, real uvicorn on loopback, FakeEncoder, 5 s): {result['searches']} searches "
              f"({result['searches_per_s']:.0f}/s), {result['writes']} writes of 10 docs, {result['errors']} errors, "
              f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    assert result["errors"] == 0, result["first_errors"]
    assert result["searches"] > 50 and result["writes"] > 0
    assert col.check() == []
    assert len(col) == 4 + 10 * result["writes"]
    col.close()
