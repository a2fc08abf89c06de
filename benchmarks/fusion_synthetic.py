"""Where fusion drags: an informative ranking fused with one that knows nothing, synthetic (issue 12 item 6).

200 queries over 1,000 documents, one relevant document each. The informative ranking scores every document
N(0, 1) and adds `boost` to the relevant one; the noise ranking is the top 100 of i.i.d. scores, Gaussian
(a tail whose head can stand out by chance) or uniform (a flat, bounded band). Prints nDCG@10 of the
informative ranking alone and "alone - fused" for rrf, weighted (min-max) and softmax (positive: dragged).

    PYTHONPATH=src python benchmarks/fusion_synthetic.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402

BOOSTS = (2.5, 3.0, 4.0, 5.0, 6.0)
QUERIES, DOCS, DEPTH = 200, 1000, 100


def _ranking(scores: np.ndarray) -> list[tuple[int, float, int]]:
    order = np.argsort(-scores, kind="stable")[:DEPTH]
    return [(int(d), float(scores[d]), int(d)) for d in order]


def _ndcg(qrels: dict[str, dict[str, int]], fused: dict[str, list[tuple[int, float, int]]]) -> float:
    from slimvec.evaluation.metrics import evaluate

    run = {q: {str(d): float(len(r) - i) for i, (d, _, _) in enumerate(r)} for q, r in fused.items()}
    return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]


def main() -> None:
    from slimvec.search.fusion import rrf, weighted
    from slimvec.search.softmax import softmax

    print(f"machine: {machine()}\n")
    rows = []
    for noise in ("gaussian", "uniform"):
        for boost in BOOSTS:
            rng = np.random.default_rng(0)
            qrels, informative, noisy = {}, {}, {}
            for q in map(str, range(QUERIES)):
                rel = int(rng.integers(DOCS))
                qrels[q] = {str(rel): 1}
                s = rng.standard_normal(DOCS)
                s[rel] += boost
                informative[q] = _ranking(s)
                noisy[q] = _ranking(rng.standard_normal(DOCS) if noise == "gaussian" else rng.uniform(size=DOCS))
            alone = _ndcg(qrels, informative)
            drags = [alone - _ndcg(qrels, {q: f([informative[q], noisy[q]]) for q in qrels})
                     for f in (rrf, weighted, softmax)]
            rows.append([noise, f"{boost:g}", f"{alone:.3f}", *(f"{d:+.3f}" for d in drags)])
    print_table(["noise ranking", "boost (sd)", "informative alone", "rrf drag", "weighted drag", "softmax drag"], rows)


if __name__ == "__main__":
    main()
