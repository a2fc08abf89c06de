"""Pooling's own cost, independent of candidate depth: exhaustive MaxSim over the Ward-pooled (factor 2) token
file of a `multivector-pooled` collection built by benchmarks/multivector_recheck.py (or _mv_build.py), against
exhaustive MaxSim over the unpooled tokens (benchmarks/_mv_exhaustive.py), same queries, nDCG@10 by ranx.

    PYTHONPATH=src .venv/bin/python benchmarks/multivector_pool_exhaustive.py nfcorpus
"""
import json
import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import DATA
from _mv_cache import load
from _mv_exhaustive import exhaustive_scores

from slimvec import Collection
from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels
from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.tokenstore import TokenStore

name = sys.argv[1]
ex = exhaustive_scores(name); qids = ex["query_ids"]
c = load(name)
root = __import__("pathlib").Path("/tmp/mvbench") / name
path = root / "recheck-multivector-pooled" if (root / "recheck-multivector-pooled").exists() else root / "multivector-pooled"
col = Collection.open(path)
ts = TokenStore.open(f"{path}/tokens"); n = col.store.committed_rows
off = ts.offsets(n); tok = np.asarray(ts.tokens(n), np.float32)
ids = [col.store.chunks_for_rows([r])[r].doc_id for r in range(n)]
S = maxsim_scores(c["query_tokens"], tok, off)
qrels = {q: {d: int(g) for d, g in v.items()} for q, v in load_qrels(DATA / name, "test").items()}
def run(scores, dids):
    out = {}
    for i, q in enumerate(qids):
        top = np.argsort(-scores[i])[:10]; out[q] = {dids[j]: float(scores[i, j]) for j in top}
    return evaluate({q: qrels[q] for q in qids}, out, ["ndcg@10"])["ndcg@10"]
a = run(ex["scores"], ex["doc_ids"]); b = run(S, ids)
print(json.dumps({"dataset": name, "exhaustive_unpooled": round(a, 4), "exhaustive_pool2": round(b, 4), "ratio": round(b / a, 4), "tokens": int(off[-1])}))
