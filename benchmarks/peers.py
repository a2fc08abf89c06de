"""Peers side by side: slimvec's profiles against LanceDB, Qdrant local mode, Chroma, FAISS and usearch, one run.

    PYTHONPATH=src .venv/bin/python benchmarks/peers.py --embedding-cache DIR        # SciFact + NFCorpus
    PYTHONPATH=src .venv/bin/python benchmarks/peers.py --datasets scale --rows 100000  # the scale set
    extra: pip install -e '.[peers]'

Same vectors for everyone. SciFact (5,183 documents, 300 test queries) and NFCorpus (3,633, 323): one
all-MiniLM-L6-v2 vector per document, made exactly as `slimvec eval` makes them (chunk mode "whole": "title text"
cut at the model's window, L2-normalised), through slimvec's embedding cache (`--embedding-cache`, copied into
--work first so the source is never written; texts missing from it are encoded, once). The float32 document
vectors, their ids and texts, and the query vectors are cached as .npy/.json under --work/<dataset>/. The scale
set is benchmarks/scale.py's: `--rows` synthetic rows from 4,000 real MiniLM documents, 1,000 real held-out
queries (its cache under benchmarks/out/); it has no relevance judgements, so recall only.

Every engine gets those float32 vectors (inner product = cosine), one vector per document, and is measured in two
fresh subprocesses of its own: **build** (vectors in RAM -> index persisted in its directory; slimvec through
`Collection.create` + `Collection.add_encoded`, the public path for precomputed vectors) and **query**, which
first opens and queries a primer index of the same engine over the first 1,000 documents (so imports, runtimes,
thread pools and caches any index of the engine brings are paid), then measures its resident memory (RSS0),
opens the built index from disk, runs every query once (warm-up, and the answers scored), measures again (RSS1),
then times each query alone (k=10).
Databases (slimvec, LanceDB, Qdrant, Chroma) store id, vector and the document text, as a RAG store does; the
index libraries (FAISS, usearch) store vectors, with the ids in a side file. Every query asks for ids only
(slimvec `with_payload=False`, Qdrant `with_payload=False`, Chroma `include=[]`, LanceDB `select(["id"])`).

Columns: build s; RAM B/doc = growth of anonymous resident memory (RssAnon, after malloc_trim) from RSS0 to
RSS1 per document, i.e. what this index keeps resident beyond the engine's fixed start-up; RSS B/doc =
the same for total resident memory (adds file pages it maps: memmaps, mmapped index files, which the kernel may
drop); disk B/doc = every file of its directory; p50 ms and QPS of single queries one after another (QPS = queries
/ total time); R@10 against exact float64 inner-product search (a returned row counts when its exact score
reaches the exact 10th best: robust to tied duplicates); nDCG@10 by ranx with the BEIR qrels on each engine's own
order. Ratios: to slimvec exact-f32, and to the least-RAM / fastest full-quality peer (nDCG@10 within 0.5% of
slimvec exact-f32's; R@10 >= 0.95 on the scale set). `--blas-threads 1` runs every engine with one BLAS thread.

Engine settings: faiss HNSW M=32, efConstruction=128, efSearch=128 (slimvec hnsw-f32's fixed value before it was
calibrated) and 64 (faiss-hnsw-ef64: what hnsw-f32's calibration picks on SciFact and NFCorpus), or any N as
`faiss-hnsw-efN` (every faiss-hnsw engine of one run queries one graph, built once: same build time); faiss with one
OpenMP thread for single queries (faiss splits a lone query across threads, which stalls on a shared 2-core box;
slimvec's indexes switch the same way); LanceDB IVF-PQ sqrt(n) partitions, 48 sub-vectors of 8 bits (48 bytes,
as slimvec pq-rescore), nprobes 20, refine_factor 10 (re-ranks 100 candidates with the stored float32 vectors,
like slimvec's rescoring); Chroma and Qdrant defaults (Chroma HNSW "ip" space; Qdrant local mode: numpy
brute force over vectors held in RAM, points in SQLite); usearch defaults (connectivity 16, expansion 128/64),
restored into RAM, in f32, i8 (its own quantisation) and b1 (sign bits, Hamming: no rescoring).

Goal check (issue 16 item 6): for each peer, the slimvec profile with the least RAM among those within 0.5% of
the peer's nDCG@10 (R@10 without qrels) or above it must use less RAM per document, and the fastest such
profile must not exceed the peer's p50; each line also names one profile ahead on both, or "none".
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chromadb: no telemetry thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table  # noqa: E402

K = 10
PRIMER = 1000  # documents of the primer index opened before RSS0 (see child_query)
MODEL = "all-MiniLM-L6-v2"
SLIMVEC_PROFILES = ("exact-f32", "hnsw-f32", "f16", "int8", "int4", "int8-rescore", "binary-rescore", "pq-rescore",
                    "binary-ivf-rescore")
PEERS = ("lancedb-flat", "lancedb-ivfpq", "qdrant-local", "chroma", "faiss-flat", "faiss-hnsw", "faiss-hnsw-ef64",
         "usearch-f32", "usearch-i8", "usearch-b1")
# Skipped above 100k rows: pure-Python Qdrant local mode (its 100k build ran past 12 minutes on 2 shared cores).
SLOW_AT_SCALE = {"qdrant-local"}


# ---------------------------------------------------------------- memory


def rss() -> tuple[int, int]:
    """(anonymous, total) resident bytes of this process, after freed heap is handed back to the OS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "VmRSS:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) * 1024
    return fields["RssAnon"], fields["VmRSS"]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- data


def _beir(name: str, work: Path, embedding_cache: Path | None) -> Path:
    """Document vectors, ids, texts and test-query vectors of a BEIR set, as `slimvec eval` makes them; cached."""
    out = work / name
    if (out / "queries.npy").exists():
        return out
    from slimvec.collection import Collection
    from slimvec.encoders.cache import CachedEncoder
    from slimvec.encoders.registry import load_encoder
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.ingest import read_sources

    out.mkdir(parents=True, exist_ok=True)
    cache = work / "embeddings"
    if embedding_cache is not None and not cache.exists():
        shutil.copytree(embedding_cache, cache)  # never write to the source
    ds = load_dataset(DATA / name)
    encoder = CachedEncoder(load_encoder(MODEL), cache)
    src = out / "source-collection"
    shutil.rmtree(src, ignore_errors=True)
    with Collection.create(src, profile="exact-f32", model=MODEL, chunk_mode="whole", encoder=encoder) as col:
        col.add(read_sources([ds.corpus_path], strict=True))
        n = col.store.committed_rows
        owners = col.store.chunks_for_rows(list(range(n)))
        docs = np.array(col.store.vectors(n), np.float32)
    ids = [owners[r].doc_id for r in range(n)]
    texts = {d.id: (d.title + "\n" + d.text).strip() for d in read_sources([ds.corpus_path], strict=True)}
    queries = ds.queries("test")
    qrels = ds.qrels("test")
    qids = [q for q in queries if q in qrels]
    qvecs = encoder.encode_queries([queries[q] for q in qids])
    print(f"{name}: {n} documents, {len(qids)} queries; embedding cache hits {encoder.hits}, encoded {encoder.misses}")
    np.save(out / "docs.npy", docs)
    (out / "ids.json").write_text(json.dumps(ids))
    (out / "texts.json").write_text(json.dumps([texts[i] for i in ids]))
    (out / "qids.json").write_text(json.dumps(qids))
    (out / "qrels.json").write_text(json.dumps(qrels))
    np.save(out / "queries.npy", np.asarray(qvecs, np.float32))
    shutil.rmtree(src)
    return out


def _scale(rows: int, work: Path, n_queries: int = 1000) -> Path:
    """benchmarks/scale.py's synthetic rows (`rows` of them) and the first `n_queries` of its 1,000 real
    held-out queries; cached."""
    out = work / f"scale-{rows}" if n_queries == 1000 else work / f"scale-{rows}-q{n_queries}"
    if (out / "queries.npy").exists():
        return out
    import scale

    bases, queries = scale.real_embeddings(4000, 1000)
    queries = queries[:n_queries]
    docs = scale.synthesize(bases, rows, 64)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "docs.npy", np.asarray(docs, np.float32))
    ids = [f"r{i}" for i in range(rows)]
    (out / "ids.json").write_text(json.dumps(ids))
    (out / "texts.json").write_text(json.dumps([f"synthetic row {i}" for i in range(rows)]))
    (out / "qids.json").write_text(json.dumps([f"q{i}" for i in range(len(queries))]))
    np.save(out / "queries.npy", queries)
    return out


def exact_tenth(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The K-th best exact inner product (float64) of each query over all rows."""
    out = np.empty(len(queries))
    for s in range(0, len(queries), 50):
        q = queries[s : s + 50].astype(np.float64)
        best = np.full((len(q), K), -np.inf)
        for b in range(0, len(docs), 200_000):
            scores = np.concatenate([best, q @ np.asarray(docs[b : b + 200_000], np.float64).T], axis=1)
            best = -np.partition(-scores, K - 1, axis=1)[:, :K]
        out[s : s + 50] = best.min(axis=1)
    return out


def recall_at_k(docs: np.ndarray, queries: np.ndarray, tenth: np.ndarray, found: list[list[int]]) -> float:
    """Recall@K against exact search, robust to ties (NFCorpus holds duplicate documents): the share of the K
    slots filled by a row whose exact score reaches the exact K-th best score (1e-6 slack for float32 rounding)."""
    hits = [np.sum(np.asarray(docs[sorted(f)], np.float64) @ q.astype(np.float64) >= t - 1e-6) if f else 0
            for q, t, f in zip(queries, tenth, found)]
    return float(np.mean(hits)) / K


# ---------------------------------------------------------------- engines
# Each engine: build(dir, docs, ids, texts) persists an index; open(dir, n) -> search(vector) -> list of doc ids.

Search = Callable[[np.ndarray], list[str]]


def _ids(path: Path) -> list[str]:
    return json.loads((path / "ids.json").read_text())


def _profile(spec: str) -> Any:
    """A built-in profile by name, or "NAME+field=value+...": that profile with fields replaced (validated), e.g.
    "pq-rescore+codec=pq:24x8+oversample=20" (a variant measured without adding a built-in profile)."""
    from slimvec.profiles import BUILTIN, profile_from_dict

    name, *fields = spec.split("+")
    if not fields:
        return name
    data = BUILTIN[name].model_dump()
    for field in fields:
        key, value = field.split("=", 1)
        data[key] = int(value) if value.isdigit() else value
    data["name"] = "".join(c if c.isalnum() or c in "_.-" else "-" for c in spec)
    return profile_from_dict(data, spec)


def build_slimvec(profile: str, d: Path, docs: np.ndarray, ids: list[str], texts: list[str]) -> None:
    from slimvec.collection import Collection
    from slimvec.documents import Chunk, Document
    from slimvec.encoders.registry import load_encoder

    # The encoder is only the collection's record of the model (no text is encoded: the vectors are given).
    with Collection.create(d, profile=_profile(profile), model=MODEL, chunk_mode="whole",
                           encoder=load_encoder(MODEL)) as col:
        step = 100_000
        for s in range(0, len(ids), step):
            part = [Document(i, t) for i, t in zip(ids[s : s + step], texts[s : s + step])]
            chunks = [Chunk(x.id, 0, 0, len(x.text), x.text) for x in part]
            col.add_encoded(part, chunks, docs[s : s + step])


def open_slimvec(d: Path, n: int) -> Search:
    from slimvec.collection import Collection

    col = Collection.open(d)

    def search(v: np.ndarray) -> list[str]:
        hits = col.search_many(["q"], vectors=v[None], k=K, mode="dense", rerank="none", with_payload=False)[0]
        return [h.id for h in hits]

    def knob() -> str:  # what the calibration chose, read after the first searches
        dense = col.info()["indexes"].get("dense", {})
        return " ".join(f"{name} {dense[name]}" for name in ("nprobe", "ef_search") if name in dense)

    search.knob = knob  # type: ignore[attr-defined]
    return search


def _arrow(docs: np.ndarray, ids: list[str], texts: list[str]):  # noqa: ANN202 - a pyarrow Table
    import pyarrow as pa

    vec = pa.FixedSizeListArray.from_arrays(pa.array(docs.reshape(-1), pa.float32()), docs.shape[1])
    return pa.table({"id": pa.array(ids), "text": pa.array(texts), "vector": vec})


def build_lancedb(d: Path, docs: np.ndarray, ids: list[str], texts: list[str], ivfpq: bool) -> None:
    import lancedb

    db = lancedb.connect(str(d))
    table = db.create_table("docs", data=_arrow(docs, ids, texts))
    if ivfpq:
        table.create_index(metric="dot", vector_column_name="vector", index_type="IVF_PQ",
                           num_partitions=max(1, round(len(ids) ** 0.5)), num_sub_vectors=48, num_bits=8)


def open_lancedb(d: Path, n: int, ivfpq: bool) -> Search:
    import lancedb

    table = lancedb.connect(str(d)).open_table("docs")

    def search(v: np.ndarray) -> list[str]:
        q = table.search(v, vector_column_name="vector").distance_type("dot").limit(K).select(["id"])
        if ivfpq:
            q = q.nprobes(20).refine_factor(10)
        return q.to_arrow()["id"].to_pylist()

    return search


def build_qdrant(d: Path, docs: np.ndarray, ids: list[str], texts: list[str]) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(d))
    client.create_collection("docs", vectors_config=models.VectorParams(size=docs.shape[1], distance=models.Distance.DOT))
    for s in range(0, len(ids), 1000):
        client.upsert("docs", points=models.Batch(ids=list(range(s, min(s + 1000, len(ids)))),
                                                  vectors=docs[s : s + 1000].tolist(),
                                                  payloads=[{"doc_id": i, "text": t} for i, t in
                                                            zip(ids[s : s + 1000], texts[s : s + 1000])]))
    client.close()
    (d / "ids.json").write_text(json.dumps(ids))


def open_qdrant(d: Path, n: int) -> Search:
    from qdrant_client import QdrantClient

    client, ids = QdrantClient(path=str(d)), _ids(d)

    def search(v: np.ndarray) -> list[str]:
        res = client.query_points("docs", query=v, limit=K, with_payload=False)
        return [ids[p.id] for p in res.points]

    return search


def build_chroma(d: Path, docs: np.ndarray, ids: list[str], texts: list[str]) -> None:
    import chromadb

    client = chromadb.PersistentClient(path=str(d), settings=chromadb.Settings(anonymized_telemetry=False))
    col = client.create_collection("docs", configuration={"hnsw": {"space": "ip"}})
    step = min(5000, client.get_max_batch_size())
    for s in range(0, len(ids), step):
        col.add(ids=ids[s : s + step], embeddings=docs[s : s + step], documents=texts[s : s + step])


def open_chroma(d: Path, n: int) -> Search:
    import chromadb

    client = chromadb.PersistentClient(path=str(d), settings=chromadb.Settings(anonymized_telemetry=False))
    col = client.get_collection("docs")

    def search(v: np.ndarray) -> list[str]:
        return col.query(query_embeddings=v[None], n_results=K, include=[])["ids"][0]

    return search


def build_faiss(d: Path, docs: np.ndarray, ids: list[str], texts: list[str], hnsw: bool) -> None:
    import faiss

    if hnsw:
        index = faiss.IndexHNSWFlat(docs.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
    else:
        index = faiss.IndexFlatIP(docs.shape[1])
    for s in range(0, len(docs), 262144):
        index.add(np.ascontiguousarray(docs[s : s + 262144]))
    faiss.write_index(index, str(d / "index.faiss"))
    (d / "ids.json").write_text(json.dumps(ids))


def open_faiss(d: Path, n: int, hnsw: bool, ef: int = 128) -> Search:
    import faiss

    faiss.omp_set_num_threads(1)
    index, ids = faiss.read_index(str(d / "index.faiss")), _ids(d)
    params = None
    if hnsw:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef

    def search(v: np.ndarray) -> list[str]:
        rows = index.search(v[None], K, params=params)[1][0]
        return [ids[r] for r in rows if r >= 0]

    return search


def build_usearch(d: Path, docs: np.ndarray, ids: list[str], texts: list[str], dtype: str) -> None:
    from usearch.index import Index

    if dtype == "b1":
        index = Index(ndim=docs.shape[1], metric="hamming", dtype="b1")
        vectors = np.packbits(docs > 0, axis=1)
    else:
        index, vectors = Index(ndim=docs.shape[1], metric="ip", dtype=dtype), docs
    index.add(np.arange(len(docs), dtype=np.uint64), vectors, threads=2)
    index.save(str(d / "index.usearch"))
    (d / "ids.json").write_text(json.dumps(ids))


def open_usearch(d: Path, n: int, dtype: str) -> Search:
    from usearch.index import Index

    index, ids = Index.restore(str(d / "index.usearch")), _ids(d)

    def search(v: np.ndarray) -> list[str]:
        q = np.packbits(v > 0) if dtype == "b1" else v
        return [ids[int(r)] for r in index.search(q, K, threads=1).keys]

    return search


def engine(name: str) -> tuple[Callable[..., None], Callable[[Path, int], Search], str]:
    """(build, open, the module whose import is paid before RSS0) of an engine name."""
    if name.startswith("slimvec:"):
        prof = name.split(":", 1)[1]
        return (lambda *a: build_slimvec(prof, *a)), open_slimvec, "slimvec.collection"
    table: dict[str, tuple[Callable[..., None], Callable[[Path, int], Search], str]] = {
        "lancedb-flat": (lambda *a: build_lancedb(*a, ivfpq=False), lambda d, n: open_lancedb(d, n, False), "lancedb"),
        "lancedb-ivfpq": (lambda *a: build_lancedb(*a, ivfpq=True), lambda d, n: open_lancedb(d, n, True), "lancedb"),
        "qdrant-local": (build_qdrant, open_qdrant, "qdrant_client"),
        "chroma": (build_chroma, open_chroma, "chromadb"),
        "faiss-flat": (lambda *a: build_faiss(*a, hnsw=False), lambda d, n: open_faiss(d, n, False), "faiss"),
        "faiss-hnsw": (lambda *a: build_faiss(*a, hnsw=True), lambda d, n: open_faiss(d, n, True), "faiss"),
        # the efSearch slimvec hnsw-f32 calibrates on the SciFact and NFCorpus rows (info: ef_search 64)
        "faiss-hnsw-ef64": (lambda *a: build_faiss(*a, hnsw=True), lambda d, n: open_faiss(d, n, True, 64), "faiss"),
        "usearch-f32": (lambda *a: build_usearch(*a, "f32"), lambda d, n: open_usearch(d, n, "f32"), "usearch.index"),
        "usearch-i8": (lambda *a: build_usearch(*a, "i8"), lambda d, n: open_usearch(d, n, "i8"), "usearch.index"),
        "usearch-b1": (lambda *a: build_usearch(*a, "b1"), lambda d, n: open_usearch(d, n, "b1"), "usearch.index"),
    }
    if name.startswith("faiss-hnsw-ef") and name[len("faiss-hnsw-ef"):].isdigit():  # any efSearch, one graph
        ef = int(name[len("faiss-hnsw-ef"):])
        table[name] = (lambda *a: build_faiss(*a, hnsw=True), lambda d, n: open_faiss(d, n, True, ef), "faiss")
    if name not in table:
        raise SystemExit(f"unknown engine {name!r}: choose slimvec:PROFILE, faiss-hnsw-efN or one of {', '.join(table)}")
    return table[name]


# ---------------------------------------------------------------- child processes


def child_build(name: str, data: Path, d: Path) -> dict:
    build, _, _ = engine(name)
    docs = np.load(data / "docs.npy", mmap_mode="r")
    ids, texts = json.loads((data / "ids.json").read_text()), json.loads((data / "texts.json").read_text())
    docs = np.ascontiguousarray(docs)
    primer = _primer(d)
    for path in (d, primer):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    build(primer, docs[:PRIMER], ids[:PRIMER], texts[:PRIMER])
    t0 = time.perf_counter()
    build(d, docs, ids, texts)
    return {"build_s": time.perf_counter() - t0, "disk_bytes": dir_bytes(d)}


def _primer(d: Path) -> Path:
    return d.parent / f"{d.name}.primer"


def child_query(name: str, data: Path, d: Path) -> dict:
    import importlib

    _, open_, module = engine(name)
    importlib.import_module(module)
    queries = np.load(data / "queries.npy")
    n = len(json.loads((data / "ids.json").read_text()))
    # The same engine over the first PRIMER documents, opened and queried first: imports, runtimes, thread pools
    # and caches that any index of the engine brings are paid before RSS0, so the growth is the index's own.
    primed = open_(_primer(d), PRIMER)
    for q in queries[:20]:
        primed(np.ascontiguousarray(q))
    anon0, total0 = rss()
    t0 = time.perf_counter()
    search = open_(d, n)
    found = [search(np.ascontiguousarray(q)) for q in queries]  # warm-up pass; its answers are scored
    warm_s = time.perf_counter() - t0
    anon1, total1 = rss()
    knob = search.knob() if hasattr(search, "knob") else ""
    lat = []
    for q in queries:
        q = np.ascontiguousarray(q)
        t = time.perf_counter()
        search(q)
        lat.append(time.perf_counter() - t)
    return {"found": found, "ram_bytes": anon1 - anon0, "rss_bytes": total1 - total0, "open_and_warm_s": warm_s,
            "p50_ms": 1e3 * float(np.median(lat)), "qps": len(lat) / sum(lat), "knob": knob}


def run_child(phase: str, name: str, data: Path, d: Path, timeout: float) -> dict | None:
    out = d.parent / f"{d.name}.{phase}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", phase, "--engine", name, "--data", str(data), "--dir", str(d),
           "--result", str(out)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {name}: {phase} ran past {timeout:.0f} s, skipped", flush=True)
        return None
    if res.returncode != 0 or not out.exists():
        print(f"  {name}: {phase} failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(out.read_text())


# ---------------------------------------------------------------- report


def ndcg10(qrels: dict, qids: list[str], found: list[list[str]]) -> float:
    from slimvec.evaluation.metrics import evaluate

    run = {q: {doc: float(K - r) for r, doc in enumerate(f)} for q, f in zip(qids, found)}
    return evaluate({q: qrels[q] for q in qids}, run, ["ndcg@10"])["ndcg@10"]


def goal_check(results: list[dict]) -> list[str]:
    """One line per peer: slimvec's cheapest profile at equal nDCG@10 (within 0.5%), RAM and p50 against it."""
    ours = [r for r in results if r["engine"].startswith("slimvec:")]
    lines = []
    for p in (r for r in results if not r["engine"].startswith("slimvec:")):
        key = "ndcg" if p.get("ndcg") is not None else "recall"
        equal = [s for s in ours if s[key] >= p[key] * (1 - 0.005)]
        if not equal:
            lines.append(f"{p['engine']}: no slimvec profile within 0.5% of its {key} {p[key]:.4f}: NOT ahead")
            continue
        best = min(equal, key=lambda s: s["ram_bytes"])
        fastest = min(equal, key=lambda s: s["p50_ms"])
        ram_ok = best["ram_bytes"] < p["ram_bytes"]
        p50_ok = fastest["p50_ms"] <= p["p50_ms"]
        both = [s for s in equal if s["ram_bytes"] < p["ram_bytes"] and s["p50_ms"] <= p["p50_ms"]]
        one = min(both, key=lambda s: s["ram_bytes"])["engine"] if both else "none"
        lines.append(
            f"{p['engine']} ({key} {p[key]:.4f}, RAM {p['ram_bytes'] / p['n']:,.0f} B/doc, p50 {p['p50_ms']:.2f} ms): "
            f"RAM {'ahead' if ram_ok else 'NOT ahead'} with {best['engine']} "
            f"({best['ram_bytes'] / best['n']:,.0f} B/doc, {best[key]:.4f}); p50 "
            f"{'no slower' if p50_ok else 'SLOWER'}: fastest equal profile {fastest['engine']} {fastest['p50_ms']:.2f} ms; "
            f"the cheapest one {best['p50_ms']:.2f} ms; one profile ahead on both: {one}")
    return lines


def report(title: str, results: list[dict], has_ndcg: bool) -> None:
    ref = next((r for r in results if r["engine"] == "slimvec:exact-f32"), None)
    # The peers of full quality: nDCG@10 within 0.5% of slimvec exact-f32's (R@10 >= 0.95 without qrels).
    full = [r for r in results if not r["engine"].startswith("slimvec:") and (
        r["ndcg"] >= ref["ndcg"] * (1 - 0.005) if has_ndcg and ref else r["recall"] >= 0.95)]
    best_peer_ram = min((r["ram_bytes"] for r in full), default=None)
    best_peer_p50 = min((r["p50_ms"] for r in full), default=None)
    print(f"\n### {title}\n")
    headers = ["engine", "nDCG@10" if has_ndcg else "-", "vs exact-f32", "R@10", "RAM B/doc", "RAM vs exact-f32",
               "RAM vs least-RAM full-quality peer", "RSS B/doc", "disk B/doc", "p50 ms", "p50 vs exact-f32", "p50 vs fastest full-quality peer", "QPS", "build s"]
    rows = []
    for r in results:
        n = r["n"]
        rows.append([
            r["engine"].replace("slimvec:", "slimvec "),
            f"{r['ndcg']:.4f}" if has_ndcg else "-",
            f"{r['ndcg'] / ref['ndcg']:.2%}" if has_ndcg and ref else "-",
            f"{r['recall']:.3f}",
            f"{r['ram_bytes'] / n:,.0f}",
            f"{r['ram_bytes'] / ref['ram_bytes']:.2f}x" if ref and ref["ram_bytes"] > 0 else "-",
            f"{r['ram_bytes'] / best_peer_ram:.2f}x" if best_peer_ram and best_peer_ram > 0 else "-",
            f"{r['rss_bytes'] / n:,.0f}",
            f"{r['disk_bytes'] / n:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p50_ms'] / ref['p50_ms']:.2f}x" if ref else "-",
            f"{r['p50_ms'] / best_peer_p50:.2f}x" if best_peer_p50 else "-",
            f"{r['qps']:,.0f}",
            f"{r['build_s']:.1f}",
        ])
    print_table(headers, rows)
    print("\nfull-quality peers (nDCG@10 within 0.5% of slimvec exact-f32's, or R@10 >= 0.95 without qrels): "
          + ", ".join(r["engine"] for r in full))
    print("\ngoal check (slimvec ahead on RAM/doc at equal nDCG@10 within 0.5%, no slower at p50):")
    for line in goal_check(results):
        print("  " + line)


def run_dataset(title: str, data: Path, engines: list[str], work: Path, timeout: float) -> list[dict]:
    docs = np.load(data / "docs.npy", mmap_mode="r")
    ids = json.loads((data / "ids.json").read_text())
    queries, qids = np.load(data / "queries.npy"), json.loads((data / "qids.json").read_text())
    qrels = json.loads((data / "qrels.json").read_text()) if (data / "qrels.json").exists() else None
    row_of = {i: r for r, i in enumerate(ids)}
    tenth = exact_tenth(docs, queries)
    results, shared = [], {}  # FAISS HNSW at several efSearch values: one graph, built once (the same build)
    for name in engines:
        key = "faiss-hnsw" if name.startswith("faiss-hnsw") else name
        d = work / "indexes" / data.name / key.replace(":", "-")
        built = shared.get(key) or run_child("build", name, data, d, timeout)
        if built and key == "faiss-hnsw":
            shared[key] = built
        queried = run_child("query", name, data, d, timeout) if built else None
        if not queried:
            continue
        found = queried.pop("found")
        r = {"engine": name, "n": len(ids), **built, **queried,
             "recall": recall_at_k(docs, queries, tenth, [[row_of[i] for i in f] for f in found]),
             "ndcg": ndcg10(qrels, qids, found) if qrels else None}
        results.append(r)
        nd = f"nDCG@10 {r['ndcg']:.4f}, " if qrels else ""
        print(f"  {name}: {nd}R@10 {r['recall']:.3f}, RAM {r['ram_bytes'] / r['n']:,.0f} B/doc (RSS "
              f"{r['rss_bytes'] / r['n']:,.0f}), disk {r['disk_bytes'] / r['n']:,.0f} B/doc, p50 {r['p50_ms']:.2f} ms, "
              f"{r['qps']:,.0f} QPS, build {r['build_s']:.1f} s{'; ' + r['knob'] if r.get('knob') else ''}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        if key not in shared:
            shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(_primer(d), ignore_errors=True)
    for key in shared:
        d = work / "indexes" / data.name / key
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(_primer(d), ignore_errors=True)
    report(title, results, qrels is not None)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="scifact,nfcorpus", help="comma-separated: scifact, nfcorpus, scale")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the scale set")
    ap.add_argument("--scale-queries", type=int, default=1000, help="held-out queries of the scale set (at most 1,000)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/peers-cache"), help="vectors and indexes go here")
    ap.add_argument("--embedding-cache", type=Path, default=None,
                    help="a slimvec embedding cache folder holding MiniLM vectors of the corpora (copied, not written)")
    ap.add_argument("--profiles", default=",".join(SLIMVEC_PROFILES), help="slimvec profiles to run")
    ap.add_argument("--peers", default=",".join(PEERS), help="peer engines to run")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds each build or query process may take")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS/OMP threads of every engine's processes (default: each library's own)")
    ap.add_argument("--json", type=Path, default=None, help="also write every result here")
    ap.add_argument("--child", choices=["build", "query"], help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.blas_threads and not args.child:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)  # inherited by every build and query process
    if args.child:
        fn = child_build if args.child == "build" else child_query
        args.result.write_text(json.dumps(fn(args.engine, args.data, args.dir)))
        return

    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"BLAS/OpenMP threads: {args.blas_threads or 'library defaults'}")
    print(f"uptime at start: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for dist in ("lancedb", "qdrant-client", "chromadb", "faiss-cpu", "usearch"):
        try:
            versions.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist} missing")
    print("peers: " + ", ".join(versions))
    profiles = [f"slimvec:{p}" for p in args.profiles.split(",") if p]
    peers = [p for p in args.peers.split(",") if p]
    everything = {}
    for name in args.datasets.split(","):
        if name == "scale":
            data = _scale(args.rows, args.work, args.scale_queries)
            title = f"scale set, {args.rows:,} synthetic rows, {args.scale_queries:,} real queries"
            skipped = [p for p in peers if p in SLOW_AT_SCALE and args.rows > 100_000]
            if skipped:
                print(f"skipped at {args.rows:,} rows: {', '.join(skipped)} (pure-Python local mode, too slow)")
            engines = profiles + [p for p in peers if p not in skipped]
        else:
            data = _beir(name, args.work, args.embedding_cache)
            n = len(json.loads((data / "ids.json").read_text()))
            title = f"{name} (test, {len(np.load(data / 'queries.npy'))} queries, {n:,} documents)"
            engines = profiles + peers
        print(f"\n{title}: uptime {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)
        everything[name] = run_dataset(title, data, engines, args.work, args.timeout)
    print(f"\nuptime at end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
