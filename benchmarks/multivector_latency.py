"""Query latency of the multi-vector profiles through `Collection.search` (query encoding included), side by
side in one run with the exhaustive MaxSim baseline (numpy over every document's token vectors held in RAM as
float32), on the collections benchmarks/_mv_build.py and multivector_recheck.py leave under /tmp/mvbench
(issue 12 target: p50 <= 50 ms on SciFact, 2 cores).

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_latency.py scifact multivector recheck-multivector-pooled
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_latency.py --before scifact multivector
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_latency.py scifact recheck-multivector-binary --depth 300 --depth 200

`--before` also runs every query through the MaxSim scoring this package used until BENCHMARKS.md "Unpooled
multivector latency" (candidates' float16 tokens gathered into one float32 array, then numpy MaxSim;
`score_before` below, kept verbatim; for residual token codes also the per-dimension decode used before the
nibble table of session 7) on the same open collection, alternating which goes first per query so
both see the same load and page cache, and counts the queries whose top 10 (ids and order) are identical.

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
from types import MethodType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_build import ROOT

from slimvec import Collection
from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels, load_queries
from slimvec.multivector.maxsim import gather, maxsim_scores
from slimvec.multivector.retriever import TOKENS_DIR, query_tokens
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


def score_before(self: Any, query: Any, rows: np.ndarray, tokens: np.ndarray, decode: Any) -> np.ndarray:
    """MultiVectorRetriever._score as it was before the in-place kernel: gather into float32, then MaxSim."""
    q = query_tokens(query, self.encoder)
    rows = np.asarray(rows, np.int64)
    if not len(rows) or self.token_store is None:
        return np.zeros(len(rows), np.float32)
    tok, off = gather(tokens, self._offsets, rows, None if decode else np.float32)
    return maxsim_scores(q, tok, off, decode=decode)


def run_collection(col: Collection, texts: list[str], before: bool,
                   before_slice_rows: int | None = None) -> dict[str, tuple[list, list, list]]:
    """{"after": (hits, wall, cpu)} and, with `before`, the same for score_before (or, with
    `before_slice_rows`, for the current scoring with the kernel's products slices set to that many rows);
    per query the two alternate which runs first."""
    from slimvec.multivector import kernel

    for t in texts[:5]:
        col.search(t, k=K)
    mv = col._retrievers.get("multivector")  # noqa: SLF001 - benchmark-only switch of the scoring path
    labels = ["after", "before"] if before and mv is not None else ["after"]
    out: dict[str, tuple[list, list, list]] = {lab: ([], [], []) for lab in labels}
    for i, t in enumerate(texts):
        for lab in labels if i % 2 == 0 else labels[::-1]:
            codec = getattr(mv.token_store, "codec", None) if lab == "before" else None
            slice_rows = kernel._SLICE_ROWS  # noqa: SLF001
            if lab == "before" and before_slice_rows:
                kernel._SLICE_ROWS = before_slice_rows  # noqa: SLF001
                codec = None
            elif lab == "before":
                mv._score = MethodType(score_before, mv)
                if hasattr(codec, "_nibble_table"):  # residual codes: the per-dimension decode of before too
                    codec._lut = (codec.values, None)
            (h,), (w,), (c,) = timed(lambda x: col.search(x, k=K), [t])  # noqa: B023
            kernel._SLICE_ROWS = slice_rows  # noqa: SLF001
            if lab == "before" and not before_slice_rows:
                del mv._score
                if hasattr(codec, "_nibble_table"):
                    del codec._lut
            out[lab][0].append(h)
            out[lab][1].append(w)
            out[lab][2].append(c)
    return out


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
    ap.add_argument("--before", action="store_true", help="also time the float32-copy MaxSim (score_before)")
    ap.add_argument("--before-slice-rows", type=int, default=None,
                    help="with --before: 'before' is the current scoring with this many rows per kernel products "
                         "call (e.g. 1000000: one call per worker, as before session 7's slicing)")
    ap.add_argument("--split", default="test", help="qrels split whose queries are searched (test unless "
                    "choosing a setting: train / dev)")
    ap.add_argument("--depth", type=int, action="append", default=None,
                    help="MaxSim depth to search each collection with instead of its profile's (repeatable: one "
                         "row per depth, same open collection)")
    args = ap.parse_args()
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / args.dataset, args.split).items()}
    queries = load_queries(DATA / args.dataset)
    qids = [q for q in queries if q in qrels]
    texts = [queries[q] for q in qids]
    load0 = os.getloadavg()[0]
    rows = []
    for name, depth in [(n, d) for n in args.collections for d in (args.depth or [None])]:
        with Collection.open(ROOT / args.dataset / name) as col:
            if depth is not None:  # benchmark-only: the depth a new collection of the profile would store
                col.search(texts[0], k=K)  # retrievers load on first search
                col._retrievers["multivector"].depth = depth  # noqa: SLF001
                name = f"{name}, depth {depth}"
            runs = run_collection(col, texts, args.before, args.before_slice_rows)
            info = col.info()
        ids = {lab: [[h.id for h in hs] for hs in r[0]] for lab, r in runs.items()}
        for lab, (hits, wall, cpu) in runs.items():
            run = {q: {h.id: float(h.score) for h in hs} for q, hs in zip(qids, hits)}
            ndcg = evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]
            same = (f"{sum(a == b for a, b in zip(ids['after'], ids['before']))}/{len(qids)}"
                    if "before" in runs else "-")
            rows.append([f"{name} ({lab})" if len(runs) > 1 else name, f"{ndcg:.4f}",
                         f"{1000 * np.median(wall):.1f}", f"{1000 * np.median(cpu):.1f}",
                         f"{len(wall) / sum(wall):.1f}", f"{info['ram_bytes_per_doc']:.0f}", same])
        if "before" in runs:
            wa, wb = np.median(runs["after"][1]), np.median(runs["before"][1])
            ca, cb = np.median(runs["after"][2]), np.median(runs["before"][2])
            print(f"{name}: p50 wall before / after = {wb / wa:.2f}x, p50 CPU before / after = {cb / ca:.2f}x",
                  file=sys.stderr, flush=True)
        print(f"{name}: done", file=sys.stderr, flush=True)
    bw, bc = baseline(args.dataset, texts[: args.baseline_queries])
    base_qps = len(bw) / sum(bw)
    rows.append(["exhaustive MaxSim (numpy, float32 tokens in RAM)", "-", f"{1000 * np.median(bw):.1f}",
                 f"{1000 * np.median(bc):.1f}", f"{base_qps:.1f}", "-", "-"])
    for r in rows:
        r.append(f"{float(r[4]) / base_qps:.1f}x")
    print(f"\n{args.dataset}: {len(qids)} {args.split} queries, k = {K}; {machine()}; load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    print_table(["collection", "nDCG@10", "p50 wall ms", "p50 CPU ms", "QPS (wall)", "RAM B/doc",
                 "top 10 = before", "QPS vs exhaustive"], rows)


if __name__ == "__main__":
    main()
