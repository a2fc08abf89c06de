"""Helpers shared by benchmark scripts: data location, timing, peak memory, tables."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SLIMVEC_DATA", REPO.parent / "shared" / "data"))


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """Records of a JSONL file (the first `limit`)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
                if limit and len(out) >= limit:
                    break
    return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 of durations, in milliseconds."""
    a = np.asarray(seconds) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def machine() -> str:
    """One line describing the machine the numbers come from."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table on stdout (pastes straight into BENCHMARKS.md)."""
    cells = [[f"{c:,.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join(" --- " for _ in headers) + "|")
    for r in cells:
        print("| " + " | ".join(r) + " |")


class Timer:
    """Context manager measuring wall-clock seconds."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
