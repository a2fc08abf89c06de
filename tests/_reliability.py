"""Crash and load runs shared by tests/test_reliability.py (short) and benchmarks/ (long)."""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
WRITER = HERE / "crash_writer.py"


def crash_once(path: Path, run: int, rng: random.Random, max_delay: float = 0.6) -> dict[str, Any]:
    """Start a writer, SIGKILL it at a random moment, reopen: returns what was found."""
    from fakes import FakeEncoder

    from slimvec import Collection

    batch = rng.choice([1, 1, 3, 20])
    proc = subprocess.Popen([sys.executable, str(WRITER), str(path), f"r{run}", str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if first.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"writer did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}")
    delay = rng.uniform(0.0, max_delay)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    printed = [line for line in out.splitlines() if line.strip()]
    if printed and not out.endswith("\n"):
        printed.pop()  # a line cut mid-write is not a completed promise
    with Collection.open(path, encoder=FakeEncoder()) as col:
        problems = col.check()
        missing = [i for i in printed if col.get(i) is None]
        counts = col.store.counts()
        chunked = {doc_id for _, doc_id in col.store.chunk_owners_from(0)}
        chunkless = sum(d["id"] not in chunked for d in col.store.iter_documents())
        # a writer must be able to go on after the crash
        from slimvec import Document

        col.add([Document(f"after-{run}", "written after a crash")])
        problems_after = col.check()
    return {"run": run, "batch": batch, "delay_s": delay, "printed": len(printed), "missing": len(missing),
            "problems": problems + problems_after, "chunkless": int(chunkless), "documents": counts["documents"],
            "signal": proc.returncode}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def load_run(search: Callable[[int], None], write: Callable[[int], None] | None, clients: int, seconds: float
             ) -> dict[str, Any]:
    """`clients` threads call search(i) and one thread calls write(i) (unless None) for `seconds`."""
    stop = time.monotonic() + seconds
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    writes = [0]

    def client(c: int) -> None:
        i = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                search(c * 1_000_000 + i)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors.append(f"search: {type(e).__name__}: {e}")
            lat[c].append(time.perf_counter() - t0)
            i += 1

    def writer() -> None:
        i = 0
        while time.monotonic() < stop:
            try:
                write(i)
                writes[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(f"write: {type(e).__name__}: {e}")
            i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    if write is not None:
        threads.append(threading.Thread(target=writer))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = [x for xs in lat for x in xs]
    return {"clients": clients, "seconds": wall, "searches": len(all_lat), "writes": writes[0],
            "errors": len(errors), "first_errors": errors[:5],
            "p50_ms": percentile(all_lat, 50) * 1000, "p99_ms": percentile(all_lat, 99) * 1000,
            "max_ms": max(all_lat) * 1000 if all_lat else float("nan"),
            "mean_ms": statistics.fmean(all_lat) * 1000 if all_lat else float("nan"),
            "searches_per_s": len(all_lat) / wall}
