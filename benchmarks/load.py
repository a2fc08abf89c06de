"""Load, long version: N concurrent HTTP clients search a real uvicorn server on loopback while a writer adds.

usage: .venv/bin/python benchmarks/load.py [--clients 8] [--seconds 30] [--docs 2000] [--real-model]
Loopback only (127.0.0.1, free port), bounded by --seconds. Prints errors, p50/p99 latency, throughput.
Default encoder: the FakeEncoder (measures the server, store and index, not the model);
--real-model uses all-MiniLM-L6-v2 for queries and the writer (slow: ~15 docs/s to encode).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx  # noqa: E402
from _reliability import load_run  # noqa: E402
from fakes import FakeEncoder  # noqa: E402

from slimvec import Collection, Document  # noqa: E402
from slimvec.server import create_app  # noqa: E402
from slimvec.server.runner import free_port, server_thread  # noqa: E402

KEY = "bench-key-0123456789abcdef"
WORDS = ("bone vitamin immune heart coffee exercise sleep memory tumour protein cell gene risk dose trial "
         "patient blood brain liver kidney").split()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


@contextmanager
def server_process(path: Path, real_model: bool) -> Iterator[str]:
    """uvicorn in a child process on 127.0.0.1 (its own GIL); yields the base URL."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).with_name("_serve.py")), str(path), str(port), KEY]
    proc = subprocess.Popen(cmd + (["--real-model"] if real_model else []))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/api/health", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--docs", type=int, default=2000, help="documents in the collection before the run")
    ap.add_argument("--write-batch", type=int, default=10)
    ap.add_argument("--real-model", action="store_true")
    ap.add_argument("--no-writer", action="store_true", help="searches only (baseline)")
    ap.add_argument("--in-process", action="store_true",
                    help="run the server in this process (shares the GIL with the clients) instead of a child")
    a = ap.parse_args()
    rng = random.Random(7)
    path = Path(tempfile.mkdtemp(prefix="slimvec-load-")) / "col"
    enc = None if a.real_model else FakeEncoder(dim=384)
    col = Collection.create(path, encoder=enc) if enc else Collection.create(path)
    t0 = time.perf_counter()
    col.add(Document(f"seed{i}", text(rng, 60), f"doc {i}", {"year": 1990 + i % 35, "group": "abc"[i % 3]})
            for i in range(a.docs))
    print(f"built {a.docs} docs in {time.perf_counter() - t0:.1f}s ({'real model' if a.real_model else 'FakeEncoder'})")
    auth = {"Authorization": f"Bearer {KEY}"}
    if a.in_process:
        server = server_thread(create_app({"col": col}, api_key=KEY))
    else:
        col.close()
        server = server_process(path, a.real_model)
    with server as base:
        local = threading.local()

        def http() -> httpx.Client:
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=base, timeout=60)
            return local.c

        def search(i: int) -> None:
            r = random.Random(i)
            params = {"q": text(r, 4), "k": 10}
            if i % 3 == 0:
                params["filter"] = json.dumps({"year": {"$gte": 2000}, "group": {"$in": ["a", "b"]}})
            http().get("/api/collections/col/search", params=params).raise_for_status()

        def write(i: int) -> None:
            r = random.Random(-i - 1)
            docs = [{"id": f"w{i}-{j}", "text": text(r, 60), "metadata": {"year": 2020}} for j in range(a.write_batch)]
            http().post("/api/collections/col/documents", json=docs, headers=auth).raise_for_status()

        res = load_run(search, None if a.no_writer else write, a.clients, a.seconds)
    if not a.in_process:
        col = Collection.open(path, encoder=enc)
    problems = col.check()
    docs_after = len(col)
    col.close()
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items()}, indent=1))
    print(f"\nSUMMARY encoder={'real' if a.real_model else 'fake'} writer={'off' if a.no_writer else 'on'} "
          f"server={'in-process' if a.in_process else 'child process'} "
          f"clients={res['clients']} seconds={res['seconds']:.1f} searches={res['searches']} "
          f"throughput={res['searches_per_s']:.1f}/s p50={res['p50_ms']:.1f}ms p99={res['p99_ms']:.1f}ms "
          f"max={res['max_ms']:.0f}ms errors={res['errors']} writes={res['writes']}x{a.write_batch} docs "
          f"docs_after={docs_after} check={'ok' if not problems else problems}")
    return 1 if res["errors"] or problems else 0


if __name__ == "__main__":
    sys.exit(main())
