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


def paired_bootstrap(before: np.ndarray, after: np.ndarray, resamples: int = 10_000, seed: int = 0
                     ) -> tuple[float, float, float]:
    """(mean of after - before, 2.5th, 97.5th percentile of that mean over query sets resampled with
    replacement): the paired bootstrap 95% interval of a per-query metric difference (Efron & Tibshirani)."""
    diff = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    means = diff[np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def randomization_p(before: np.ndarray, after: np.ndarray, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired randomization (sign-flip) test of mean(after - before) = 0 (Smucker,
    Allan & Carterette 2007, "A comparison of statistical significance tests for IR evaluation")."""
    diff = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(resamples, len(diff)))
    return float(np.mean(np.abs((signs * diff).mean(axis=1)) >= abs(diff.mean()) - 1e-12))


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
