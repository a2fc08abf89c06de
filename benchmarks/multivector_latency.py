"""Query latency of the multi-vector profiles through `Collection.search` (query encoding included), side by
side in one run with the exhaustive MaxSim baseline (numpy over every document's token vectors held in RAM as
float32), on the collections benchmarks/_mv_build.py and multivector_recheck.py leave under /tmp/mvbench
(issue 12 target: p50 <= 50 ms on SciFact, 2 cores).

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_latency.py scifact multivector recheck-multivector-pooled

Each named collection (a directory under /tmp/mvbench/<dataset>/) answers every test query one at a time, k =
10, after 5 warm-up queries; the baseline times its first `--baseline-queries` queries (it is slow). Threads:
the library defaults (torch and BLAS use both cores). Wall and CPU time per query are both reported, with the
load average before and after, since the box is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_build import ROOT

from slimvec import Collection
from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels, load_queries
from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.retriever import TOKENS_DIR
from slimvec.multivector.tokenstore import TokenStore

K = 10


def timed(fn, items: list) -> tuple[list, list[float], list[float]]:  # noqa: ANN001
    out, wall, cpu = [], [], []
    for x in items:
        w0, c0 = time.perf_counter(), time.process_time()
        out.append(fn(x))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return out, wall, cpu


def baseline(name: str, texts: list[str]) -> tuple[list[float], list[float]]:
    col = Collection.open(ROOT / name / "multivector")
    enc, n = col.encoder, col.store.committed_rows
    col.close()
    ts = TokenStore.open(ROOT / name / "multivector" / TOKENS_DIR, n)
    offsets, tokens = ts.offsets(n), np.asarray(ts.tokens(n), np.float32)  # resident float32: numpy's fastest scan

    def one(t: str) -> np.ndarray:
        s = maxsim_scores(enc.encode_query_tokens([t])[0], tokens, offsets)
        return np.argpartition(-s, K)[:K]

    one(texts[0])
    _, wall, cpu = timed(one, texts)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("collections", nargs="+", help="directories under /tmp/mvbench/<dataset>/")
    ap.add_argument("--baseline-queries", type=int, default=60)
    args = ap.parse_args()
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / args.dataset, "test").items()}
    queries = load_queries(DATA / args.dataset)
    qids = [q for q in queries if q in qrels]
    texts = [queries[q] for q in qids]
    load0 = os.getloadavg()[0]
    rows = []
    for name in args.collections:
        with Collection.open(ROOT / args.dataset / name) as col:
            for t in texts[:5]:
                col.search(t, k=K)
            hits, wall, cpu = timed(lambda t: col.search(t, k=K), texts)  # noqa: B023
            info = col.info()
        run = {q: {h.id: float(h.score) for h in hs} for q, hs in zip(qids, hits)}
        ndcg = evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]
        rows.append([name, f"{ndcg:.4f}", f"{1000 * np.median(wall):.1f}", f"{1000 * np.median(cpu):.1f}",
                     f"{len(wall) / sum(wall):.1f}", f"{info['ram_bytes_per_doc']:.0f}"])
        print(f"{name}: done", file=sys.stderr, flush=True)
    bw, bc = baseline(args.dataset, texts[: args.baseline_queries])
    base_qps = len(bw) / sum(bw)
    rows.append(["exhaustive MaxSim (numpy, float32 tokens in RAM)", "-", f"{1000 * np.median(bw):.1f}",
                 f"{1000 * np.median(bc):.1f}", f"{base_qps:.1f}", "-"])
    for r in rows:
        r.append(f"{float(r[4]) / base_qps:.1f}x")
    print(f"\n{args.dataset}: {len(qids)} test queries, k = {K}; {machine()}; load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    print_table(["collection", "nDCG@10", "p50 wall ms", "p50 CPU ms", "QPS (wall)", "RAM B/doc",
                 "QPS vs exhaustive"], rows)


if __name__ == "__main__":
    main()
