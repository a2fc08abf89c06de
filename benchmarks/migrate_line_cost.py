"""What serving through a migration adds per query over a plain search of the collection.

    SLIMVEC_CACHE=/tmp/migrate-cache PYTHONPATH=src python benchmarks/migrate_line_cost.py \\
        [--data ../shared/data/scifact] [--pair all-MiniLM-L6-v2:bge-small-en-v1.5] [--queries 300]

Table 1, the per-query score line alone (migrate/line.py) against the number of references it keeps, on random
unit vectors (the cost does not depend on the values), beside the adapter: median of 2,000 calls after 50.
Table 1b (`layout`), the line's two products with the references as a transposed view (before session 14) or as
contiguous (dim, n) copies (ScoreLine now), alternating per query.
Table 2, one real migration at its start (the state migrate.py's "start" measures; encodings through the
embedding cache), one query at a time with its vectors given (no encoding): a plain search of the old collection
with the old model's query vector, the search through the migration with the new model's, and the parts of the
latter, interleaved per query (5 rounds over the queries, the median of each). "addition" is migrating minus
plain. Everything a migrating search does beside the two index searches (adapter, line, old-part mask, merge,
the second search call) is "addition less the target's search"; the target's search scans the rows already
re-embedded, which the old part scans too (masked out): that scan grows with the share re-embedded.
All with one BLAS thread (as a lone query runs); wall and CPU milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table  # noqa: E402
from migrate import _docs  # noqa: E402

from slimvec import Collection  # noqa: E402
from slimvec.encoders.cache import CachedEncoder  # noqa: E402
from slimvec.encoders.registry import load_encoder  # noqa: E402
from slimvec.evaluation.datasets import load_dataset  # noqa: E402
from slimvec.migrate import runner  # noqa: E402
from slimvec.migrate.adapters import ProcrustesRidge, normalise  # noqa: E402
from slimvec.migrate.line import REFERENCES, ScoreLine  # noqa: E402


def _median_ms(fn, calls: int = 2000) -> tuple[float, float]:
    for _ in range(50):
        fn()
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)) * 1000, float(np.median(cpu)) * 1000


def line_alone() -> None:
    rng = np.random.default_rng(0)
    d = 384
    rows = []
    for n in (64, 128, 256, 512, 2000, 5000):
        x, y = normalise(rng.standard_normal((n, d))), normalise(rng.standard_normal((n, d)))
        line = ScoreLine(x, y)
        adapter = ProcrustesRidge(ridge=1.0).fit(x, y)
        q = normalise(rng.standard_normal((1, d)))
        qo = adapter.apply(q)
        lw, lc = _median_ms(lambda: line.lines(q, qo))
        aw, ac = _median_ms(lambda: adapter.apply(q))
        rows.append([n, line.depth, "yes" if n == REFERENCES else "", f"{lw:.3f}", f"{lc:.3f}", f"{aw:.3f}", f"{ac:.3f}"])
    print_table(["reference chunks", "line depth", "default", "line ms wall", "line ms CPU", "adapter ms wall",
                 "adapter ms CPU"], rows)


def layout(n: int = REFERENCES, queries: int = 200, rounds: int = 5) -> None:
    """The line's two products through a transposed view of (n, dim) references (ScoreLine before session 14)
    against (dim, n) C-contiguous copies (now), alternating per query so neither runs on caches the other warmed:
    between real searches the 15 MB of a 5,000-reference line come from memory, not a hot cache."""
    rng = np.random.default_rng(0)
    x, y = normalise(rng.standard_normal((n, 384))), normalise(rng.standard_normal((n, 384)))
    xt, yt = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    q, qo = normalise(rng.standard_normal((queries, 384))), normalise(rng.standard_normal((queries, 384)))
    out = np.empty((2, n), np.float32)
    ways = {"transposed view (before)": (x.T, y.T), "contiguous (dim, n) copy (now)": (xt, yt)}
    times: dict[str, list[float]] = {w: [] for w in ways}
    for r in range(rounds):
        for i in range(queries):
            for w in (list(ways) if (i + r) % 2 else list(ways)[::-1]):
                a, b = ways[w]
                t0 = time.perf_counter()
                np.matmul(q[i : i + 1], a, out=out[:1])
                np.matmul(qo[i : i + 1], b, out=out[1:])
                times[w].append(time.perf_counter() - t0)
    base = float(np.median(times[list(ways)[0]]))
    print_table(["the line's two products, " + f"{n} references", "ms wall (median)", "vs before"],
                [[w, f"{np.median(t) * 1000:.3f}", f"{np.median(t) / base:.2f}x"] for w, t in times.items()])


def whole(data: Path, old_name: str, new_name: str, n_queries: int, work: Path) -> None:
    ds = load_dataset(data)
    queries = ds.queries("test")
    texts = [queries[q] for q in list(queries)[:n_queries]]
    docs = _docs(data, ds.qrels("test"), None)
    old_enc, new_enc = CachedEncoder(load_encoder(old_name)), CachedEncoder(load_encoder(new_name))
    path = work / "col"
    with Collection.create(path, model=old_enc.name, encoder=old_enc) as col:
        col.add(docs)
    record = runner.start(path, new_enc.name, encoder=new_enc)
    qo_own = np.asarray(old_enc.encode_queries(texts), np.float32)
    qn = np.asarray(new_enc.encode_queries(texts), np.float32)
    parts = {"plain search (old collection)": [], "search through the migration": [], "target's search": [],
             "adapter": [], "line": []}
    with Collection.open(path, encoder=new_enc) as col:
        assert col.merge == "per-query" and col.line is not None
        qo = col.adapter.apply(qn)
        calls = {
            "plain search (old collection)": lambda i: Collection.search_many(col, [texts[i]], vectors=qo_own[i : i + 1], k=10),
            "search through the migration": lambda i: col.search_many([texts[i]], vectors=qn[i : i + 1], k=10),
            "target's search": lambda i: col.target.search_many([texts[i]], vectors=qn[i : i + 1], k=10),
            "adapter": lambda i: col.adapter.apply(qn[i : i + 1]),
            "line": lambda i: col._lines(qn[i : i + 1], qo[i : i + 1]),
        }
        for i in range(min(20, len(texts))):  # warm-up: plans kept, masks made, pages read
            for fn in calls.values():
                fn(i)
        for _ in range(5):
            for i in range(len(texts)):
                for name, fn in calls.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn(i)
                    parts[name].append((time.perf_counter() - t0, time.process_time() - c0))
        rows_old, rows_target = len(col._rows.alive), len(col.target._rows.alive)
    med = {name: np.median(np.asarray(v), axis=0) * 1000 for name, v in parts.items()}
    plain, mig, target = med["plain search (old collection)"], med["search through the migration"], med["target's search"]
    rows = [[name, f"{w:.3f}", f"{c:.3f}"] for name, (w, c) in med.items()]
    rows.append(["addition (migrating - plain)", f"{mig[0] - plain[0]:.3f}", f"{mig[1] - plain[1]:.3f}"])
    rest = mig - plain - target
    rows.append(["addition less the target's search", f"{rest[0]:.3f}", f"{rest[1]:.3f}"])
    other = rest - med["adapter"] - med["line"]
    rows.append(["  of which mask, merge, second call", f"{other[0]:.3f}", f"{other[1]:.3f}"])
    print(f"{data.name}, {old_name} -> {new_name}: {len(docs)} documents, {rows_old} old chunk rows, {rows_target} "
          f"in the target at start ({record['native_at_start']} documents), {record['pairs']} pairs, line: "
          f"{REFERENCES} references, depth {record['line_depth']}; {len(texts)} test queries x 5 rounds")
    print_table(["per query", "ms wall (median)", "ms CPU (median)"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parent.parent.parent / "shared/data/scifact")
    ap.add_argument("--pair", default="all-MiniLM-L6-v2:bge-small-en-v1.5", help="OLD:NEW")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    with threadpool_limits(limits=1, user_api="blas"):
        line_alone()
        layout()
        old_name, new_name = args.pair.split(":", 1)
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            whole(args.data, old_name, new_name, args.queries, Path(tmp))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
