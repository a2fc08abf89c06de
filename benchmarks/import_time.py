"""Cold start: wall time of `import slimvec` and `slimvec --help`, and which heavy libraries they import.

    PYTHONPATH=src .venv/bin/python benchmarks/import_time.py [--baseline-src /path/to/old/src] [--repeat 7]

Each measurement is a fresh interpreter (median of --repeat runs); with --baseline-src the same runs are made
against another checkout's `src` in the same run, and the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "sentence_transformers", "transformers", "fastapi", "uvicorn", "matplotlib", "sklearn",
         "faiss", "bm25s", "numba", "scipy", "pyarrow", "ranx")
PROBE = ("import sys, json, {stmt}; "
         "print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
CASES = {
    "import slimvec": "slimvec",
    "slimvec --help": "slimvec.cli",
}


def _run(src: str, stmt: str, repeat: int) -> tuple[float, list[str]]:
    env = {**os.environ, "PYTHONPATH": src}
    times, mods = [], []
    for _ in range(repeat):
        if stmt == "slimvec.cli":
            code = ("import sys, json; sys.argv=['slimvec','--help']\nfrom slimvec.cli import app\n"
                    "try:\n    app()\nexcept SystemExit:\n    pass\n"
                    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")
        else:
            code = PROBE.format(stmt=stmt, heavy=HEAVY)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
        mods = json.loads((res.stderr if stmt == "slimvec.cli" else res.stdout).strip().splitlines()[-1])
    return statistics.median(times), mods


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print("| what | build | median s | heavy modules imported | ratio to baseline |")
    print("| --- | --- | ---: | --- | ---: |")
    for name, stmt in CASES.items():
        now, mods = _run(args.src, stmt, args.repeat)
        if args.baseline_src:
            base, bmods = _run(args.baseline_src, stmt, args.repeat)
            print(f"| {name} | baseline | {base:.2f} | {', '.join(bmods) or 'none'} | 1.00 |")
            print(f"| {name} | this | {now:.2f} | {', '.join(mods) or 'none'} | {now / base:.2f} |")
        else:
            print(f"| {name} | this | {now:.2f} | {', '.join(mods) or 'none'} | |")


if __name__ == "__main__":
    main()
