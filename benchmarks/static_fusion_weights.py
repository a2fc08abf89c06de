"""The weight of a static model's ranking against BM25's 1.0 in softmax fusion (`hybrid`): nDCG@10 of static +
BM25 on SciFact train / NFCorpus dev for each weight of `distill.WEIGHTS`, the best mean of the two, and on the
test splits BM25 alone, the static model alone, equal weights and a few weights with a paired bootstrap interval
against BM25 per query. How `encoders.static.WORDLLAMA_FUSION_WEIGHT` was chosen (the distilled model's
`STATIC_FUSION_WEIGHT`: benchmarks/distill.py).

    PYTHONPATH=src python benchmarks/static_fusion_weights.py --model wordllama --work /tmp/slimvec-bench-wl

The `hybrid` collection is made with `fusion_weights` [1, 1] given, so equal weights are measured whatever the
model declares; the grid passes its weights per search.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distill as d  # noqa: E402
from _common import print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="wordllama")
    ap.add_argument("--work", type=Path, default=Path("/tmp/slimvec-bench-wl"))
    ap.add_argument("--test-weights", default="0.2,0.3,0.5")
    a = ap.parse_args()

    from slimvec import Collection
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.runner import collection_dir

    cache, grids, rows = a.work / "cache", {}, []
    for ds in d.DATASETS:
        runs: dict = {}
        bm25 = d._ndcg(ds, "bm25", None, a.work, cache, runs)
        alone = d._ndcg(ds, "exact-f32", a.model, a.work, cache)
        equal = d._ndcg(ds, "hybrid", a.model, a.work, cache, runs, fusion_weights=(1.0, 1.0))
        dset = load_dataset(d.DATA / ds)
        path = collection_dir(a.work / "eval", dset, d._profile("hybrid", a.model, fusion_weights=(1.0, 1.0)))
        with Collection.open(path) as col:
            grids[ds] = {w: d._weighted_run(col, dset, d.FIT_SPLIT[ds], w)[0] for w in d.WEIGHTS}
            rows += [[ds, "BM25", f"{bm25:.4f}", "-"], [ds, f"{a.model} alone", f"{alone:.4f}", "-"],
                     [ds, f"{a.model} + BM25, equal weights", f"{equal:.4f}",
                      "{:+.4f} [{:+.4f}, {:+.4f}], p {:.2f}".format(*d._against_bm25(ds, runs["hybrid"], runs["bm25"]))]]
            for w in (float(x) for x in a.test_weights.split(",")):
                value, run = d._weighted_run(col, dset, "test", w)
                rows.append([ds, f"{a.model} + BM25, weight {w}", f"{value:.4f}",
                             "{:+.4f} [{:+.4f}, {:+.4f}], p {:.2f}".format(*d._against_bm25(ds, run, runs["bm25"]))])
    mean = {w: sum(grids[ds][w] for ds in d.DATASETS) / len(d.DATASETS) for w in d.WEIGHTS}
    print(f"\n{a.model} + BM25 nDCG@10 on the fit splits by static weight:")
    print_table(["static weight"] + [f"{ds} {d.FIT_SPLIT[ds]}" for ds in d.DATASETS] + ["mean"],
                [[str(w)] + [f"{grids[ds][w]:.4f}" for ds in d.DATASETS] + [f"{mean[w]:.4f}"] for w in d.WEIGHTS])
    print(f"best mean: {max(d.WEIGHTS, key=lambda w: (mean[w], w))}\n\nTest split, full corpora:")
    print_table(["set", "retrieval", "nDCG@10", "minus BM25 per query: mean [95% paired bootstrap], p"], rows)


if __name__ == "__main__":
    main()
