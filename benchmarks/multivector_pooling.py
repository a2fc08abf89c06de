"""Token pooling's own cost, independent of candidate depth: exhaustive MaxSim over every document's pooled
tokens against exhaustive MaxSim over its unpooled tokens, per pooling method and factor (issue 12 target:
factor 2 keeps >= 99%, factor 3 >= 97% of unpooled nDCG@10).

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pooling.py scifact nfcorpus
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pooling.py scifact nfcorpus --methods ward-profile

Inputs: benchmarks/_mv_cache.py's `minilm-tokens` float16 token vectors of the full corpus (title + " " +
text, cut at 256 word pieces, [CLS]/[SEP] dropped) and its query token vectors; pooling is the package's own
`slimvec.multivector.pooling.pool_tokens` (the write path's code), pooled rows stored float16 as a collection
does; nDCG@10 by ranx over each query's top 10 of all documents, test split. Differences: paired bootstrap
over queries (1,000 resamples, seed 0), 95% interval.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, paired_bootstrap, print_table
from _mv_cache import load
from _mv_exhaustive import exhaustive_scores

from slimvec.evaluation.metrics import evaluate_per_query
from slimvec.ingest.beir import load_qrels
from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.pooling import POOL_METHODS, pool_tokens

FACTORS = (2.0, 3.0)
BATCH = 256  # documents pooled per call, as the write path pools one add batch


def per_query_ndcg(scores: np.ndarray, qids: list[str], doc_ids: list[str], qrels: dict) -> dict[str, float]:
    run = {}
    for i, q in enumerate(qids):
        top = np.argsort(-scores[i], kind="stable")[:10]
        run[q] = {doc_ids[j]: float(scores[i, j]) for j in top}
    return evaluate_per_query({q: qrels[q] for q in qids}, run, ["ndcg@10"])["ndcg@10"]


def bootstrap(a: np.ndarray, b: np.ndarray, n: int = 1000) -> tuple[float, float]:
    """Paired bootstrap 95% interval of mean(b - a) (n resamples, as recorded)."""
    return paired_bootstrap(a, b, n)[1:]


def pooled_scores(c: dict, factor: float, method: str) -> tuple[np.ndarray, int, float]:
    off = c["offsets"]
    parts, lens = [], []
    t0 = time.process_time()
    for s in range(0, len(off) - 1, BATCH):
        docs = [np.asarray(c["tokens"][off[i] : off[i + 1]], np.float32) for i in range(s, min(s + BATCH, len(off) - 1))]
        pooled, _ = pool_tokens(docs, factor, method)
        parts += [p.astype(np.float16) for p in pooled]
        lens += [len(p) for p in pooled]
    cpu = time.process_time() - t0
    new_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = np.concatenate(parts).astype(np.float32)
    return maxsim_scores(c["query_tokens"], tokens, new_off), int(new_off[-1]), cpu


def main(name: str, methods: tuple[str, ...] = POOL_METHODS) -> None:
    c = load(name)
    ex = exhaustive_scores(name)
    if list(ex["doc_ids"]) != list(c["doc_ids"]):
        raise SystemExit(f"{name}: exhaustive scores and token cache disagree on documents; rebuild one")
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / name, "test").items()}
    qids = [q for q in c["query_ids"] if q in qrels]
    rows_of = [c["query_ids"].index(q) for q in qids]
    base = per_query_ndcg(ex["scores"][rows_of], qids, c["doc_ids"], qrels)
    a = np.array([base[q] for q in qids])
    n_tok = int(c["offsets"][-1])
    table = [["unpooled", "-", f"{n_tok / (len(c['offsets']) - 1):.1f}", f"{a.mean():.4f}", "100.0%", "-", "-"]]
    for factor in FACTORS:
        for method in methods:
            scores, kept, cpu = pooled_scores(c, factor, method)
            got = per_query_ndcg(scores[rows_of], qids, c["doc_ids"], qrels)
            b = np.array([got[q] for q in qids])
            lo, hi = bootstrap(a, b)
            table.append([method, f"{factor:g}", f"{kept / (len(c['offsets']) - 1):.1f}", f"{b.mean():.4f}",
                          f"{b.mean() / a.mean():.1%}", f"{b.mean() - a.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]",
                          f"{cpu:.0f}"])
            print(f"{name}: {method} x{factor:g} done", file=sys.stderr, flush=True)
    print(f"\n{name} ({len(qids)} test queries, {len(c['offsets']) - 1} documents), {machine()}")
    print_table(["pooling", "factor", "tokens/doc", "nDCG@10", "of unpooled", "difference [95% CI]",
                 "pooling CPU s"], table)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus"])
    ap.add_argument("--methods", nargs="+", default=list(POOL_METHODS), choices=POOL_METHODS)
    args = ap.parse_args()
    for ds in args.datasets:
        main(ds, tuple(args.methods))
