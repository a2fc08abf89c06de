"""Exhaustive MaxSim scores of every test query against every document, cached for
benchmarks/multivector_profiles.py (one batched numpy pass: minutes of CPU on a shared box, so it runs once).

    PYTHONPATH=src .venv/bin/python benchmarks/_mv_exhaustive.py scifact nfcorpus

Inputs: benchmarks/_mv_cache.py's float16 token vectors (the same vectors the benchmark's collections store,
see _mv_build.py) as float32, and its query token vectors (the real `minilm-tokens` model). Output:
/tmp/mvbench/<dataset>/exhaustive.npz with scores (n_queries, n_docs) float32, query_ids, doc_ids.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _mv_build import ROOT, log
from _mv_cache import load

from slimvec.multivector.maxsim import maxsim_scores


def exhaustive_scores(name: str) -> dict:
    path = ROOT / name / "exhaustive.npz"
    if not path.exists():
        c = load(name)
        tokens = np.asarray(c["tokens"], np.float32)
        t0 = time.perf_counter()
        scores = maxsim_scores(c["query_tokens"], tokens, c["offsets"])
        log(f"{name}: exhaustive MaxSim of {len(scores)} queries x {scores.shape[1]} docs in "
            f"{time.perf_counter() - t0:.0f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, scores=scores, query_ids=np.asarray(c["query_ids"]), doc_ids=np.asarray(c["doc_ids"]),
                 seconds=time.perf_counter() - t0)
    z = np.load(path)
    return {"scores": z["scores"], "query_ids": z["query_ids"].tolist(), "doc_ids": z["doc_ids"].tolist(),
            "seconds": float(z["seconds"])}


if __name__ == "__main__":
    for ds in sys.argv[1:]:
        exhaustive_scores(ds)
