"""How big a document's token clusters get under each pooling method: the largest cluster per document and the
share of tokens in clusters above the pool factor, over an evenly spaced sample of documents (why the size-aware
cut of `ward-profile-capped` keeps more MaxSim than `ward-profile`, BENCHMARKS.md multi-vector "Session 8").

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pool_sizes.py scifact nfcorpus --docs 200

Inputs: benchmarks/_mv_cache.py's cached `minilm-tokens` document token vectors (not re-encoded); clusters from
`slimvec.multivector.pooling.cluster_labels`, the write path's code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table
from _mv_cache import load

from slimvec.multivector.pooling import POOL_METHODS, cluster_labels


def main(name: str, methods: list[str], factor: float, n_docs: int) -> None:
    c = load(name)
    off = c["offsets"]
    docs = np.linspace(0, len(off) - 2, n_docs).astype(np.int64)
    rows = []
    for method in methods:
        largest, above, total = [], 0, 0
        for d in docs:
            sizes = np.bincount(cluster_labels(np.asarray(c["tokens"][off[d] : off[d + 1]], np.float32), factor, method))
            largest.append(int(sizes.max()))
            above += int(sizes[sizes > factor].sum())
            total += int(sizes.sum())
        rows.append([method, f"{factor:g}", f"{np.median(largest):g}", f"{np.mean(largest):.1f}", f"{above / total:.1%}"])
    print(f"\n{name} ({len(docs)} documents, evenly spaced)")
    print_table(["pooling", "factor", "largest cluster (median)", "largest cluster (mean)",
                 "tokens in clusters > factor"], rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--methods", nargs="+", default=["ward-profile", "ward-profile-capped"], choices=POOL_METHODS)
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--docs", type=int, default=200)
    args = ap.parse_args()
    for ds in args.datasets:
        main(ds, args.methods, args.factor, args.docs)
