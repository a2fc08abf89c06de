"""Choosing the MaxSim depth of the binary-candidate profiles on held-out queries (never the test split):
benchmarks/multivector_depth_probe.py's offline probe on SciFact's train and NFCorpus's dev queries.

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_depth_select.py scifact:train nfcorpus:dev

Candidates: sign codes of the cached dense document vectors, top 10N by float query . sign code, rescored by
float32 dense inner product to the top N (what `multivector-binary` / `-compressed` do with `rescore`,
oversample 10, `maxsim_depth` N); float32 dense top-N beside it. Each candidate set is reranked by the
unpooled exhaustive MaxSim scores that benchmarks/multivector_pool_select.py cached for the same queries
(/tmp/s7mv/<dataset>-<split>-unpooled.npy); nDCG@10 by ranx against exhaustive MaxSim over all documents.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_cache import encoder, folder, load
from multivector_pool_select import SCRATCH, select_queries

from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels, load_queries

DEPTHS = (100, 150, 200, 250, 300)


def main(name: str, split: str) -> None:
    c = load(name)
    qids, _ = select_queries(name, split)
    dense_path = folder(name) / f"select-{split}-dense.npy"
    if not dense_path.exists():
        queries = load_queries(DATA / name)
        np.save(dense_path, encoder().encode_queries([queries[q] for q in qids]))
    qd = np.load(dense_path)
    scores = np.load(SCRATCH / f"{name}-{split}-unpooled.npy")
    dids = c["doc_ids"]
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / name, split).items()}
    qrels = {q: qrels[q] for q in qids}
    dense = qd @ c["dense"].T
    signs = qd @ np.where(c["dense"] > 0, 1.0, -1.0).astype(np.float32).T

    def ndcg(cands: list[np.ndarray]) -> float:
        run = {}
        for i, q in enumerate(qids):
            s = scores[i, cands[i]]
            top = np.lexsort((cands[i], -s))[:10]
            run[q] = {dids[cands[i][j]]: float(s[j]) for j in top}
        return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]

    ref = ndcg([np.arange(len(dids))] * len(qids))
    rows = [["exhaustive MaxSim", f"{ref:.4f}", "100.0%", "-", "-"]]
    sign_order = np.argsort(-signs, axis=1)
    dense_order = np.argsort(-dense, axis=1)
    for n in DEPTHS:
        wide = sign_order[:, : 10 * n]
        rescored = [w[np.argsort(-dense[i, w], kind="stable")[:n]] for i, w in enumerate(wide)]
        a, b = ndcg(rescored), ndcg(list(dense_order[:, :n]))
        rows.append([f"depth {n}", f"{a:.4f}", f"{a / ref:.2%}", f"{b:.4f}", f"{b / ref:.2%}"])
    print(f"\n{name} ({split}, {len(qids)} queries, {len(dids)} documents), {machine()}")
    print_table(["MaxSim depth", "binary top-10N -> float32 -> top-N", "of exhaustive", "float32 top-N",
                 "of exhaustive"], rows)


if __name__ == "__main__":
    for spec in sys.argv[1:]:
        ds, _, sp = spec.partition(":")
        if sp in ("", "test"):
            raise SystemExit(f"{spec}: choose on a train or dev split, never on test")
        main(ds, sp)
