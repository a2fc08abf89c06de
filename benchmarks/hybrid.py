"""Hybrid retrieval on BEIR SciFact and NFCorpus: nDCG@10 of bm25, dense, sparse, hybrid, hybrid-sparse;
BM25 query throughput of slimvec vs bare bm25s on the same index; calibrated cut-off vs plain top-10.

    .venv/bin/python benchmarks/hybrid.py                       # full corpora (SciFact encoding ~6 min dense + SPLADE)
    .venv/bin/python benchmarks/hybrid.py --limit-docs 500      # quick check

Collections are built once under --work (keyed by dataset and --limit-docs) and reused; dense vectors go
through the embedding cache (slimvec.encoders.cache.CachedEncoder) so rebuilding re-encodes nothing.
With --limit-docs the corpus is the test queries' judged documents first, then corpus order, and qrels
are restricted to the documents kept. Calibration is fit on SciFact train / NFCorpus dev and reported
on test (the cut-off keeps top-10 hits with calibrated relevance >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table, read_jsonl  # noqa: E402

FIT_SPLIT = {"scifact": "train", "nfcorpus": "dev"}
MODES = ("bm25", "dense", "sparse", "hybrid", "hybrid-sparse")

# The model of this script's BENCHMARKS.md tables; the default for new collections is now bge-small-en-v1.5.
MINILM = "all-MiniLM-L6-v2"


def _qrels(path: Path, split: str) -> dict[str, dict[str, int]]:
    from slimvec.ingest.beir import load_qrels

    return load_qrels(path, split)


def _corpus(path: Path, limit: int | None, must: set[str]) -> list:
    from slimvec import Document

    records = read_jsonl(path / "corpus.jsonl")
    if limit:
        first = [r for r in records if r["_id"] in must][:limit]
        rest = [r for r in records if r["_id"] not in must][: max(0, limit - len(first))]
        records = first + rest
    return [Document(str(r["_id"]), r.get("text", ""), r.get("title", "") or "") for r in records]


def _restrict(qrels: dict[str, dict[str, int]], ids: set[str]) -> dict[str, dict[str, int]]:
    out = {q: {d: g for d, g in docs.items() if d in ids} for q, docs in qrels.items()}
    return {q: docs for q, docs in out.items() if any(g > 0 for g in docs.values())}


def _evaluate(qrels, run) -> dict[str, float]:
    try:
        from slimvec.evaluation.metrics import evaluate

        return evaluate(qrels, run, metrics=("ndcg@10", "recall@100"))
    except ImportError:  # metrics module not there: ranx directly
        from ranx import Qrels, Run
        from ranx import evaluate as rx

        r = rx(Qrels(qrels), Run({q: d for q, d in run.items() if d} or {"_": {"_": 0.0}}), ["ndcg@10", "recall@100"])
        return {"ndcg@10": float(r["ndcg@10"]), "recall@100": float(r["recall@100"])}


def _build(name: str, path: Path, work: Path, limit: int | None, cache_dir: Path | None, sparse: bool,
           must: set[str]):
    from slimvec import Collection
    from slimvec.encoders.cache import CachedEncoder
    from slimvec.encoders.registry import load_encoder

    encoder = CachedEncoder(load_encoder(MINILM), cache_dir)
    where = work / f"{name}-{limit or 'all'}"
    retrievers = ["dense", "bm25"] + (["sparse"] if sparse else [])
    docs = _corpus(path, limit, must)
    t = time.perf_counter()
    if (where / "manifest.json").exists():  # reuse; an interrupted build is completed
        col = Collection.open(where, encoder=encoder)
        for r in retrievers:
            col.enable(r)
        stored = col.store.existing_ids([d.id for d in docs])
        docs = [d for d in docs if d.id not in stored]
    else:
        col = Collection.create(where, encoder=encoder, retrievers=retrievers, chunk_mode="whole")  # BEIR protocol
    if docs:
        col.add(docs, progress=True)
    return col, time.perf_counter() - t


def _run(col, queries: dict[str, str], mode: str, k: int = 100) -> tuple[dict[str, dict[str, float]], float]:
    qids = list(queries)
    run: dict[str, dict[str, float]] = {}
    t = time.perf_counter()
    for s in range(0, len(qids), 64):
        part = qids[s : s + 64]
        for q, hits in zip(part, col.search_many([queries[q] for q in part], k=k, mode=mode)):
            run[q] = {h.id: float(h.score) for h in hits}
    return run, time.perf_counter() - t


def _bm25_throughput(col, queries: list[str], repeat: int = 3) -> dict[str, float]:
    """Queries/s of slimvec's BM25 search (Collection.search, k=10, one query at a time) vs bare bm25s.retrieve
    on a bm25s index of the very same token ids (the retriever's cache; since session 19 slimvec scores from
    its own posting lists), both including query tokenisation. Bare bm25s returns document indices and
    scores; `with_payload=False` is the like-for-like call (ids and scores), the default also fetches titles,
    snippets and metadata from SQLite."""
    import bm25s

    col.search(queries[0], k=10, mode="bm25")  # sync and build
    retriever = col._retrievers["bm25"]
    c = retriever.config
    bm = bm25s.BM25(k1=c.k1, b=c.b, method=c.method)
    offsets = retriever._offsets
    bm.scores = bm.build_index_from_ids(list(range(len(retriever.vocab))), [
        retriever._tokens[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)], show_progress=False)
    bm.vocab_dict = dict(retriever.vocab)
    tok = retriever.tokenize

    def ours() -> None:
        for q in queries:
            col.search(q, k=10, mode="bm25")

    def ours_ids() -> None:
        for q in queries:
            col.search(q, k=10, mode="bm25", with_payload=False)

    from slimvec.retrievers.base import Query

    allowed = col._alive

    def retriever_only() -> None:
        for q in queries:
            retriever.search(Query(q), 10, allowed)

    def bare() -> None:
        for q in queries:
            ids = [t for t in tok([q])[0] if t in bm.vocab_dict]
            if ids:
                bm.retrieve([ids], k=min(10, bm.scores["num_docs"]), show_progress=False)

    def best(fn) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return len(queries) / min(times)

    qps_ours, qps_ids, qps_retriever, qps_bare = best(ours), best(ours_ids), best(retriever_only), best(bare)
    return {"slimvec_qps": qps_ours, "slimvec_ids_qps": qps_ids, "retriever_qps": qps_retriever,
            "bm25s_qps": qps_bare, "ratio": qps_ours / qps_bare, "ids_ratio": qps_ids / qps_bare,
            "retriever_ratio": qps_retriever / qps_bare,
            "bm25s_version": bm25s.__version__}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench(name: str, path: Path, args: argparse.Namespace) -> dict:
    from slimvec.evaluation.calibrate import cutoff_report, fit_calibrator
    from slimvec.ingest.beir import load_queries

    all_queries = load_queries(path)
    test = _qrels(path, "test")
    fit_split = FIT_SPLIT.get(name, "train")
    fit = _qrels(path, fit_split) if (path / "qrels" / f"{fit_split}.tsv").exists() else {}
    must = {d for docs in test.values() for d in docs}
    col, build_s = _build(name, path, Path(args.work), args.limit_docs, args.cache_dir, not args.no_sparse, must)
    ids = {c for (c,) in col.store.db.execute("SELECT id FROM documents")}
    test, fit = _restrict(test, ids), _restrict(fit, ids)
    if args.limit_queries:
        test = dict(list(test.items())[: args.limit_queries])
        fit = dict(list(fit.items())[: args.limit_queries * 4])
    tq = {q: all_queries[q] for q in test if q in all_queries}
    fq = {q: all_queries[q] for q in fit if q in all_queries}
    out: dict = {"dataset": name, "documents": len(ids), "test_queries": len(tq), "fit_split": fit_split,
                 "fit_queries": len(fq), "build_s": build_s, "modes": {}}
    modes = [m for m in MODES if not (args.no_sparse and "sparse" in m)]
    _log(f"{name}: {len(ids)} documents (built in {build_s:.0f} s), {len(tq)} test queries, {len(fq)} {fit_split} queries")
    for mode in modes:
        run, secs = _run(col, tq, mode)
        out["modes"][mode] = {**_evaluate(test, run), "qps": len(tq) / secs if secs else 0.0}
        _log(f"{name} {mode}: {out['modes'][mode]}")
    out["bm25_throughput"] = _bm25_throughput(col, list(tq.values()))
    _log(f"{name} BM25 throughput: {out['bm25_throughput']}")
    out["cutoff"] = {}
    if fq:
        for mode in args.calibrate:
            if mode in modes:
                fit_calibrator(col, fq, fit, mode=mode, depth=20)
                out["cutoff"][mode] = cutoff_report(col, tq, test, mode=mode, threshold=0.5, k=10)
                # The collection's own cut-off: best mean F1 of the top 10 on the fit split, applied to test.
                auto = cutoff_report(col, tq, test, mode=mode, threshold="auto", k=10)
                out["cutoff"][mode]["auto"] = {**auto["cutoff"], "threshold": auto["threshold"]}
                _log(f"{name} cut-off {mode}: {out['cutoff'][mode]}")
    col.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding the BEIR datasets (default ../shared/data)")
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--limit-docs", type=int, default=None, help="index only this many documents per dataset")
    ap.add_argument("--limit-queries", type=int, default=None, help="evaluate only this many test queries")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "slimvec-hybrid-bench",
                    help="where collections are built and kept for reuse")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default $SLIMVEC_CACHE or ~/.cache/slimvec)")
    ap.add_argument("--no-sparse", action="store_true", help="skip SPLADE (sparse, hybrid-sparse)")
    ap.add_argument("--calibrate", nargs="*", default=["dense", "hybrid"], help="modes whose cut-off is fit and reported")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    results = [bench(name, args.data / name, args) for name in args.datasets]
    print(f"\nmachine: {machine()}\n")
    rows = []
    for r in results:
        for mode, m in r["modes"].items():
            rows.append([r["dataset"], r["documents"], r["test_queries"], mode, m["ndcg@10"], m["recall@100"], m["qps"]])
    print_table(["dataset", "docs", "queries", "mode", "nDCG@10", "R@100", "queries/s"], rows)
    print()
    print_table(["dataset", "Collection.search q/s", "ids only q/s", "Bm25Retriever q/s", "bare bm25s q/s", "ratio",
                 "ids-only ratio", "retriever ratio"],
                [[r["dataset"], t["slimvec_qps"], t["slimvec_ids_qps"], t["retriever_qps"], t["bm25s_qps"], t["ratio"],
                  t["ids_ratio"], t["retriever_ratio"]]
                 for r in results for t in [r["bm25_throughput"]]])
    print()
    rows = []
    for r in results:
        for mode, rep in r["cutoff"].items():
            for kind in ("top10", "cutoff", "auto"):
                s = rep[kind]
                label = {"top10": "top10", "cutoff": "relevance>=0.5", "auto": f"auto (>={s.get('threshold', 0):.2f})"}
                rows.append([r["dataset"], mode, label[kind], s["precision"],
                             s["recall"], s["micro_precision"], s["mean_returned"], s["empty"]])
    print_table(["dataset", "mode", "list", "precision", "recall", "micro precision", "mean hits", "empty"], rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
