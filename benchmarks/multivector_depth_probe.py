"""Offline probe behind the multivector-binary / -compressed defaults: which first stage and MaxSim depth keep
>= 99% of exhaustive MaxSim. Candidates from (a) float32 dense top-N, (b) sign codes top-10N rescored with
float32 to top-N (the profiles' binary + rescore first stage), (c) sign codes alone top-N; each reranked by the
exhaustive MaxSim scores of benchmarks/_mv_exhaustive.py; nDCG@10 by ranx (slimvec.evaluation.metrics).

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_depth_probe.py nfcorpus   # needs _mv_cache + _mv_exhaustive
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA
from _mv_cache import CACHE
from _mv_exhaustive import exhaustive_scores

from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels


def main(name: str) -> None:
    ex = exhaustive_scores(name)
    scores, qids, dids = ex["scores"], ex["query_ids"], ex["doc_ids"]
    cache = CACHE / name
    docs, queries = np.load(cache / "dense.npy"), np.load(cache / "query_dense.npy")
    assert json.loads((cache / "query_ids.json").read_text()) == qids
    assert json.loads((cache / "doc_ids.json").read_text()) == dids
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / name, "test").items()}
    qrels = {q: qrels[q] for q in qids}
    dense = queries @ docs.T
    signs = queries @ np.where(docs > 0, 1.0, -1.0).astype(np.float32).T  # float query . sign codes

    def ndcg(cands: list[np.ndarray]) -> float:
        run = {}
        for i, q in enumerate(qids):
            c = cands[i]
            s = scores[i, c]
            top = np.lexsort((c, -s))[:10]
            run[q] = {dids[c[j]]: float(s[j]) for j in top}
        return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]

    ref = ndcg([np.arange(len(dids))] * len(qids))
    print(f"{name}: exhaustive MaxSim nDCG@10 {ref:.4f}")
    print("| MaxSim depth | float32 top-N | sign codes top-10N -> float32 -> top-N | sign codes top-N |")
    print("| --- | --- | --- | --- |")
    for n in (100, 150, 200, 300, 500):
        f32 = np.argsort(-dense, axis=1)[:, :n]
        wide = np.argsort(-signs, axis=1)[:, : 10 * n]
        rescored = [w[np.argsort(-dense[i, w])[:n]] for i, w in enumerate(wide)]
        alone = np.argsort(-signs, axis=1)[:, :n]
        cells = [ndcg(list(c)) for c in (f32, rescored, alone)]
        print(f"| {n} | " + " | ".join(f"{v:.4f} ({v / ref:.1%})" for v in cells) + " |")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(arg)
