"""Which dense model should new collections get? bge-small-en-v1.5 against all-MiniLM-L6-v2 on full BEIR SciFact
and NFCorpus (test split), in the same run, beside each model's published MTEB figures.

    mkdir -p /tmp/models-cache && cp /tmp/fusion-cache/all-MiniLM-L6-v2-*.sqlite /tmp/models-cache/  # optional
    nice -n 10 env PYTHONPATH=src .venv/bin/python benchmarks/default_model.py --cache-dir /tmp/models-cache \
        --work /tmp/models-default

Protocol: `slimvec.evaluation.runner.run_eval` with profile exact-f32 and `chunk_mode: whole` (one vector per
document, cut at the model's window: 256 positions for MiniLM, 512 for bge, as MTEB runs them), title + text,
no query instruction, nDCG@10 / Recall@100 by ranx over the top 100. Corpus vectors go through the embedding
cache (--cache-dir), so a rerun encodes nothing. Speed: documents per second of each model's own
`encode_documents` on the same --speed-docs documents of each corpus (uncached, one batch call, 2 cores).

Published figures (nDCG@10, test): all-MiniLM-L6-v2 SciFact 64.5, NFCorpus 31.6 (MTEB leaderboard, as quoted in
../shared/MODELS.md); bge-small-en-v1.5 SciFact 71.27, NFCorpus 34.26 (embeddings-benchmark/results,
results/BAAI__bge-small-en-v1.5/5c38ec7c.../SciFact.json and NFCorpus.json, mteb 1.20.0; MTEB gives bge
its query instruction, which slimvec does not use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, paired_bootstrap, print_table, read_jsonl

MODELS = ("all-MiniLM-L6-v2", "bge-small-en-v1.5")
PUBLISHED = {("all-MiniLM-L6-v2", "scifact"): 0.645, ("all-MiniLM-L6-v2", "nfcorpus"): 0.316,
             ("bge-small-en-v1.5", "scifact"): 0.71273, ("bge-small-en-v1.5", "nfcorpus"): 0.34264}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def docs_per_second(model: str, texts: list[str]) -> float:
    """Documents per second of the uncached model on `texts` (after one warm-up call)."""
    from slimvec.encoders.registry import load_encoder

    enc = load_encoder(model)
    enc.encode_documents(texts[:4])
    t = time.perf_counter()
    enc.encode_documents(texts)
    return len(texts) / (time.perf_counter() - t)


def gain_interval(name: str, results: dict, seed: int = 0, resamples: int = 10_000) -> tuple[float, float, float]:
    """Mean per-query nDCG@10 gain of bge over MiniLM and its paired-bootstrap 95% interval (queries resampled)."""
    import numpy as np

    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.metrics import evaluate_per_query, read_trec_run

    qrels = load_dataset(DATA / name).qrels("test")
    per = [evaluate_per_query(qrels, read_trec_run(results[(m, name)]["run_file"]), ["ndcg@10"])["ndcg@10"]
           for m in MODELS]
    qids = sorted(qrels)
    return paired_bootstrap(np.asarray([per[0][q] for q in qids]), np.asarray([per[1][q] for q in qids]),
                            resamples, seed)


def main() -> None:
    from slimvec.evaluation.runner import run_eval
    from slimvec.profiles import profile_from_dict

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/models-default"))
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/models-cache"))
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--speed-docs", type=int, default=128)
    ap.add_argument("--report-only", action="store_true",
                    help="tables of the evaluations already saved under --work (a missing one is left out)")
    args = ap.parse_args()
    results: dict[tuple[str, str], dict] = {}
    speed: dict[tuple[str, str], float] = {}
    for name in args.datasets:
        texts = [f"{d.get('title', '')} {d['text']}".strip()
                 for d in read_jsonl(DATA / name / "corpus.jsonl", args.speed_docs)]
        for model in MODELS:
            saved = args.work / f"{name}-{model}.json"
            if saved.exists():
                results[(model, name)] = json.loads(saved.read_text())
            elif args.report_only:
                continue
            else:
                _log(f"{name}: {model} ...")
                prof = profile_from_dict({"name": f"{model}-whole", "model": model, "chunk_mode": "whole"})
                res = run_eval(DATA / name, prof, "test", args.work, args.cache_dir, progress=False)
                saved.write_text(json.dumps(res))
                results[(model, name)] = res
            speed[(model, name)] = docs_per_second(model, texts)
    args.datasets = [n for n in args.datasets if all((m, n) in results for m in MODELS)]
    print(f"Machine: {machine()}\n")
    rows = []
    for name in args.datasets:
        base = results[(MODELS[0], name)]["metrics"]["ndcg@10"]
        for model in MODELS:
            m = results[(model, name)]["metrics"]
            rows.append([name, model, f"{m['ndcg@10']:.4f}", f"{PUBLISHED[(model, name)]:.4f}",
                         f"{m['ndcg@10'] - PUBLISHED[(model, name)]:+.4f}", f"{m['ndcg@10'] / base:.3f}",
                         f"{m['recall@100']:.4f}", f"{speed[(model, name)]:.1f}",
                         f"{speed[(model, name)] / speed[(MODELS[0], name)]:.2f}"])
    print_table(["dataset", "model", "nDCG@10", "published (MTEB)", "ours - published", "nDCG ratio to MiniLM",
                 "R@100", "docs/s", "speed ratio to MiniLM"], rows)
    print()
    gains = []
    for name in args.datasets:
        g, lo, hi = gain_interval(name, results)
        gains.append([name, f"{g:+.4f}", f"[{lo:+.4f}, {hi:+.4f}]"])
    print_table(["dataset", "bge - MiniLM nDCG@10", "95% CI (paired bootstrap, 10,000 resamples)"], gains)


if __name__ == "__main__":
    main()
