"""The int8 ONNX models run each text alone: what a batch did to a vector, and what running alone costs.

    PYTHONPATH=src python benchmarks/batch_alone.py [--docs 48] [--queries 200] [--pairs 40] [--rounds 2]

The int8 exports (bge-small-en-v1.5, the cross-encoder ms-marco-MiniLM-L-12-v2) quantise activations per forward
pass, one scale per tensor with padding included, so a text's output depends on the texts batched with it.
For each kind of input, the same texts through the same model, batched (the old defaults: 32 texts, 4 pairs)
and one per pass (the default now), interleaved over `--rounds`: the largest change of an output (lowest cosine
for vectors, largest |logit difference| for the cross-encoder) and the process CPU and wall seconds, with the
ratio alone / batched. Inputs: NFCorpus documents ("title text"), SciFact test queries, and (query, abstract)
pairs of SciFact's first query against its first abstracts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import DATA, machine, print_table, read_jsonl  # noqa: E402

from slimvec.encoders import onnx  # noqa: E402


def _timed(fn):  # noqa: ANN001, ANN202
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    docs = [f"{d.get('title') or ''} {d['text']}" for d in read_jsonl(DATA / "nfcorpus" / "corpus.jsonl", args.docs)]
    queries = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl", args.queries)]
    abstracts = [f"{d.get('title') or ''} {d['text']}" for d in read_jsonl(DATA / "scifact" / "corpus.jsonl", args.pairs)]
    bge_dir = onnx.package_model_dir("bge_small_en")
    ce_dir = onnx.package_model_dir("reranker_en")
    kinds = {  # label -> (batched run, alone run, change of output: lowest cosine or largest |logit diff|)
        f"bge-small-en-v1.5, {len(docs)} NFCorpus documents": (
            lambda bs: onnx.OnnxTransformerEncoder(bge_dir, "b", batch_size=bs).encode_documents(docs), 32, "cos"),
        f"bge-small-en-v1.5, {len(queries)} SciFact queries": (
            lambda bs: onnx.OnnxTransformerEncoder(bge_dir, "b", batch_size=bs).encode_queries(queries), 32, "cos"),
        f"ms-marco-MiniLM-L-12-v2, {len(abstracts)} (query, abstract) pairs": (
            lambda bs: onnx.OnnxCrossEncoder(ce_dir, "c", batch_size=bs, activation="none").score(queries[0], abstracts),
            4, "logit"),
    }
    print(f"machine: {machine()}\ncommand: PYTHONPATH=src python benchmarks/batch_alone.py {' '.join(sys.argv[1:])}")
    rows = []
    for label, (run, batched, change) in kinds.items():
        run(1)  # session, tokenizer and caches warm before timing
        wall = {batched: [], 1: []}
        cpu = {batched: [], 1: []}
        outs = {}
        for _ in range(args.rounds):
            for bs in (batched, 1):
                outs[bs], w, c = _timed(lambda bs=bs: run(bs))
                wall[bs].append(w)
                cpu[bs].append(c)
        a, b = np.asarray(outs[1]), np.asarray(outs[batched])
        moved = (f"min cosine {float(np.sum(a * b, axis=1).min()):.4f}" if change == "cos"
                 else f"max |logit diff| {float(np.abs(a - b).max()):.3f}")
        bw, aw, bc, ac = min(wall[batched]), min(wall[1]), min(cpu[batched]), min(cpu[1])
        rows.append([label, str(batched), moved, f"{bw:.2f}", f"{aw:.2f}", f"{aw / bw:.2f}x", f"{bc:.2f}", f"{ac:.2f}",
                     f"{ac / bc:.2f}x"])
    print_table(["input", "batch (old default)", "output moved by the batch", "wall s batched", "wall s alone",
                 "alone / batched (wall)", "CPU s batched", "CPU s alone", "alone / batched (CPU)"], rows)


if __name__ == "__main__":
    main()
