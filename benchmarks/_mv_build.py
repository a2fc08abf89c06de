"""Collections for benchmarks/multivector_profiles.py, built once under /tmp/mvbench/<dataset>/ and reused.

Ingest: exact-f32 and multivector are built for real on the first INGEST_DOCS documents (the same 256-document
batches added to one and then the other, alternately, so both see the same load on shared cores), timed.

Quality collections (full corpora): exact-f32 and multivector through `Collection.add` with
`_mv_replay.CacheReplayEncoder` (the dense + float16 token vectors benchmarks/_mv_cache.py encoded with the same
model and protocol: encoding both full corpora twice more took ~2 docs/s on the shared cores, hours); every
other profile through the same `Collection.add` with `_mv_replay.ReplayEncoder` reading the vectors stored in
exact-f32 or multivector (no encoding). Chunk mode "truncate" at the model's limit (254 word pieces +
[CLS]/[SEP] = 256): one row per document.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, read_jsonl
from _mv_replay import CacheReplayEncoder, ReplayEncoder

from slimvec import Collection, Document
from slimvec.encoders.registry import DEFAULT_MODEL
from slimvec.profiles import Profile, load_profile, profile_from_dict

ROOT = Path(os.environ.get("MVBENCH_DIR", "/tmp/mvbench"))
CHUNK_MODE = "truncate"
REAL = ("exact-f32", "multivector")
# profile -> the real collection whose stored vectors it replays
REPLAYED = {"binary-rescore": "exact-f32", "hybrid": "exact-f32", "multivector-binary": "multivector",
            "multivector-pooled": "multivector", "multivector-compressed": "multivector",
            "multivector-muvera": "multivector", "hybrid-multivector": "multivector"}
# variants of built-in profiles (one field changed) measured beside them
VARIANTS = {"multivector-pool3": ("multivector-pooled", {"token_pool": 3.0})}
# variants only benchmarks/multivector_recheck.py builds (not part of the full profile run)
RECHECK_VARIANTS = {"multivector-compressed-wp": ("multivector-compressed", {"token_pool_method": "ward-profile"})}
BATCH = 256
INGEST_DOCS = 768


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_avg() -> float:
    return os.getloadavg()[0]


def documents(name: str) -> list[Document]:
    limit = int(os.environ.get("MVBENCH_DOCS", "0")) or None  # smoke runs only; the benchmark reads every document
    return [Document(d["_id"], d["text"], d.get("title") or "")
            for d in read_jsonl(DATA / name / "corpus.jsonl", limit)]


def profile(name: str) -> Profile:
    """The named profile (or variant) with chunk mode "truncate" (one row per document)."""
    variants = {**VARIANTS, **RECHECK_VARIANTS}
    if name in variants:
        base, change = variants[name]
        data = {**load_profile(base).model_dump(), **change, "name": name}
    else:
        data = load_profile(name).model_dump()
    return profile_from_dict({**data, "chunk_mode": CHUNK_MODE}, source=name)


def build_real(name: str, docs: list[Document]) -> dict[str, Any]:
    """Build exact-f32 and multivector for real, alternating batches; resumable. Returns the ingest record."""
    out = ROOT / name
    docs = docs[:INGEST_DOCS]
    rec_path = out / "ingest.json"
    rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    if rec.get("done"):
        return rec
    cols = {}
    for p in REAL:
        path = out / f"ingest-{p}"
        if path.exists() and not rec:
            shutil.rmtree(path)  # built without a timing record: start again
        cols[p] = Collection.open(path) if path.exists() else Collection.create(path, profile=profile(p))
    rec = rec or {"seconds": {p: 0.0 for p in REAL}, "docs": {p: 0 for p in REAL}, "load": []}
    while True:
        todo = False
        for p in REAL:
            col = cols[p]
            n = len(col)
            if n >= len(docs):
                continue
            todo = True
            batch = docs[n : n + BATCH]
            t0 = time.perf_counter()
            col.add(batch)
            rec["seconds"][p] += time.perf_counter() - t0
            rec["docs"][p] += len(batch)
            rec["load"].append(load_avg())
            rec_path.write_text(json.dumps(rec))
            log(f"{name}: {p} {n + len(batch)}/{len(docs)} docs, {rec['seconds'][p]:.0f} s, load {load_avg():.1f}")
        if not todo:
            break
    for c in cols.values():
        c.close()
    rec["done"] = True
    rec_path.write_text(json.dumps(rec))
    return rec


def build_replayed(name: str, docs: list[Document], p: str, source: str | None) -> float:
    """Build profile `p` from the stored vectors of collection `source` (None: the token cache); returns the
    build seconds (cached)."""
    path = ROOT / name / p
    done = ROOT / name / f"{p}.done.json"
    if done.exists():
        return float(json.loads(done.read_text())["seconds"])
    if path.exists():
        shutil.rmtree(path)
    t0 = time.perf_counter()
    if source is None:
        enc: object = CacheReplayEncoder(name, docs, load_profile(p).model or DEFAULT_MODEL)
    else:
        enc = ReplayEncoder(ROOT / name / source)
    col = Collection.create(path, profile=profile(p), encoder=enc)
    col.add(iter(docs))
    col.close()
    sec = time.perf_counter() - t0
    done.write_text(json.dumps({"seconds": sec}))
    log(f"{name}: {p} replayed from {source or 'the token cache'} in {sec:.0f} s")
    return sec


def build_all(name: str) -> dict[str, Any]:
    docs = documents(name)
    rec = build_real(name, docs)
    replay = {p: build_replayed(name, docs, p, None) for p in REAL}
    for p, src in REPLAYED.items():
        replay[p] = build_replayed(name, docs, p, src)
    for p, (base, _) in VARIANTS.items():
        replay[p] = build_replayed(name, docs, p, REPLAYED[base])
    return {"ingest": rec, "replay_seconds": replay, "docs": len(docs)}


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(os.environ.get("MVBENCH_THREADS", "1")))
    for ds in sys.argv[1:]:
        build_all(ds)
