"""Multi-vector profiles measured through the real collection (issue 12): BEIR SciFact / NFCorpus, full corpora,
test split, chunk mode "truncate" (one row per document, 256 word pieces with [CLS]/[SEP]).

    PYTHONPATH=src .venv/bin/python benchmarks/_mv_cache.py scifact nfcorpus     # token cache (encoded once)
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_profiles.py scifact   # one process per dataset
    PYTHONPATH=src .venv/bin/python benchmarks/multivector_profiles.py nfcorpus

Collections are built once under /tmp/mvbench/<dataset>/ by benchmarks/_mv_build.py (see there: the ingest
comparison is real, the quality collections replay stored vectors through `Collection.add`). Every profile is
then opened with `Collection.open` and searched one query at a time with `Collection.search(text, k=10)`, the
way a user calls it, so latency includes query encoding (the real model); 5 warm-up queries first. nDCG@10 by
ranx through slimvec.evaluation.metrics. RAM and disk bytes per document are the collection's own `info()`.

Baseline in the same run: exhaustive MaxSim (numpy over every document's token vectors held in RAM as float32,
read from the multivector collection's float16 token file): nDCG@10 from one batched pass, QPS from queries
one at a time (query encoding included). MUVERA: how many FDE candidates hold 95% of exhaustive MaxSim's top 10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, print_table
from _mv_build import REPLAYED, ROOT, VARIANTS, build_all
from _mv_exhaustive import exhaustive_scores

from slimvec import Collection
from slimvec.evaluation.metrics import evaluate
from slimvec.ingest.beir import load_qrels, load_queries
from slimvec.multivector.maxsim import maxsim_scores
from slimvec.multivector.retriever import TOKENS_DIR
from slimvec.multivector.tokenstore import TokenStore

PROFILES = ["exact-f32", "binary-rescore", "hybrid", "multivector", "multivector-binary", "multivector-pooled",
            "multivector-pool3", "multivector-compressed", "multivector-muvera",
            "hybrid-multivector"]
K = 10
WARMUP = 5
# Profiles too slow on the shared box to search every query through the collection: nDCG from the same
# computation offline (their first stage from the collection, MaxSim from the exhaustive pass), latency and
# a top-10 identity check from --deep-queries queries through Collection.search. Value: maxsim_depth.
OFFLINE = {"multivector-muvera": 1000}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


def ndcg(qrels: dict, run: dict) -> float:
    return float(evaluate(qrels, run, ["ndcg@10"])["ndcg@10"])


def search_all(col: Collection, qids: list[str], texts: list[str], limit: int | None = None,
               **options: Any) -> dict[str, Any]:
    """Each query alone through `col.search` (after a warm-up): run, per-query seconds, load before/after."""
    for t in texts[:WARMUP]:
        col.search(t, k=K, **options)
    run, times, cpu = {}, [], []
    load0 = load()
    for q, t in list(zip(qids, texts))[:limit]:
        t0, c0 = time.perf_counter(), time.process_time()
        hits = col.search(t, k=K, with_payload=False, **options)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        run[q] = {h.id: float(h.score) for h in hits}
    return {"run": run, "times": times, "cpu": cpu, "load": (load0, load())}


def stats(times: list[float]) -> tuple[float, float]:
    """p50 in ms and queries per second (one at a time) of per-query durations."""
    a = np.asarray(times)
    return float(np.percentile(a, 50) * 1000), float(len(a) / a.sum())


def exhaustive(name: str, qids: list[str], texts: list[str], timed: int) -> dict[str, Any]:
    """Exhaustive MaxSim: nDCG run from the cached batched pass (_mv_exhaustive.py), and per-query timing over
    the multivector collection's token file held in RAM as float32, with the real query encoder."""
    ex = exhaustive_scores(name)
    pos = {q: i for i, q in enumerate(ex["query_ids"])}
    if any(q not in pos for q in qids):
        raise SystemExit(f"{name}: the exhaustive cache holds other queries; delete {ROOT / name / 'exhaustive.npz'}")
    scores, doc_ids = ex["scores"][[pos[q] for q in qids]], ex["doc_ids"]
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {q: {doc_ids[d]: float(scores[i, d]) for d in top[i, :K]} for i, q in enumerate(qids)}
    col = Collection.open(ROOT / name / "multivector")
    enc = col.encoder
    n = col.store.committed_rows
    col.close()
    ts = TokenStore.open(ROOT / name / "multivector" / TOKENS_DIR, n)
    offsets = ts.offsets(n)
    tokens = np.asarray(ts.tokens(n), np.float32)  # resident, float32: the fastest numpy scan
    enc.encode_queries_with_tokens(texts[:2])  # warm-up
    times, cpu, load0 = [], [], load()
    for t in texts[:timed]:
        t0, c0 = time.perf_counter(), time.process_time()
        q = enc.encode_query_tokens([t])[0]
        s = maxsim_scores(q, tokens, offsets)
        np.argpartition(-s, K)[:K]
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"run": run, "scores": scores, "doc_ids": doc_ids, "top": top, "times": times, "cpu": cpu,
            "load": (load0, load()), "batch_s": ex["seconds"], "tokens_per_doc": float(offsets[-1] / n),
            "f32_ram_per_doc": float(tokens.nbytes / n)}


def first_stage(name: str, profile: str, qvecs: np.ndarray) -> list[list[str]]:
    """Document ids of the profile's own dense first stage (its RAM codes), top 1000 per query."""
    col = Collection.open(ROOT / name / profile)
    hits = col.search_vectors(qvecs, k=min(1000, len(col)))
    col.close()
    return [[h.id for h in hs] for hs in hits]


def rerank_run(ex: dict[str, Any], qids: list[str], cands: list[list[str]], depth: int) -> dict[str, dict[str, float]]:
    """Each query's top-`depth` candidates ranked by exact MaxSim (the exhaustive pass's scores): the run the
    multivector mode with maxsim_depth `depth` returns, computed offline."""
    col_of = {d: j for j, d in enumerate(ex["doc_ids"])}
    run = {}
    for i, q in enumerate(qids):
        docs = cands[i][:depth]
        s = ex["scores"][i, [col_of[d] for d in docs]]
        order = np.lexsort((np.arange(len(docs)), -s))[:K]
        run[q] = {docs[j]: float(s[j]) for j in order}
    return run


def muvera_recall(name: str, ex: dict[str, Any], qtok: list[np.ndarray], cands: list[list[str]],
                  grid: list[int]) -> dict[str, dict[int, float]]:
    """Mean fraction of exhaustive MaxSim's top 10 inside the top-N MUVERA candidates, for exact FDE inner
    products (numpy) and for the profile's own first stage (binary FDE codes, via `Collection.search_vectors`)."""
    from slimvec.multivector.muvera import muvera_queries

    col = Collection.open(ROOT / name / "multivector-muvera")
    qfde = muvera_queries(col.token_config.muvera, qtok)
    fde = np.asarray(col.store.vectors())
    rows = col.store.chunks_for_rows(list(range(len(fde))))
    col.close()
    col_of = {d: j for j, d in enumerate(ex["doc_ids"])}
    row_col = np.asarray([col_of[rows[r].doc_id] for r in range(len(fde))])
    exact = row_col[np.argsort(-(qfde @ fde.T), axis=1, kind="stable")]
    top10 = ex["top"][:, :10]
    out: dict[str, dict[int, float]] = {"exact FDE inner product": {}, "binary FDE codes (the profile's first stage)": {}}
    n = len(fde)
    for c in grid:
        c = min(c, n)
        out["exact FDE inner product"][c] = float(np.mean([len(set(top10[i]) & set(exact[i, :c])) / 10
                                                           for i in range(len(qtok))]))
        if c <= 1000:
            out["binary FDE codes (the profile's first stage)"][c] = float(np.mean(
                [len(set(top10[i]) & {col_of[d] for d in cands[i][:c]}) / 10 for i in range(len(qtok))]))
    return out


def bench(name: str, args: argparse.Namespace) -> None:
    built = build_all(name)
    qrels = load_qrels(DATA / name, "test")
    queries = load_queries(DATA / name)
    qids = [q for q in qrels if q in queries][: int(os.environ.get("MVBENCH_QUERIES", "0")) or None]  # smoke runs
    qrels = {q: qrels[q] for q in qids}
    texts = [queries[q] for q in qids]
    log(f"{name}: {built['docs']} docs, {len(qids)} queries, collections ready")

    ex = exhaustive(name, qids, texts, args.exhaustive_queries)
    ex_ndcg = ndcg(qrels, ex["run"])
    from slimvec.encoders.registry import load_encoder

    qdense, qtok = load_encoder("minilm-tokens").encode_queries_with_tokens(texts)
    cands = {p: first_stage(name, p, qdense) for p in ("multivector-binary",)}
    from slimvec.multivector.muvera import muvera_queries

    col = Collection.open(ROOT / name / "multivector-muvera")
    qfde = muvera_queries(col.token_config.muvera, qtok)
    col.close()
    cands["multivector-muvera"] = first_stage(name, "multivector-muvera", qfde)
    ex_p50, ex_qps = stats(ex["times"])
    ex_cpu, ex_cqps = stats(ex["cpu"])
    log(f"{name}: exhaustive MaxSim nDCG@10 {ex_ndcg:.4f}, p50 {ex_p50:.0f} ms with encoding, batch {ex['batch_s']:.0f} s")

    res: dict[str, dict[str, Any]] = {}
    for p in PROFILES:
        col = Collection.open(ROOT / name / p)
        info = col.info()
        deep = p in OFFLINE
        r = search_all(col, qids, texts, limit=args.deep_queries if deep else None)
        col.close()
        agree = None
        if deep:  # nDCG over every query from the same computation offline, checked on the timed queries
            offline = rerank_run(ex, qids, cands[p], OFFLINE[p])
            agree = float(np.mean([set(offline[q]) == set(r["run"][q]) for q in r["run"]]))
            r["run"] = offline
        p50, qps = stats(r["times"])
        cpu50, cqps = stats(r["cpu"])
        mv = info["indexes"].get("multivector") or {}
        docs = info["documents"]
        res[p] = {"ndcg": ndcg(qrels, r["run"]), "p50": p50, "qps": qps, "cpu50": cpu50, "cqps": cqps,
                  "load": r["load"],
                  "tokens_per_doc": mv.get("tokens", 0) / docs, "ram": info["ram_bytes_per_doc"],
                  "disk": info["disk_bytes_per_doc"], "token_disk": mv.get("token_disk_bytes", 0) / docs,
                  "depth": mv.get("depth"), "agree": agree, "timed": len(r["times"])}
        log(f"{name}: {p}: nDCG@10 {res[p]['ndcg']:.4f}, p50 {p50:.1f} ms (CPU {cpu50:.1f}), {qps:.1f} QPS "
            f"(CPU {cqps:.1f}), RAM {res[p]['ram']:.0f} B/doc, disk {res[p]['disk']:.0f}, tokens "
            f"{res[p]['token_disk']:.0f} B/doc, {res[p]['tokens_per_doc']:.1f} tokens/doc, "
            f"load {r['load'][0]:.1f}-{r['load'][1]:.1f}")

    # maxsim_depth sweep for multivector-binary, offline: its own binary first stage (the collection's
    # search_vectors) reranked by exact MaxSim; depth 300 is the profile itself (checked against it above).
    sweeps: dict[str, dict[str, Any]] = {}
    for d in args.sweep_binary:
        sweeps[f"multivector-binary, maxsim_depth {d} (offline)"] = {
            "ndcg": ndcg(qrels, rerank_run(ex, qids, cands["multivector-binary"], d))}
    recall = muvera_recall(name, ex, qtok, cands["multivector-muvera"],
                           [100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000])
    ingest = built["ingest"]

    # ---- tables ----------------------------------------------------------------------------
    print(f"### {name} (test, {len(qids)} queries, {built['docs']:,} documents, "
          f"{ex['tokens_per_doc']:.1f} tokens/doc; uptime load average during the run "
          f"{min(min(v['load']) for v in res.values()):.1f}-{max(max(v['load']) for v in res.values()):.1f})\n")
    base_ram = res["binary-rescore"]["ram"]
    f16_tok = res["multivector"]["token_disk"]
    rows = [["exhaustive MaxSim (numpy, all tokens in RAM as float32)", f"{ex_ndcg:.4f}", "100.0%",
             f"{ex['tokens_per_doc']:.1f}", f"{ex['f32_ram_per_doc']:,.0f}", "-", "-", f"{ex_p50:.0f}",
             f"{ex_cpu:.0f}", f"{ex_qps:.2f}", "1x", f"{ex_cqps:.2f}", "1x", f"{ex['load'][0]:.1f}-{ex['load'][1]:.1f}"]]
    for p in PROFILES:
        v = res[p]
        label = p + (" (variant: token_pool 3)" if p == "multivector-pool3" else "") + (
            f" [nDCG offline, {v['timed']} queries timed, top 10 identical on {v['agree']:.0%}]" if v["agree"] is not None
            else "")
        rows.append([label + (f" (depth {v['depth']})" if v["depth"] else ""), f"{v['ndcg']:.4f}",
                     f"{v['ndcg'] / ex_ndcg:.1%}", f"{v['tokens_per_doc']:.1f}" if v["tokens_per_doc"] else "-",
                     f"{v['ram']:,.0f}", f"{v['disk']:,.0f}", f"{v['token_disk']:,.0f}" if v["token_disk"] else "-",
                     f"{v['p50']:.1f}", f"{v['cpu50']:.1f}", f"{v['qps']:.1f}", f"{v['qps'] / ex_qps:.3g}x",
                     f"{v['cqps']:.1f}", f"{v['cqps'] / ex_cqps:.3g}x", f"{v['load'][0]:.1f}-{v['load'][1]:.1f}"])
    for label, v in sweeps.items():
        rows.append([label, f"{v['ndcg']:.4f}", f"{v['ndcg'] / ex_ndcg:.1%}"] + [""] * 11)
    print_table(["profile", "nDCG@10", "% of exhaustive MaxSim", "tokens/doc", "RAM B/doc (info)", "disk B/doc",
                 "token disk B/doc", "p50 ms wall", "p50 ms CPU", "QPS wall", "vs exhaustive", "QPS CPU",
                 "vs exhaustive", "load avg"], rows)

    mvb, pool2, pool3 = res["multivector-binary"], res["multivector-pooled"], res["multivector-pool3"]
    comp, unp = res["multivector-compressed"], res["multivector"]
    rate = {p: ingest["docs"][p] / ingest["seconds"][p] for p in ingest["docs"]}
    print("\nTargets:")
    print(f"- exhaustive MaxSim nDCG@10 {ex_ndcg:.4f} (issue: ~{0.71 if name == 'scifact' else 0.35})")
    print(f"- multivector-binary: {mvb['ndcg'] / ex_ndcg:.1%} of exhaustive MaxSim (target >= 99%), RAM "
          f"{mvb['ram']:,.0f} B/doc = {mvb['ram'] / base_ram:.2f}x binary-rescore's {base_ram:,.0f} (target <= 1.2x)")
    print(f"- pooling: factor 2 {pool2['ndcg'] / unp['ndcg']:.1%} of unpooled (multivector; target >= 99%), factor 3 "
          f"{pool3['ndcg'] / unp['ndcg']:.1%} (target >= 97%)")
    print(f"- multivector-compressed: {comp['ndcg'] / unp['ndcg']:.1%} of float16 MaxSim (multivector), "
          f"{comp['ndcg'] / ex_ndcg:.1%} of exhaustive, at {comp['token_disk'] / f16_tok:.1%} of float16 token bytes "
          f"(targets >= 98% at <= 5%)")
    print("- p50 with query encoding, wall / CPU: " + ", ".join(
        f"{p} {res[p]['p50']:.0f} / {res[p]['cpu50']:.0f} ms" for p in PROFILES
        if p.startswith(("multivector", "hybrid-multivector"))) + " (target <= 50 ms on SciFact)")
    print(f"- ingest ({ingest['docs']['exact-f32']} docs, alternating batches, real encoder): exact-f32 "
          f"{rate['exact-f32']:.2f} docs/s, multivector {rate['multivector']:.2f} docs/s = "
          f"{rate['multivector'] / rate['exact-f32']:.2f}x (target >= 0.9x); per-batch seconds "
          f"{ingest['batch_seconds']}; load {min(ingest['load']):.1f}-{max(ingest['load']):.1f}")
    print("- MUVERA candidates holding exhaustive MaxSim's top 10 (mean fraction):")
    for kind, curve in recall.items():
        need = next((c for c, v in curve.items() if v >= 0.95), None)
        print(f"  - {kind}: " + ", ".join(f"{c}: {v:.1%}" for c, v in curve.items())
              + f"; 95% needs {need if need else '> ' + str(max(curve))} of {built['docs']:,}")
    print(f"- hybrid (dense + BM25, RRF) {res['hybrid']['ndcg']:.4f} vs exact-f32 {res['exact-f32']['ndcg']:.4f}; "
          f"hybrid-multivector {res['hybrid-multivector']['ndcg']:.4f} vs multivector {unp['ndcg']:.4f}")
    print("- replayed builds (seconds, through Collection.add, no encoding): "
          + ", ".join(f"{p} {s:.0f}" for p, s in built["replay_seconds"].items()))
    print()
    (ROOT / name / "result.json").write_text(json.dumps(
        {"exhaustive": {"ndcg": ex_ndcg, "p50": ex_p50, "qps": ex_qps, "cpu50": ex_cpu, "cqps": ex_cqps,
                        "load": ex["load"]}, "profiles": res,
         "sweeps": sweeps, "muvera_recall": {k: {str(c): v for c, v in d.items()} for k, d in recall.items()},
         "ingest": ingest}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus"])
    ap.add_argument("--exhaustive-queries", type=int, default=10, help="queries timed one at a time (exhaustive)")
    ap.add_argument("--sweep-binary", type=int, nargs="*", default=[300, 500, 1000])
    ap.add_argument("--deep-queries", type=int, default=30, help="queries timed through the collection (OFFLINE)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)  # the box is shared: more threads than free cores only spin
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}, OPENBLAS_NUM_THREADS "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}\n")
    assert set(PROFILES) == {"exact-f32", "multivector", *REPLAYED, *VARIANTS}
    for name in args.datasets:
        bench(name, args)


if __name__ == "__main__":
    main()
