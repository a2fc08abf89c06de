"""PyLate's own index and retrieval beside slimvec's `multivector` collection and exhaustive MaxSim, on the SAME
`minilm-tokens` vectors (issue 12: "PyLate's own index and retrieval on the same vectors").

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pylate.py scifact
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pylate.py scifact --pylate-result /tmp/plaid.json

PyLate runs in its own virtualenv (default /tmp/pylate-venv: torch==2.13.0 installed first, then
pylate==1.2.0, the last release without fast-plaid, which pins another torch; see BENCHMARKS.md
"PyLate beside slimvec"), through benchmarks/_mv_pylate.py: the cached document token vectors
(benchmarks/_mv_cache.py, float16) go into PyLate's index as embeddings, the cached query token vectors are
retrieved one query at a time. slimvec answers the same cached query vectors (no query encoding on either
side): the `multivector` collection of benchmarks/_mv_build.py (dense top 100 reranked by MaxSim over the
same float16 tokens) through `Collection.search_many(..., vectors=...)`, its encoder answering query tokens
from the cache; and exhaustive MaxSim (numpy over all tokens held in RAM as float32; nDCG@10 from the cached
batched pass of benchmarks/_mv_exhaustive.py, QPS from the first `--baseline-queries` queries).
nDCG@10 by ranx (slimvec.evaluation.metrics); QPS = queries / summed seconds, one query at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_build import ROOT
from _mv_cache import folder, load
from _mv_exhaustive import exhaustive_scores

from slimvec import Collection
from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels
from slimvec.multivector.maxsim import maxsim_scores

K = 10


class CachedQueryTokens:
    """The collection's encoder, except that query token vectors come from the cache (keyed by query text)."""

    def __init__(self, encoder: Any, tokens: dict[str, np.ndarray]) -> None:
        self._enc, self._tokens = encoder, tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self._enc, name)

    def encode_query_tokens(self, texts: list[str]) -> list[np.ndarray]:
        return [self._tokens[t] for t in texts]


def slimvec_multivector(name: str, texts: list[str], dense: np.ndarray, toks: list[np.ndarray]
                        ) -> tuple[list[list[str]], list[float], list[float]]:
    with Collection.open(ROOT / name / "multivector") as col:
        col.search_many([texts[0]], vectors=dense[:1], k=K)  # builds the retrievers
        mv = col._retrievers["multivector"]  # noqa: SLF001 - benchmark-only: query tokens from the cache
        mv._encoder = CachedQueryTokens(mv.encoder, dict(zip(texts, toks)))
        for i in range(5):
            col.search_many([texts[i]], vectors=dense[i : i + 1], k=K)
        ids, wall, cpu = [], [], []
        for i in range(len(texts)):
            w0, c0 = time.perf_counter(), time.process_time()
            hits = col.search_many([texts[i]], vectors=dense[i : i + 1], k=K)[0]
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            ids.append([(h.id, float(h.score)) for h in hits])
    return ids, wall, cpu


def exhaustive_timing(c: dict, n: int) -> tuple[list[float], list[float]]:
    tokens = np.asarray(c["tokens"], np.float32)
    maxsim_scores(c["query_tokens"][0], tokens, c["offsets"])
    wall, cpu = [], []
    for q in c["query_tokens"][:n]:
        w0, c0 = time.perf_counter(), time.process_time()
        s = maxsim_scores(q, tokens, c["offsets"])
        np.argpartition(-s, K)[:K]
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--pylate-python", default="/tmp/pylate-venv/bin/python")
    ap.add_argument("--index", choices=["plaid", "voyager"], default="plaid")
    ap.add_argument("--pylate-result", type=Path, help="JSON of an earlier _mv_pylate.py run (skips the rebuild)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads inside PyLate")
    ap.add_argument("--kmeans-iters", type=int, default=4, help="PLAID k-means iterations (PyLate's default: 4)")
    ap.add_argument("--baseline-queries", type=int, default=30)
    ap.add_argument("--queries", type=int, default=0, help="only the first N test queries (smoke runs)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    result = args.pylate_result
    if result is None:
        result = Path(f"/tmp/pylate-{args.dataset}-{args.index}.json")
        subprocess.run([args.pylate_python, str(Path(__file__).parent / "_mv_pylate.py"),
                        str(folder(args.dataset)), args.index, str(result), str(args.threads),
                        str(args.kmeans_iters)], check=True)
    py = json.loads(result.read_text())
    c = load(args.dataset)
    qrels_all = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / args.dataset, "test").items()}
    from slimvec.ingest.beir import load_queries

    queries = load_queries(DATA / args.dataset)
    qids = [q for q in c["query_ids"] if q in qrels_all][: args.queries or None]
    pos = {q: i for i, q in enumerate(c["query_ids"])}
    qrels = {q: qrels_all[q] for q in qids}
    texts = [queries[q] for q in qids]
    toks = [c["query_tokens"][pos[q]] for q in qids]
    dense = np.asarray(c["query_dense"][[pos[q] for q in qids]], np.float32)
    rows = []

    def ndcg(run: dict) -> float:
        return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]

    ex = exhaustive_scores(args.dataset)
    ex_run = {}
    for q in qids:
        s = ex["scores"][ex["query_ids"].index(q)]
        ex_run[q] = {ex["doc_ids"][j]: float(s[j]) for j in np.argsort(-s)[:K]}
    bw, bc = exhaustive_timing(c, args.baseline_queries)
    base_qps = len(bw) / sum(bw)
    rows.append(["exhaustive MaxSim (numpy, float32 tokens in RAM)", f"{ndcg(ex_run):.4f}",
                 f"{1000 * np.median(bw):.1f}", f"{1000 * np.median(bc):.1f}", f"{base_qps:.2f}", "-"])
    hits, wall, cpu = slimvec_multivector(args.dataset, texts, dense, toks)
    run = {q: dict(h) for q, h in zip(qids, hits)}
    rows.append(["slimvec multivector (dense top 100 + MaxSim, float16 tokens on disk)", f"{ndcg(run):.4f}",
                 f"{1000 * np.median(wall):.1f}", f"{1000 * np.median(cpu):.1f}", f"{len(wall) / sum(wall):.2f}", "-"])
    missing = [q for q in qids if q not in py["run"]]
    if missing:
        raise SystemExit(f"{result}: no PyLate results for {len(missing)} queries (first {missing[0]!r})")
    py_run = {q: py["run"][q] for q in qids}
    iters = f", k-means {py['kmeans_niters']} iter." if py.get("kmeans_niters") else ""
    rows.append([f"PyLate {py['pylate']} {py['index']}{iters} (torch {py['torch']})", f"{ndcg(py_run):.4f}",
                 f"{1000 * np.median(py['wall']):.1f}", f"{1000 * np.median(py['cpu']):.1f}",
                 f"{len(py['wall']) / sum(py['wall']):.2f}", f"{py['build_s']:.0f}"])
    for r in rows:
        r.append(f"{float(r[4]) / base_qps:.1f}x")
    print(f"\n{args.dataset}: {len(qids)} test queries, k = {K}, cached query token vectors (no encoding); "
          f"{machine()}; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print_table(["method", "nDCG@10", "p50 wall ms", "p50 CPU ms", "QPS (wall)", "index build s",
                 "QPS vs exhaustive"], rows)


if __name__ == "__main__":
    main()
