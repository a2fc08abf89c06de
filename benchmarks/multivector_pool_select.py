"""Choosing a token pooling method on held-out queries (never the test split): exhaustive MaxSim over every
document's pooled tokens against exhaustive MaxSim over its unpooled tokens, per candidate method, on
SciFact's train queries and NFCorpus's dev queries (issue 12: factor 2 keeps >= 99%, factor 3 >= 97%).

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pool_select.py scifact:train nfcorpus:dev \
        --methods ward-profile ward-profile-sentence ward-profile-cap3 --factors 2

Inputs: benchmarks/_mv_cache.py's `minilm-tokens` float16 document token vectors (not re-encoded); the
selection split's queries are encoded once here by the same model and cached beside them
(/tmp/slimvec-mv-cache/<dataset>/select-<split>.npz), with the unpooled exhaustive scores
(/tmp/s7mv/<dataset>-<split>-unpooled.npy); pooled MaxSim over each query's top 100 of those (CANDIDATES).
Pooling is `slimvec.multivector.pooling.pool_document` (the write path's code) for the package's methods, and
benchmarks/_mv_pool_variants.py's candidates (sentence/window-local, contiguous, size-capped, pruned), pooled rows stored float16 as a collection does; nDCG@10 by ranx over each query's top 10 of
all documents; the difference's 95% interval by the paired bootstrap of benchmarks/multivector_pooling.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_cache import encoder, folder, load
from _mv_pool_variants import pool_variant, structure
from multivector_pooling import bootstrap, per_query_ndcg

from slimvec.ingest.beir import load_qrels, load_queries
from slimvec.multivector.maxsim import maxsim_rows, maxsim_scores

SCRATCH = Path("/tmp/s7mv")
# Pooled MaxSim is computed over each query's best CANDIDATES documents by unpooled exhaustive MaxSim, not all
# documents: 25-50x less work on a shared box; a document outside the unpooled top 100 entering the pooled top
# 10 is ignored (the test-split report, benchmarks/multivector_pooling.py, scores every document).
CANDIDATES = 100


def select_queries(name: str, split: str) -> tuple[list[str], list[np.ndarray]]:
    """Query ids of `split` with judgements, and their `minilm-tokens` query token vectors (cached)."""
    path = folder(name) / f"select-{split}.npz"
    if not path.exists():
        queries = load_queries(DATA / name)
        qids = [q for q in load_qrels(DATA / name, split) if q in queries]
        toks = encoder().encode_query_tokens([queries[q] for q in qids])
        np.savez(path, *toks, qids=np.asarray(qids))
    z = np.load(path)
    qids = z["qids"].tolist()
    return qids, [z[f"arr_{i}"] for i in range(len(qids))]


def candidate_scores(c: dict, factor: float, method: str, cand: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Pooled MaxSim of each query against its CANDIDATES best documents by unpooled exhaustive MaxSim (the
    rest score -inf): (scores (n_queries, n_docs), pooled tokens of the candidate documents, pooling CPU s).
    Only documents that are some query's candidate are pooled."""
    off = c["offsets"]
    docs = np.unique(cand)
    t0 = time.process_time()
    pooled = [pool_variant(c["name"], int(d), np.asarray(c["tokens"][off[d] : off[d + 1]], np.float32), factor,
                           method)[0] for d in docs]
    cpu = time.process_time() - t0
    lens = np.array([len(p) for p in pooled], np.int64)
    new_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tokens = np.concatenate(pooled).astype(np.float16)
    where = np.full(len(off) - 1, -1, np.int64)
    where[docs] = np.arange(len(docs))
    scores = np.full((len(cand), len(off) - 1), -np.inf, np.float32)
    for i, row in enumerate(cand):
        scores[i, row] = maxsim_rows(c["query_tokens"][i], tokens, new_off, where[row])
    return scores, int(new_off[-1]), cpu


def main(name: str, split: str, methods: list[str], factors: list[float]) -> None:
    c = load(name)
    c["name"] = name
    structure(name)  # sentences and word-piece ids: tokenised once, outside the pooling CPU timer
    qids, qtok = select_queries(name, split)
    c["query_tokens"] = qtok
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / name, split).items()}
    SCRATCH.mkdir(parents=True, exist_ok=True)
    base_path = SCRATCH / f"{name}-{split}-unpooled.npy"
    if not base_path.exists():
        np.save(base_path, maxsim_scores(qtok, np.asarray(c["tokens"], np.float32), c["offsets"]))
    base = per_query_ndcg(np.load(base_path), qids, c["doc_ids"], qrels)
    a = np.array([base[q] for q in qids])
    n_docs = len(c["offsets"]) - 1
    rows = [["unpooled", "-", f"{int(c['offsets'][-1]) / n_docs:.1f}", f"{a.mean():.4f}", "100.0%", "-", "-"]]
    base_scores = np.load(base_path)
    cand = np.argsort(-base_scores, axis=1, kind="stable")[:, :CANDIDATES]
    for factor in factors:
        for method in methods:
            scores, kept, cpu = candidate_scores(c, factor, method, cand)
            got = per_query_ndcg(scores, qids, c["doc_ids"], qrels)
            b = np.array([got[q] for q in qids])
            lo, hi = bootstrap(a, b)
            rows.append([method, f"{factor:g}", f"{kept / n_docs:.1f}", f"{b.mean():.4f}", f"{b.mean() / a.mean():.2%}",
                         f"{b.mean() - a.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]", f"{cpu:.0f}"])
            print(f"{name}:{split} {method} x{factor:g}: {b.mean() / a.mean():.2%}", file=sys.stderr, flush=True)
            with open(SCRATCH / "select.jsonl", "a") as f:
                f.write(json.dumps({"dataset": name, "split": split, "method": method, "factor": factor,
                                    "ratio": b.mean() / a.mean(), "ci": [lo, hi]}) + "\n")
    print(f"\n{name} ({split}, {len(qids)} queries, {n_docs} documents), {machine()}")
    print_table(["pooling", "factor", "tokens/doc", "nDCG@10", "of unpooled", "difference [95% CI]",
                 "pooling CPU s"], rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="+", help="DATASET:SPLIT, e.g. scifact:train nfcorpus:dev (never test)")
    ap.add_argument("--methods", nargs="+", default=["ward", "ward-profile"])
    ap.add_argument("--factors", nargs="+", type=float, default=[2.0])
    args = ap.parse_args()
    for spec in args.sets:
        ds, _, sp = spec.partition(":")
        if sp in ("", "test"):
            raise SystemExit(f"{spec}: choose on a train or dev split, never on test")
        main(ds, sp, args.methods, args.factors)
