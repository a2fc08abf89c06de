"""Token-vector cache for benchmarks/multivector.py: encode a BEIR corpus and its test queries once with
`minilm-tokens` (dense + token vectors from one forward pass) and keep them under /tmp, so reruns are cheap.

    PYTHONPATH=src .venv/bin/python benchmarks/_mv_cache.py scifact nfcorpus
    PYTHONPATH=src .venv/bin/python benchmarks/_mv_cache.py --model bge-small-tokens scifact nfcorpus

`--model` takes any registered multi-vector encoder (an ONNX one as NAME@N reads documents cut at N
positions, e.g. bge-small-tokens@256 like minilm-tokens); each model other than `minilm-tokens` gets its own folder
(/tmp/slimvec-mv-cache/<model>/<name>/). Layout per dataset (/tmp/slimvec-mv-cache/<name>/ for minilm-tokens): doc_ids.json, dense.npy (n, 384) float32,
tokens.f16 (all document token vectors, float16, row-major), offsets.npy (n + 1) int64,
query_ids.json, query_dense.npy, query_tokens.npz (one float32 array per query), encode_seconds.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, read_jsonl

CACHE = Path(os.environ.get("SLIMVEC_MV_CACHE", "/tmp/slimvec-mv-cache"))
DEFAULT_MODEL = "minilm-tokens"


def encoder(model: str = DEFAULT_MODEL):
    """The encoder `model` names; "NAME@N" reads documents cut at N positions (ONNX models, `truncated`)."""
    from slimvec.encoders.registry import load_encoder

    base, _, length = model.partition("@")
    enc = load_encoder(base)
    return enc.truncated(int(length)) if length else enc


def folder(name: str, model: str = DEFAULT_MODEL) -> Path:
    """Cache folder of dataset `name` encoded by `model` (minilm-tokens keeps the original layout)."""
    return CACHE / name if model == DEFAULT_MODEL else CACHE / model / name


def build(name: str, model: str = DEFAULT_MODEL) -> Path:
    """Encode `name` (a folder of ../shared/data) into the cache unless already there; return its folder."""
    from slimvec.ingest.beir import load_qrels, load_queries

    out = folder(name, model)
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    enc = encoder(model)
    corpus = read_jsonl(DATA / name / "corpus.jsonl")
    texts = [(d.get("title") or "") + " " + d["text"] for d in corpus]
    qrels = load_qrels(DATA / name, "test")
    queries = load_queries(DATA / name)
    qids = [q for q in qrels if q in queries]
    t0 = time.perf_counter()
    if not (out / "query_ids.json").exists():
        qdense = enc.encode_queries([queries[q] for q in qids])
        qtok = enc.encode_query_tokens([queries[q] for q in qids])
        np.save(out / "query_dense.npy", qdense)
        np.savez(out / "query_tokens.npz", *qtok)
        (out / "query_ids.json").write_text(json.dumps(qids))
    # Resumable per slice of 512 documents: a killed build continues from its last finished slice.
    progress = out / "progress.json"
    state = json.loads(progress.read_text()) if progress.exists() else {"docs": 0, "offsets": [0], "seconds": 0.0}
    dense = np.load(out / "dense.partial.npy") if state["docs"] else np.empty((len(texts), enc.dim), np.float32)
    offsets = state["offsets"]
    start = time.perf_counter() - state["seconds"]
    with open(out / "tokens.f16", "ab") as f:
        f.truncate(offsets[-1] * enc.dim * 2)  # drop a slice written after the last progress record
        for s in range(state["docs"], len(texts), 512):
            d, toks = enc.encode_documents_with_tokens(texts[s : s + 512])
            dense[s : s + 512] = d
            for t in toks:
                f.write(t.astype(np.float16).tobytes())
                offsets.append(offsets[-1] + len(t))
            f.flush()
            np.save(out / "dense.partial.npy", dense)
            tmp = out / "progress.json.tmp"
            tmp.write_text(json.dumps({"docs": s + len(toks), "offsets": offsets,
                                       "seconds": time.perf_counter() - start}))
            tmp.replace(progress)
            print(f"{model} {name}: {s + len(toks)}/{len(texts)} docs, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    np.save(out / "dense.npy", dense)
    np.save(out / "offsets.npy", np.asarray(offsets, np.int64))
    (out / "doc_ids.json").write_text(json.dumps([d["_id"] for d in corpus]))
    (out / "encode_seconds.json").write_text(json.dumps({"docs": time.perf_counter() - start,
                                                         "total": time.perf_counter() - t0}))
    (out / "done").touch()
    return out


def load(name: str, model: str = DEFAULT_MODEL) -> dict:
    """The cached arrays of `name` (building them first if needed); document tokens as a float16 memmap."""
    out = build(name, model)
    offsets = np.load(out / "offsets.npy")
    dim = int(np.load(out / "dense.npy", mmap_mode="r").shape[1])
    qz = np.load(out / "query_tokens.npz")
    return {
        "doc_ids": json.loads((out / "doc_ids.json").read_text()),
        "dense": np.load(out / "dense.npy"),
        "tokens": np.memmap(out / "tokens.f16", dtype=np.float16, mode="r", shape=(int(offsets[-1]), dim)),
        "offsets": offsets,
        "query_ids": json.loads((out / "query_ids.json").read_text()),
        "query_dense": np.load(out / "query_dense.npy"),
        "query_tokens": [qz[f"arr_{i}"] for i in range(len(qz.files))],
        "encode_seconds": json.loads((out / "encode_seconds.json").read_text()),
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--model", action="append", help=f"registered multi-vector encoder (repeatable; default "
                                                     f"{DEFAULT_MODEL})")
    args = ap.parse_args()
    for model in args.model or [DEFAULT_MODEL]:
        for dataset in args.datasets:
            build(dataset, model)
