"""Exhaustive MaxSim with the token vectors of several offline models, beside each model's own single vector
(issue 12 item 1c), on BEIR SciFact and NFCorpus (full corpora, test split).

    PYTHONPATH=src .venv/bin/python benchmarks/_mv_cache.py --model bge-small-tokens@256 \
        --model colbert-small-tokens@256 nfcorpus scifact   # encode once (slow: ~9k documents per model)
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_models.py nfcorpus scifact

"NAME@256" cuts documents at 256 positions as minilm-tokens does (plain NAME: the model's 512).

Models: `minilm-tokens` (bundled all-MiniLM-L6-v2, documents cut at 256 word pieces, the baseline),
`bge-small-tokens@256` (BAAI/bge-small-en-v1.5 int8 ONNX, single vector = [CLS]) and
`colbert-small-tokens@256` (experimental: answerai-colbert-small-v1's backbone without its projection head,
queries cut at 32 word pieces, single vector = mean of the outputs), both with documents cut at 256 positions
like MiniLM by default. Token vectors come from the
cache of benchmarks/_mv_cache.py (float16, [CLS]/[SEP] dropped, L2-normalised; text = title + " " + text).
Rows per dataset: each model's single vector (exact inner product) and exhaustive MaxSim over every
document's float16 tokens; nDCG@10 by ranx (trec_eval conventions) over the top 100, ratios to MiniLM's
exhaustive MaxSim of the same run, and a paired bootstrap 95% interval (1,000 resamples of queries) of the
difference to it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, paired_bootstrap, print_table
from _mv_cache import folder, load

from slimvec.evaluation.metrics import evaluate_per_query
from slimvec.ingest.beir import load_qrels
from slimvec.multivector.maxsim import maxsim_scores

K = 100
BASELINE = "minilm-tokens"
MODELS = [BASELINE, "bge-small-tokens@256", "colbert-small-tokens@256"]
SINGLE = {BASELINE: "mean-pooled", "bge-small-tokens": "[CLS]", "colbert-small-tokens": "mean-pooled"}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _per_query(qrels: dict, qids: list[str], doc_ids: list[str], scores: np.ndarray) -> dict[str, float]:
    """nDCG@10 per query of the top `K` documents by `scores` (nq, n_docs)."""
    k = min(K, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    run = {q: {doc_ids[int(d)]: float(scores[i, d]) for d in top[i]} for i, q in enumerate(qids)}
    return evaluate_per_query(qrels, run, ["ndcg@10"])["ndcg@10"]


def bench(name: str, models: list[str]) -> list[list[object]]:
    qrels = load_qrels(DATA / name, "test")
    per: dict[str, dict[str, float]] = {}
    info: dict[str, dict] = {}
    for model in models:
        c = load(name, model)
        doc_ids, qids, offsets = c["doc_ids"], c["query_ids"], c["offsets"]
        t0 = time.perf_counter()
        # Per-query results are kept next to the token cache: one process per model can score while another
        # model is still encoding, and the final run only assembles the table.
        saved = folder(name, model) / "models-per-query.json"
        if saved.exists():
            got = json.loads(saved.read_text())
        else:
            tokens32 = np.asarray(c["tokens"], np.float32)
            got = {"single": _per_query(qrels, qids, doc_ids, c["query_dense"] @ c["dense"].T),
                   "maxsim": _per_query(qrels, qids, doc_ids, maxsim_scores(c["query_tokens"], tokens32, offsets))}
            del tokens32
            gc.collect()
            saved.write_text(json.dumps(got))
        per[f"{model}|single"], per[f"{model}|maxsim"] = got["single"], got["maxsim"]
        info[model] = {"n": len(doc_ids), "nq": len(qids), "tok_doc": offsets[-1] / len(doc_ids),
                       "tok_q": sum(len(t) for t in c["query_tokens"]) / len(qids),
                       "docs_per_s": len(doc_ids) / c["encode_seconds"]["docs"]}
        _log(f"{name} {model}: single {np.mean(list(per[f'{model}|single'].values())):.4f}, "
             f"MaxSim {np.mean(list(per[f'{model}|maxsim'].values())):.4f} ({time.perf_counter() - t0:.0f} s)")
    ref_key = f"{BASELINE}|maxsim" if f"{BASELINE}|maxsim" in per else None
    ref = np.mean(list(per[ref_key].values())) if ref_key else float("nan")
    rows: list[list[object]] = []
    for model in models:
        for what in ("single", "maxsim"):
            key = f"{model}|{what}"
            ndcg = float(np.mean(list(per[key].values())))
            if ref_key and key != ref_key:
                q = sorted(per[key])  # mean of this row - the reference, 1,000 resamples (as recorded)
                m, lo, hi = paired_bootstrap(np.asarray([per[ref_key][x] for x in q]),
                                             np.asarray([per[key][x] for x in q]), 1000)
                delta = f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            else:
                delta = "-"
            label = (f"{model}: single vector ({SINGLE.get(model.partition('@')[0], 'pooled')}, exact)" if what == "single"
                     else f"{model}: exhaustive MaxSim, f16 tokens")
            rows.append([label, f"{ndcg:.4f}", f"{ndcg / ref:.1%}" if ref_key else "-", delta,
                         f"{info[model]['tok_doc']:.1f}" if what == "maxsim" else "-",
                         f"{info[model]['tok_q']:.1f}" if what == "maxsim" else "-",
                         f"{info[model]['docs_per_s']:.1f}"])
    (folder(name) / "models-result.json").write_text(json.dumps({"models": models, "rows": rows}))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--model", action="append", help=f"registered multi-vector encoder (repeatable; default "
                                                     f"{', '.join(MODELS)})")
    args = ap.parse_args()
    models = args.model or MODELS
    print(f"machine: {machine()}\n")
    for name in args.datasets:
        rows = bench(name, models)
        print(f"### {name} (test split, full corpus)\n")
        print_table(["configuration", "nDCG@10", f"vs {BASELINE} MaxSim", f"difference to {BASELINE} MaxSim "
                     "[95% CI]", "tokens/doc", "tokens/query", "encode docs/s (cache build)"], rows)
        print()


if __name__ == "__main__":
    main()
