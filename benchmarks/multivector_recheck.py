"""Re-measure one multi-vector profile through the collection after a default change, on the collections and
caches of benchmarks/multivector_profiles.py (/tmp/mvbench): the profile is rebuilt by replaying the stored
vectors of the `multivector` collection, every test query goes through `Collection.search` (query encoding
included), nDCG@10 by ranx beside exhaustive MaxSim.

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_recheck.py nfcorpus multivector-binary
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA
from _mv_build import ROOT, documents, profile
from _mv_exhaustive import exhaustive_scores
from _mv_replay import ReplayEncoder

from slimvec import Collection
from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels, load_queries


def main(name: str, p: str) -> None:
    import torch

    torch.set_num_threads(1)
    path = ROOT / name / f"recheck-{p}"
    if path.exists():
        shutil.rmtree(path)
    t0 = time.perf_counter()
    with Collection.create(path, profile=profile(p), encoder=ReplayEncoder(ROOT / name / "multivector")) as col:
        col.add(iter(documents(name)))
    build = time.perf_counter() - t0
    ex = exhaustive_scores(name)
    qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / name, "test").items()}
    queries = load_queries(DATA / name)
    qids = [q for q in ex["query_ids"] if q in qrels]
    ref_run = {}
    for i, q in enumerate(ex["query_ids"]):
        top = np.argsort(-ex["scores"][i])[:10]
        ref_run[q] = {ex["doc_ids"][j]: float(ex["scores"][i, j]) for j in top}
    ref = evaluate({q: qrels[q] for q in qids}, ref_run, ["ndcg@10"])["ndcg@10"]
    run, cpu, wall = {}, [], []
    with Collection.open(path) as col:
        for q in qids[:5]:
            col.search(queries[q], k=10)  # warm-up
        for q in qids:
            c0, w0 = time.process_time(), time.perf_counter()
            run[q] = {h.id: h.score for h in col.search(queries[q], k=10)}
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        info = col.info()
    ndcg = evaluate({q: qrels[q] for q in qids}, run, ["ndcg@10"])["ndcg@10"]
    out = {"dataset": name, "profile": p, "ndcg@10": round(ndcg, 4), "exhaustive": round(ref, 4),
           "of_exhaustive": round(ndcg / ref, 4), "ram_bytes_per_doc": round(info["ram_bytes_per_doc"], 1),
           "cpu_ms_p50": round(1000 * float(np.median(cpu)), 1),
           "wall_ms_p50": round(1000 * float(np.median(wall)), 1), "build_s": round(build), "load": os.getloadavg()[0]}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
