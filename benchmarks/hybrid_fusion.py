"""Fusion that never drags below its best part (issue 12 item 6): nDCG@10 of each part and of each fuser.

For every dataset, one collection keeps dense (all-MiniLM-L6-v2, float32, exact) and BM25 (CJK bigrams on
xquad-zh, as profile hybrid-cjk; English defaults elsewhere, as profile hybrid), built from corpus.jsonl with
`--chunk-mode whole` exactly as `slimvec eval` builds it (document-level qrels). Every mode and fusion runs
through `Collection.search_many` on that one collection, so the parts and the fused lists see the same
candidates (each part 100 deep). With `--sparse DATASET ...` SPLADE-tiny is enabled on those collections too
and hybrid-sparse (dense + SPLADE) is measured the same way (SPLADE encodes the corpus: slow on 2 cores).

    PYTHONPATH=src python benchmarks/hybrid_fusion.py --cache-dir /tmp/fusion-cache            # all six sets
    PYTHONPATH=src python benchmarks/hybrid_fusion.py --datasets xquad-zh --max-queries 200   # quick look
    PYTHONPATH=src python benchmarks/hybrid_fusion.py --profile hybrid-binary                 # binary-rescore dense
    PYTHONPATH=src python benchmarks/hybrid_fusion.py --profile hybrid-multivector            # MaxSim + BM25

With `--profile hybrid-multivector` the collection keeps `minilm-tokens` dense + token vectors and BM25, and the
parts are `multivector` (dense top 100 reranked by MaxSim) and `bm25`. Token vectors of SciFact and NFCorpus
are replayed from benchmarks/_mv_cache.py's cache when it exists (`--replay-tokens`, the same forward pass:
encoding both corpora's tokens again takes most of an hour on 2 cores); other sets are encoded for real.

Prints one table per dataset: the parts, then each fuser, nDCG@10 and "best part - fused" (positive: the
fused list is below its better part). Collections are kept under --work and reused; dense vectors come from
the embedding cache.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table  # noqa: E402

DATASETS = ("scifact", "nfcorpus", "xquad-de", "xquad-zh", "xquad-en-articles", "xquad-en-sentences")
FUSERS = ("rrf", "weighted", "softmax")
DEPTH = 100  # documents per query in the run (as `slimvec eval`)
CJK = {"xquad-zh"}  # sets whose BM25 uses CJK bigrams (profile hybrid-cjk)

# The model of this script's BENCHMARKS.md tables; the default for new collections is now bge-small-en-v1.5.
MINILM = "all-MiniLM-L6-v2"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _profile(name: str, base: str):
    from slimvec.profiles import BUILTIN, profile_from_dict

    prof = BUILTIN["hybrid-cjk" if name in CJK and base == "hybrid" else base].model_dump()
    if name in CJK:
        prof["bm25"] = BUILTIN["bm25-cjk"].bm25
    return profile_from_dict({**prof, "name": f"fusion-{name}", "chunk_mode": "whole"})


def _encoder(name: str, base: str, cache_dir: Path | None, replay: bool):
    from slimvec.encoders.cache import CachedEncoder
    from slimvec.encoders.registry import load_encoder

    if base != "hybrid-multivector":
        return CachedEncoder(load_encoder(MINILM), cache_dir)
    if replay and name in ("scifact", "nfcorpus") and Path(f"/tmp/slimvec-mv-cache/{name}/done").exists():
        from _mv_build import documents
        from _mv_replay import CacheReplayEncoder

        return CacheReplayEncoder(name, documents(name), "minilm-tokens")
    return CachedEncoder(load_encoder("minilm-tokens"), cache_dir)


def _collection(name: str, path: Path, work: Path, cache_dir: Path | None, sparse: bool, base: str = "hybrid",
                replay: bool = False):
    from slimvec import Collection
    from slimvec.ingest import read_sources

    encoder = _encoder(name, base, cache_dir, replay)
    where = work / (name if base == "hybrid" else f"{name}-{base}")
    if not (where / "done").exists():  # an unfinished build starts again
        import shutil

        shutil.rmtree(where, ignore_errors=True)
        with Collection.create(where, profile=_profile(name, base), encoder=encoder) as col:
            col.add(read_sources([path / "corpus.jsonl"], strict=True), progress=True)
        (where / "done").write_text("")
    col = Collection.open(where, encoder=encoder)
    if sparse and "sparse" not in col.manifest["retrievers"]:
        t = time.perf_counter()
        col.enable("sparse")
        _log(f"{name}: SPLADE index built in {time.perf_counter() - t:.0f} s")
    return col, encoder


def _run(col, queries: dict[str, str], vectors, mode: str, **options) -> dict[str, dict[str, float]]:
    qids = list(queries)
    run: dict[str, dict[str, float]] = {}
    for s in range(0, len(qids), 64):
        part = qids[s : s + 64]
        hits = col.search_many([queries[q] for q in part], k=DEPTH, mode=mode,
                               vectors=None if vectors is None else vectors[s : s + 64], **options)
        for q, h in zip(part, hits):
            run[q] = {x.id: float(x.score) for x in h}
    return run


def _softmax_offline(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]],
                     temperature: float) -> dict[str, dict[str, float]]:
    """Two runs (query -> {doc id: score}, best first) fused by `slimvec.search.softmax.softmax`."""
    from slimvec.search.softmax import softmax

    out = {}
    for q in a:
        names = list(dict.fromkeys([*a[q], *b.get(q, {})]))
        number = {d: i for i, d in enumerate(names)}
        rankings = [[(number[d], s, 0) for d, s in run.get(q, {}).items()] for run in (a, b)]
        out[q] = {names[d]: s for d, s, _ in softmax(rankings, temperature=temperature)}
    return out


def bench(name: str, args: argparse.Namespace) -> dict:
    from slimvec.evaluation.datasets import load_dataset
    from slimvec.evaluation.metrics import evaluate

    ds = load_dataset(args.data / name)
    qrels = ds.qrels("test")
    queries = ds.queries("test")
    if args.max_queries:
        queries = dict(list(queries.items())[: args.max_queries])
        qrels = {q: qrels[q] for q in queries}
    col, encoder = _collection(name, ds.path, args.work, args.cache_dir, name in args.sparse, args.profile,
                               args.replay_tokens)
    if args.profile == "hybrid-multivector":
        vectors = None  # the collection encodes dense + query tokens in one pass per batch
        parts = ["multivector", "bm25"]
        hybrids = [("hybrid-multivector", ("multivector", "bm25"))]
    else:
        vectors = encoder.encode_queries(list(queries.values()))
        parts = ["dense", "bm25"] + (["sparse"] if "sparse" in col.manifest["retrievers"] else [])
        hybrids = [("hybrid", ("dense", "bm25"))] + ([("hybrid-sparse", ("dense", "sparse"))] if "sparse" in parts else [])
    runs = {p: _run(col, queries, vectors, p) for p in parts}
    rows: dict[str, float] = {p: evaluate(qrels, runs[p], ["ndcg@10"])["ndcg@10"] for p in parts}
    table = []
    for mode, (a, b) in hybrids:
        best = max(rows[a], rows[b])
        table += [[mode, a, f"{rows[a]:.4f}", "", ""], [mode, b, f"{rows[b]:.4f}", "", ""]]
        for fuser in args.fusers:
            score = evaluate(qrels, _run(col, queries, vectors, mode, fusion=fuser), ["ndcg@10"])["ndcg@10"]
            rows[f"{mode}/{fuser}"] = score
            table.append([mode, f"fused: {fuser}", f"{score:.4f}", f"{best - score:+.4f}",
                          "yes" if score >= best - 0.01 else "NO"])
    first, mode = ("dense", "hybrid") if "dense" in runs else ("multivector", "hybrid-multivector")
    for temperature in args.temperatures:  # the parts' own rankings fused by softmax() at another temperature
        score = evaluate(qrels, _softmax_offline(runs[first], runs["bm25"], temperature), ["ndcg@10"])["ndcg@10"]
        rows[f"{mode}/softmax T={temperature:g}"] = score
        best = max(rows[first], rows["bm25"])
        table.append([mode, f"fused: softmax, T = {temperature:g}", f"{score:.4f}", f"{best - score:+.4f}",
                      "yes" if score >= best - 0.01 else "NO"])
    bm25_name = "bm25 (CJK bigrams)" if name in CJK else "bm25"
    dense = {"hybrid": "dense", "hybrid-binary": "dense (binary-rescore)"}.get(args.profile, "dense")
    print(f"\n### {name}, {args.profile} (test, {len(queries)} queries, {col.info()['documents']} documents)\n",
          flush=True)
    print_table(["mode", "ranking", "nDCG@10", "best part - fused", ">= best - 0.01"],
                [[r[0], {"bm25": bm25_name, "dense": dense}.get(r[1], r[1]), *r[2:]] for r in table])
    if args.dump:  # the parts' rankings, for studying fusers offline
        args.dump.mkdir(parents=True, exist_ok=True)
        with open(args.dump / f"{name}.pkl", "wb") as f:
            pickle.dump({"qrels": qrels, "runs": runs}, f)
    col.close()
    return {"dataset": name, "profile": args.profile, "queries": len(queries), "ndcg@10": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding the datasets (default ../shared/data)")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--sparse", nargs="*", default=[], help="datasets on which SPLADE-tiny is enabled too")
    ap.add_argument("--fusers", nargs="+", default=list(FUSERS))
    ap.add_argument("--profile", default="hybrid", choices=["hybrid", "hybrid-binary", "hybrid-multivector"],
                    help="dense part: float32 exact (hybrid), binary codes rescored from disk (hybrid-binary), or "
                         "MaxSim over minilm-tokens (hybrid-multivector)")
    ap.add_argument("--replay-tokens", action="store_true",
                    help="hybrid-multivector on scifact/nfcorpus: token vectors from benchmarks/_mv_cache.py's cache")
    ap.add_argument("--temperatures", nargs="*", type=float, default=[],
                    help="also fuse dense + bm25 by softmax at these temperatures (in standard deviations)")
    ap.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N test queries")
    ap.add_argument("--work", type=Path, default=Path("benchmarks/out/fusion-work"), help="collections, kept for reuse")
    ap.add_argument("--cache-dir", type=Path, default=None, help="embedding cache folder")
    ap.add_argument("--dump", type=Path, default=None, help="write each dataset's part rankings (pickle) here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results = [bench(name, args) for name in args.datasets]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
